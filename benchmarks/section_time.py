"""Time SENCA's default path on one her2st section, all ~15,000 genes passed (the DESIGN.md API, no gene selection).

``python -m benchmarks.section_time [--threads 2] [--section A1]``

Steps, each timed on its own (imports and data loading excluded): ``SENCA.setup_anndata(adata, layer="counts")``
(which picks the 3,000 most variable genes), ``SENCA(adata)`` (PCA), ``model.train(seed=0)`` with the default
schedule, ``get_latent_representation()`` and ``senca.tl.regions(n_regions=5)``; the total is also given without
the training, since the region embedding does not depend on it. Writes ``benchmarks/results/section_time.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
import warnings

from benchmarks._common import RESULTS, dump_json, machine, now, versions


def run(section: str, threads: int) -> dict:
    import torch

    import senca

    torch.set_num_threads(threads)
    adata = senca.datasets.her2st(section)
    out = {"section": section, "n_obs": int(adata.n_obs), "n_genes_passed": int(adata.n_vars), "threads": threads}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        senca.model.SENCA.setup_anndata(adata, layer="counts")
        out["setup_s"] = time.perf_counter() - t
        t = time.perf_counter()
        model = senca.model.SENCA(adata)
        out["model_s"] = time.perf_counter() - t
        t = time.perf_counter()
        model.train(seed=0, enable_progress_bar=False)
        out["train_s"] = time.perf_counter() - t
        out["passes"] = int(model.selection_["passes"])
        t = time.perf_counter()
        adata.obsm["X_senca"] = model.get_latent_representation()
        out["embed_s"] = time.perf_counter() - t
        t = time.perf_counter()
        senca.tl.regions(adata, n_regions=5)
        out["regions_s"] = time.perf_counter() - t
    out["total_s"] = sum(out[k] for k in ("setup_s", "model_s", "train_s", "embed_s", "regions_s"))
    out["without_training_s"] = out["total_s"] - out["train_s"]
    out["ari"] = float(senca.metrics.region_scores(adata.obs["pathologist"], adata.obs["senca_region"])["ari"])
    return out


def report(r: dict) -> str:
    return "\n".join(
        [
            "## One her2st section end to end, all genes passed",
            "",
            f"Command: `python -m benchmarks.section_time --threads {r['threads']} --section {r['section']}`; "
            f"{r['when']}; {r['machine']['cores']} cores, load {r['machine']['load_1min']} at the end.",
            "",
            f"her2st {r['section']}: {r['n_obs']} spots, {r['n_genes_passed']:,} genes passed to `setup_anndata` "
            f"(which keeps the 3,000 most variable), {r['threads']} torch threads.",
            "",
            "| setup | model (PCA, kernel statistics) | train (default: "
            f"{r['passes']} attention passes chosen) | embedding | regions | total | total without training |",
            "|---|---|---|---|---|---|---|",
            f"| {r['setup_s']:.1f} s | {r['model_s']:.1f} s | {r['train_s']:.1f} s | {r['embed_s']:.1f} s | "
            f"{r['regions_s']:.1f} s | **{r['total_s']:.1f} s** | {r['without_training_s']:.1f} s |",
            "",
            f"ARI against the pathologist: {r['ari']:.3f}. `train()` chooses the number of attention passes by count "
            "splitting (no fine-tuning by default); the last column is what the untrained network (the estimator) "
            "costs.",
            "",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--section", default="A1")
    args = p.parse_args()
    res = run(args.section, args.threads)
    res.update(when=now(), machine=machine(), versions=versions(["senca", "torch", "scvi-tools"]))
    dump_json(res, RESULTS / "section_time.json")
    (RESULTS / "section_time.md").write_text(report(res))
    print(report(res))


if __name__ == "__main__":
    main()
