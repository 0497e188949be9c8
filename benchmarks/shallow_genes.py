"""Gene selection on shallow data: her2st sections binomially thinned to Visium HD-like depths.

A new user with shallow data calls ``SENCA.setup_anndata(adata, layer="counts")``, whose gene selection is scanpy's
``seurat_v3`` (a loess fit of the variance against the mean, scikit-misc). Here her2st A1, B1 and D1 (the labelled
sections with counts of every depth group but C) are thinned to 0.1×, 0.05× and 0.02× of their counts (each count
kept with that probability; spots left empty dropped), for two thinning seeds, and for each case:

1. whether ``seurat_v3`` itself succeeds (the error it raises when it does not);
2. the default path with senca's gene selection (``seurat_v3``, else scanpy's ``seurat`` flavour with a warning):
   ``SENCA(adata)``, ``get_latent_representation()``, ``senca.tl.regions`` with the pathologist's number of regions,
   ARI against the pathologist (labelled, not "undetermined" spots), over three region-calling seeds;
3. the same with every detected gene (``n_top_genes=None``) and with scanpy's Pearson-residual selection, the two
   loess-free alternatives.

Usage::

    python -m benchmarks.shallow_genes          # about 5 minutes on one core
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from benchmarks._common import RESULTS, dump_json, load_her2st, machine, n_regions_of, now, scores, thinned, versions

SECTIONS = ["A1", "B1", "D1"]
FRACTIONS = [0.1, 0.05, 0.02]
THIN_SEEDS = [0, 1]
REGION_SEEDS = [0, 1, 2]
N_TOP = 3000


def region_ari(adata, genes) -> float:
    """Mean ARI over the region-calling seeds of the default path on ``genes`` (``None``: every gene)."""
    import senca

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no image: expression-only mode
        senca.model.SENCA.setup_anndata(adata, layer="counts", genes=genes, n_top_genes=None, overwrite=True)
        adata.obsm["X_senca"] = senca.model.SENCA(adata).get_latent_representation()
    lab = adata.obs["pathologist"]
    ok = (lab.notna() & (lab != "undetermined")).to_numpy()
    aris = []
    for seed in REGION_SEEDS:
        senca.tl.regions(adata, n_regions=n_regions_of(lab[ok]), seed=seed, overwrite=True)
        aris.append(scores(lab[ok], adata.obs["senca_region"][ok])["ari"])
    return float(np.mean(aris))


def run() -> dict:
    import scanpy as sc

    from senca.pp._genes import _highly_variable

    rows = []
    for section in SECTIONS:
        full = load_her2st(section)
        for fraction in FRACTIONS:
            for seed in THIN_SEEDS:
                a = thinned(full, fraction, seed)
                counts = a.layers["counts"]
                detected = np.asarray((counts > 0).sum(0)).ravel() > 0
                row = {"section": section, "fraction": fraction, "seed": seed, "n_obs": a.n_obs,
                       "median_umis": float(np.median(np.asarray(counts.sum(1))))}  # fmt: skip
                try:
                    sc.pp.highly_variable_genes(a[:, detected], flavor="seurat_v3", n_top_genes=N_TOP, layer="counts",
                                                inplace=False)  # fmt: skip
                    row["seurat_v3"] = "ok"
                except ValueError as err:
                    msg = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
                    row["seurat_v3"] = f"ValueError: {msg}"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    genes = [str(g) for g in _highly_variable(a, N_TOP, "counts", None)[0]]
                row["fallback_warned"] = any("loess" in str(w.message) for w in caught)
                pearson = sc.experimental.pp.highly_variable_genes(
                    a[:, detected].copy(), flavor="pearson_residuals", n_top_genes=N_TOP, layer="counts", inplace=False
                )
                pearson_genes = [str(g) for g in a.var_names[detected][pearson["highly_variable"].to_numpy()]]
                row["ari"] = {
                    "senca": region_ari(a, genes),
                    "all genes": region_ari(a, None),
                    "pearson residuals": region_ari(a, pearson_genes),
                }
                print(f"[shallow] {section} {fraction} seed {seed}: {row['median_umis']:.0f} UMIs, "
                      f"seurat_v3 {row['seurat_v3'][:50]}, ARI {row['ari']}", flush=True)  # fmt: skip
                rows.append(row)
    return {"rows": rows}


def markdown(out: dict) -> str:
    rows = out["rows"]
    failed = sum(r["seurat_v3"] != "ok" for r in rows)
    methods = list(rows[0]["ari"]) if rows else []
    lines = [
        "## Gene selection on shallow data",
        "",
        "Command: `python -m benchmarks.shallow_genes`. her2st A1, B1 and D1 binomially thinned to 0.1×, 0.05× and "
        "0.02× of their counts (two thinning seeds), then the default expression-only path "
        '(`SENCA.setup_anndata(adata, layer="counts")`, `SENCA(adata)`, `get_latent_representation()`, '
        "`senca.tl.regions` with the pathologist's number of regions); ARI against the pathologist, mean over three "
        "region-calling seeds. *senca*: senca's gene "
        "selection (`seurat_v3`, else scanpy's `seurat` flavour with a warning); *all genes*: `n_top_genes=None`; "
        "*pearson residuals*: scanpy's analytic Pearson residuals, 3,000 genes.",
        "",
        f"scanpy's `seurat_v3` failed in its loess fit in **{failed} of {len(rows)}** cases; senca's selection warned "
        f"and fell back in {sum(r['fallback_warned'] for r in rows)}.",
        "",
        "| section | thinned to | median UMIs | seurat_v3 | " + " | ".join(f"ARI {m}" for m in methods) + " |",
        "|---|---|---|---|" + "---|" * len(methods),
    ]
    for r in rows:
        status = "ok" if r["seurat_v3"] == "ok" else r["seurat_v3"].removeprefix("ValueError: ")[:40]
        lines.append(f"| {r['section']} (seed {r['seed']}) | {r['fraction']}× | {r['median_umis']:.0f} | {status} | "
                     + " | ".join(f"{r['ari'][m]:.3f}" for m in methods) + " |")  # fmt: skip
    if rows:
        means = " | ".join(f"**{np.mean([r['ari'][m] for r in rows]):.3f}**" for m in methods)
        lines.append(f"| mean | | | | {means} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    out = {"date": now(), "machine": machine(), "versions": versions(), **run()}
    dump_json(out, RESULTS / "shallow_genes.json")
    (RESULTS / "shallow_genes.md").write_text(markdown(out))
    from benchmarks.report import assemble

    assemble()
    return 0


if __name__ == "__main__":
    sys.exit(main())
