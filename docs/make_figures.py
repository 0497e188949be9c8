"""Draw the documentation's figures into docs/_static/ (run by hand; the PNGs are committed).

    python docs/make_figures.py            # diagrams and the synthetic-tissue figure
    python docs/make_figures.py diagrams   # only the two method diagrams (no senca.model needed)
    python docs/make_figures.py her2st     # the landing figure: runs `senca demo` (needs SENCA_DATA_DIR)

- ``senca_diagram.png`` and ``spacrd_diagram.png``: the two architectures (matplotlib boxes and arrows; mermaid
  and graphviz are not available offline).
- ``synthetic_regions.png``: SENCA on a synthetic tissue whose regions are known: the H&E-like image, the true
  regions and the regions SENCA finds after ``train()`` (seconds: it chooses the number of attention passes).
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
    """Top: the network, whose initial state is the estimator. Bottom: what ``train()`` fits, and how."""
    fig, ax = _canvas(13.3, 6.9)
    ax.text(0.2, 6.6, "SENCA", fontsize=13, weight="bold")
    ax.text(
        1.7,
        6.6,
        "one network; SENCA(adata) fits its initial state, the parameter-free estimator (no gradient step)",
        fontsize=9.5,
        style="italic",
        va="center",
    )
    x_in = _box(ax, 1.1, 5.3, 1.8, 0.8, "counts $x_i$\n(G genes)", C_GENE)
    h_in = _box(ax, 1.1, 3.7, 1.8, 0.8, "H&E features $h_i$\n(D dims)", C_IMG)
    gene = _box(
        ax, 3.55, 5.3, 2.5, 0.95, "gene head (frozen linear map)\nPCA axes of log1p(counts / library)\n"
        "$e_i$: 50 expression tokens", C_GENE, fontsize=7.5,
    )  # fmt: skip
    image = _box(
        ax, 3.55, 3.7, 2.5, 0.95, "image head (frozen linear map)\nstandardisation + top 10 axes\n"
        "$t_i$: 10 H&E tokens", C_IMG, fontsize=7.5,
    )  # fmt: skip
    att = _box(
        ax,
        7.05,
        4.5,
        3.9,
        2.3,
        "neighbourhood kernel attention, one layer per pass\n"
        "queries, keys: H&E tokens; values: $v_i = [e_i, t_i]$\n"
        "$a_{ij} = \\mathrm{softmax}_{j\\neq i}((q_i \\cdot k_j - \\|k_j\\|^2/2)/\\tau + g_i^T M g_j)$\n"
        "$q = t + Qt,\\ k = t + Kt$; start: $Q = K = M = 0$, $\\tau = m$\n"
        "= Gaussian kernel $\\exp(-\\|t_i - t_j\\|^2 / 2m)$\n"
        "$v_i \\leftarrow v_i/k + (1 - 1/k)\\sum_j a_{ij}\\, v_j$,  $P$ layers\n"
        "(uniform weights without an image)",
        C_SHARED,
        fontsize=7.5,
    )
    emb = _box(ax, 10.2, 5.2, 1.8, 0.95, "X_senca\nmixed $e$ + mixed $t$\n(weighted blocks)", C_OUT, fontsize=8)
    disc = _box(ax, 10.2, 3.75, 1.8, 0.85, "discordance\n$\\|e_i - \\sum_j a^1_{ij} e_j\\|$", C_OUT, fontsize=8)
    reg = _box(ax, 12.35, 5.2, 1.6, 0.8, "regions\ntl.regions (GMM)", C_OUT, fontsize=8)
    _arrow(ax, x_in, gene)
    _arrow(ax, h_in, image)
    _arrow(ax, gene, att)
    _arrow(ax, image, att)
    _arrow(ax, att, emb)
    _arrow(ax, att, disc)
    _arrow(ax, emb, reg)

    # what train() fits, below the network it acts on
    ax.plot([0.2, 13.1], [3.0, 3.0], color="#999999", lw=0.8, ls="--")
    ax.text(
        0.2,
        1.0,
        "model.train():\nlabel-free count splitting\n(each spot's counts split\nbinomially into halves A, B)",
        fontsize=9.5,
        style="italic",
        va="center",
        color="#444444",
    )
    passes = _box(
        ax, 5.2, 1.0, 3.3, 1.3, "1. number of passes\n(always, seconds): half A mixed\n"
        "by 1..8 layers vs half B in 15 PCs;\nthe lowest loss sets $P$ (model.selection_)", C_LOSS, fontsize=7.5,
    )  # fmt: skip
    tune = _box(
        ax, 8.75, 1.0, 3.3, 1.3, "2. fine-tuning (train(max_epochs=N) only)\n$Q, K, M, \\tau$ trained so that the\n"
        "network's mix of A predicts\nthe estimator's mix of B", C_LOSS, fontsize=7.5,
    )  # fmt: skip
    keep = _box(
        ax, 11.95, 1.0, 2.5, 1.3, "kept only if the loss on\nfixed held-out splits\nis lower (model.finetune_);"
        "\nelse back to step 1", C_LOSS, fontsize=7.5,
    )  # fmt: skip
    _arrow(ax, passes, tune)
    _arrow(ax, tune, keep)
    _arrow(ax, passes, att, colour="#777777")
    _arrow(ax, tune, att, colour="#777777")
    ax.text(5.95, 2.45, "sets $P$", ha="right", fontsize=8, color="#444444")
    ax.text(8.15, 2.45, "trains $Q, K, M, \\tau$", ha="left", fontsize=8, color="#444444")
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
        model = SENCA(adata)
        model.train(seed=seed)  # chooses the number of attention passes (seconds)
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
