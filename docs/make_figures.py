"""Draw the documentation's figures into docs/_static/ (run by hand; the PNGs are committed).

    python docs/make_figures.py            # diagrams and the synthetic-tissue figure
    python docs/make_figures.py diagrams   # only the two method diagrams (no senca.model needed)
    python docs/make_figures.py her2st     # the landing figure: runs `senca demo` (needs SENCA_DATA_DIR)

- ``senca_diagram.png`` and ``spacrd_diagram.png``: the two architectures (matplotlib boxes and arrows; mermaid
  and graphviz are not available offline).
- ``synthetic_regions.png``: SENCA on a synthetic tissue whose regions are known: the H&E-like image, the true
  regions and the regions SENCA finds (seconds: the region embedding needs no training).
- ``landing_her2st.png``: the PNG written by ``senca demo`` (her2st A1: pathologist vs SENCA over the H&E).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

STATIC = Path(__file__).parent / "_static"

# colours: expression (blue), histology (pink), shared (purple), outputs (green), losses (grey)
C_GENE, C_IMG, C_SHARED, C_OUT, C_LOSS = "#cfe2f3", "#f4cccc", "#d9d2e9", "#d9ead3", "#eeeeee"


def _box(ax, x, y, w, h, text, colour, fontsize=9, bold=False):
    patch = FancyBboxPatch(
        (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=colour, ec="#444444", lw=1
    )
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight="bold" if bold else "normal", wrap=True)
    return (x, y, w, h)


def _arrow(ax, a, b, text=None, style="-|>", colour="#333333", rad=0.0):
    (xa, ya, wa, ha), (xb, yb, wb, hb) = a, b
    # leave box a on the side facing b
    if abs(xb - xa) * (ha + hb) > abs(yb - ya) * (wa + wb):
        start = (xa + wa / 2 * (1 if xb > xa else -1), ya)
        end = (xb - wb / 2 * (1 if xb > xa else -1), yb)
    else:
        start = (xa, ya + ha / 2 * (1 if yb > ya else -1))
        end = (xb, yb - hb / 2 * (1 if yb > ya else -1))
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=12, color=colour, lw=1.2, connectionstyle=f"arc3,rad={rad}"
        )
    )
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text, ha="center", fontsize=7.5)


def _canvas(width, height):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return fig, ax


def senca_diagram(path: Path) -> None:
    """Top: the region embedding (no trained weights) and what reads it. Bottom: the network ``train()`` fits."""
    fig, ax = _canvas(13.3, 6.6)
    ax.text(0.2, 6.3, "SENCA", fontsize=13, weight="bold")
    ax.text(
        2.0,
        6.3,
        "region embedding: fitted when the model is created, no training",
        fontsize=9.5,
        style="italic",
        va="center",
    )
    x_in = _box(ax, 1.1, 5.1, 1.8, 0.8, "counts $x_i$\n(G genes)", C_GENE)
    h_in = _box(ax, 1.1, 3.5, 1.8, 0.8, "H&E features $h_i$\n(D dims)", C_IMG)
    pca = _box(ax, 3.5, 5.1, 2.2, 0.8, "$p_i$: 50 PCs of\nlog1p(counts / library)", C_GENE, fontsize=8)
    keys = _box(ax, 3.5, 3.5, 2.2, 0.8, "$k_i$: standardised,\ntop 10 principal axes", C_IMG, fontsize=8)
    att = _box(
        ax,
        6.6,
        4.3,
        3.1,
        1.9,
        "H&E-keyed neighbourhood attention\nover the k nearest spots $N(i)$\n"
        "$a_{ij} = \\mathrm{softmax}_{j\\neq i}(-\\|k_i - k_j\\|^2 / 2m)$\n"
        "$p_i \\leftarrow p_i/k + (1 - 1/k)\\sum_j a_{ij}\\, p_j$  (twice)\n"
        "fixed weights; uniform without an image",
        C_SHARED,
        fontsize=8,
    )
    emb = _box(ax, 9.6, 4.9, 1.9, 0.9, "X_senca\nmixed $p$ + mixed $k$\n(weighted blocks)", C_OUT, fontsize=8)
    disc = _box(ax, 9.6, 3.5, 1.9, 0.8, "discordance\n$\\|p_i - \\sum_j a_{ij} p_j\\|$", C_OUT, fontsize=8)
    reg = _box(ax, 12.1, 4.9, 1.9, 0.8, "regions\ntl.regions (GMM)", C_OUT, fontsize=8)
    _arrow(ax, x_in, pca)
    _arrow(ax, h_in, keys)
    _arrow(ax, pca, att)
    _arrow(ax, keys, att)
    _arrow(ax, att, emb)
    _arrow(ax, att, disc)
    _arrow(ax, emb, reg)

    # the trained network: greyed, with no arrow into the outputs above
    ax.plot([0.2, 13.1], [2.6, 2.6], color="#999999", lw=0.8, ls="--")
    ax.text(
        0.2,
        2.3,
        'model.train(): the SENCA-st network; its latent is representation="learned", not used for regions',
        fontsize=9.5,
        style="italic",
        va="center",
        color="#444444",
    )
    heads = _box(ax, 2.2, 1.1, 2.6, 1.0, "gene head, image head\n(MLPs, separate weights)", C_LOSS, fontsize=8)
    shared = _box(ax, 5.1, 1.1, 2.3, 1.0, "shared encoder $S$\n+ modality embedding", C_LOSS, fontsize=8)
    lca = _box(
        ax,
        8.0,
        1.1,
        2.6,
        1.0,
        "learned cross-attention\n$c^{g\\leftarrow h}$, $c^{h\\leftarrow g}$, $\\delta$",
        C_LOSS,
        fontsize=8,
    )
    z = _box(ax, 10.4, 1.1, 1.4, 1.0, "$z_i$", C_LOSS)
    dec = _box(ax, 12.3, 1.1, 1.5, 1.0, "NB + Gaussian\ndecoders,\nInfoNCE", C_LOSS, fontsize=8)
    _arrow(ax, heads, shared)
    _arrow(ax, shared, lca)
    _arrow(ax, lca, z)
    _arrow(ax, z, dec)
    fig.savefig(path, dpi=130, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def spacrd_diagram(path: Path) -> None:
    fig, ax = _canvas(13.0, 5.0)
    ax.text(0.2, 4.75, "SpaCRD", fontsize=13, weight="bold")
    ax.text(2.6, 4.4, "stage 1: align", fontsize=9, style="italic", ha="center")
    ax.text(8.0, 4.4, "stage 2: detect", fontsize=9, style="italic", ha="center")
    img = _box(ax, 1.0, 3.3, 1.6, 0.8, "H&E features\n(k = 7 spots)", C_IMG)
    gene = _box(ax, 1.0, 1.4, 1.6, 0.8, "genes\n(k = 7 spots)", C_GENE)
    ei = _box(ax, 3.1, 3.3, 1.6, 0.8, "image\nencoder", C_IMG)
    eg = _box(ax, 3.1, 1.4, 1.6, 0.8, "gene\nencoder", C_GENE)
    nce = _box(ax, 3.1, 2.35, 1.6, 0.6, "InfoNCE\n(T = 0.07)", C_LOSS, fontsize=8)
    bca = _box(
        ax,
        5.6,
        2.35,
        2.0,
        2.6,
        "bidirectional\ncross-attention\n\nimage → gene\ngene → image\n\ncentre tokens,\nfused",
        C_SHARED,
    )
    vae = _box(
        ax,
        8.2,
        2.35,
        2.2,
        2.6,
        "VAE on the fused\nvector\n\nclass prior\n$\\mathcal{N}(\\mu_y, I)$,"
        "\n$\\mu_0 , \\mu_1$ pulled\napart (bounded)",
        C_SHARED,
    )
    clf = _box(ax, 10.6, 2.35, 1.6, 1.0, "classifier on\n$(\\mu, \\log\\sigma^2)$", C_OUT)
    score = _box(ax, 12.3, 3.1, 1.3, 0.8, "score\nmin-max\nper section", C_OUT, fontsize=8)
    call = _box(ax, 12.3, 1.5, 1.3, 0.8, "cancer call\nGMM\nthreshold", C_OUT, fontsize=8)
    _arrow(ax, img, ei)
    _arrow(ax, gene, eg)
    _arrow(ax, ei, nce, style="-")
    _arrow(ax, eg, nce, style="-")
    _arrow(ax, ei, bca)
    _arrow(ax, eg, bca)
    _arrow(ax, bca, vae)
    _arrow(ax, vae, clf)
    _arrow(ax, clf, score)
    _arrow(ax, score, call)
    ax.text(
        7.0,
        0.45,
        "loss: VAE only during warm-up, then BCE + 0.1 x VAE; the threshold never sees the test labels",
        ha="center",
        fontsize=8,
        style="italic",
    )
    fig.savefig(path, dpi=130, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def landing(path: Path, seed: int = 0) -> None:
    """SENCA on a synthetic tissue with known regions: image, truth, SENCA regions (+ ARI)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    import senca
    from senca.cli._plot import regions_figure

    adata = senca.datasets.synthetic(
        n_spots=900,
        n_genes=200,
        n_regions=5,
        expression_map=[0, 1, 2, 2, 3],
        histology_map=[0, 0, 1, 2, 3],
        image=True,
        seed=seed,
    )
    adata.obs["truth"] = adata.obs["region"]
    keys = ["truth"]
    title = "synthetic tissue: 5 regions, two look alike in H&E, two express alike"
    try:
        import torch

        torch.set_num_threads(1)
        from senca.model import SENCA

        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        model = SENCA(adata)  # the region embedding needs no training
        adata.obsm["X_senca"] = model.get_latent_representation()
        senca.tl.regions(adata, n_regions=5, use_rep="X_senca", key_added="SENCA", seed=seed)
        ari = senca.metrics.region_scores(adata.obs["truth"], adata.obs["SENCA"])["ari"]
        keys.append("SENCA")
        title += f" (SENCA ARI {ari:.2f})"
    except ImportError as e:  # senca.model not available yet: show the data only
        print(f"SENCA unavailable ({e}); drawing the data only", file=sys.stderr)
    fig = regions_figure(adata, keys, title=title, panel_size=4.0)
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    _shrink_png(path)
    print(f"wrote {path}; spots per true region {np.bincount(adata.obs['truth'].cat.codes).tolist()}")


def _shrink_png(path: Path) -> None:
    """Quantise a PNG to 256 colours (a third of the size, no visible change for these figures)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def her2st_landing(path: Path, seed: int = 0) -> None:
    """Run ``senca demo`` (her2st A1) and keep its PNG."""
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["senca", "demo", "--out", tmp, "--seed", str(seed), "--accelerator", "cpu"]
        subprocess.run(cmd, check=True)
        shutil.copyfile(Path(tmp) / "her2st_A1_regions.png", path)
    _shrink_png(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    STATIC.mkdir(exist_ok=True)
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "her2st":
        her2st_landing(STATIC / "landing_her2st.png")
        sys.exit(0)
    senca_diagram(STATIC / "senca_diagram.png")
    spacrd_diagram(STATIC / "spacrd_diagram.png")
    print(f"wrote {STATIC / 'senca_diagram.png'} and {STATIC / 'spacrd_diagram.png'}")
    if what == "all":
        landing(STATIC / "synthetic_regions.png")
