"""SENCA cohort mode on all 36 her2st sections: one model, one region caller, one label vocabulary.

``python -m benchmarks.cohort [--seeds N] [--quick]``

Protocol (fixed before running):

- Cohort: the 36 her2st sections (``senca.pp.concat_sections``; spots without any count dropped: one in D5),
  3,000 seurat_v3 HVGs chosen with
  ``sample_key="section"`` (``senca.pp.select_genes``, whole library kept), ``SENCA.setup_anndata(sample_key=
  "section", library_key="library_size")``: neighbours never cross sections.
- SENCA cohort mode (``integrate`` on, its default with several samples) against the same model with
  ``integrate=False``: the cohort PCA + within-section smoothing baseline, through the same code.
- One region caller over all 13,620 spots: ``senca.tl.regions(n_regions=6, sample_key="section")`` (6 = the
  pathologist classes of A1-D1 pooled, without "undetermined"), seeds 0..N-1. Pooled ARI on the labelled,
  non-undetermined spots of A1-D1 (one vocabulary: region "2" must mean the same in every section), and the ARI of
  each of A1-D1 under that caller.
- Left out: for each of A1-D1, the cohort without it (35 sections) gets its own model and regions; the left-out
  section is then embedded by that model (``train()`` on the 35, then ``model.get_latent_representation(new)``, no
  retraining) and assigned by
  the stored caller (``senca.tl.assign_regions``); compared with the same section's ARI when trained in.
- Time: one full cohort fit (select genes, setup, model, default training, embedding, regions), ``--threads``
  torch threads (default 2).

Writes ``benchmarks/results/cohort.json`` and ``benchmarks/results/cohort.md``.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np

from benchmarks._common import RESULTS, dump_json, load_her2st, machine, now, versions

LABELLED = ["A1", "B1", "C1", "D1"]
N_REGIONS = 6


def _all_sections():
    import senca

    return senca.datasets.her2st_sections("all", local_only=True)


def _cohort(sections):
    import senca

    adatas = {}
    for s in sections:
        a = load_her2st(s)
        if "pathologist" not in a.obs:
            a.obs["pathologist"] = "NA"
        a.obs["pathologist"] = a.obs["pathologist"].astype(str)
        adatas[s] = a
    cohort = senca.pp.concat_sections(adatas)
    empty = np.asarray(cohort.layers["counts"].sum(1)).ravel() == 0  # her2st D5 has one spot without counts
    return senca.pp.select_genes(cohort[~empty].copy(), n_top_genes=3000, sample_key="section")


def _fit(cohort, integrate: bool, train: bool, times: dict | None = None):
    import senca

    times = {} if times is None else times
    t = time.perf_counter()
    senca.model.SENCA.setup_anndata(
        cohort, layer="counts", sample_key="section", library_key="library_size", overwrite=True
    )  # a subset of the cohort carries its stale neighbour index
    times["setup_s"] = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        model = senca.model.SENCA(cohort, integrate=integrate)
        times["model_s"] = time.perf_counter() - t
        if train:
            t = time.perf_counter()
            model.train(seed=0, enable_progress_bar=False, accelerator="cpu")
            times["train_s"] = time.perf_counter() - t
            times["passes"] = int(model.selection_["passes"])
    return model


def _ari(truth, pred) -> float:
    from sklearn.metrics import adjusted_rand_score

    truth = np.asarray(truth, dtype=str)
    ok = (truth != "undetermined") & (truth != "NA") & (truth != "nan")
    return float(adjusted_rand_score(truth[ok], np.asarray(pred)[ok]))


def _regions(adata, seed):
    import senca

    senca.tl.regions(adata, n_regions=N_REGIONS, sample_key="section", seed=seed, overwrite=True)
    return adata.obs["senca_region"].to_numpy()


def run(seeds: list[int], quick: bool = False, threads: int = 2) -> dict:
    import torch

    torch.set_num_threads(threads)
    sections = _all_sections()
    if quick:
        sections = LABELLED + [s for s in sections if s not in LABELLED][:4]
    t0 = time.perf_counter()
    cohort = _cohort(sections)
    load_s = time.perf_counter() - t0
    out = {
        "sections": sections,
        "n_spots": int(cohort.n_obs),
        "n_genes": int(cohort.n_vars),
        "seeds": seeds,
        "threads": threads,
    }
    labelled = cohort.obs["section"].isin(LABELLED).to_numpy()
    truth = cohort.obs["pathologist"].to_numpy()

    for name, integrate in (("senca_cohort", True), ("baseline_pca_smoothing", False)):
        t0 = time.perf_counter()
        times: dict = {}
        model = _fit(cohort, integrate, train=integrate, times=times)
        t = time.perf_counter()
        cohort.obsm["X_senca"] = model.get_latent_representation()
        times["embed_s"] = time.perf_counter() - t
        fit_s = time.perf_counter() - t0
        res = {"pooled_ari": [], "section_ari": {s: [] for s in LABELLED}, "fit_s": fit_s, **times}
        for seed in seeds:
            t1 = time.perf_counter()
            lab = _regions(cohort, seed)
            res.setdefault("regions_s", []).append(time.perf_counter() - t1)
            res["pooled_ari"].append(_ari(truth[labelled], lab[labelled]))
            for s in LABELLED:
                m = (cohort.obs["section"] == s).to_numpy()
                res["section_ari"][s].append(_ari(truth[m], lab[m]))
        if integrate:
            trained_in = {s: list(v) for s, v in res["section_ari"].items()}
        out[name] = res
        print(
            name,
            f"pooled ARI {np.mean(res['pooled_ari']):.3f} ± {np.std(res['pooled_ari']):.3f}",
            {s: round(float(np.mean(v)), 3) for s, v in res["section_ari"].items()},
            f"fit {fit_s:.0f} s",
            flush=True,
        )

    import senca

    left = {}
    for s in LABELLED:
        rest = cohort[cohort.obs["section"] != s].copy()
        new = cohort[cohort.obs["section"] == s].copy()
        model = _fit(rest, True, train=True)
        rest.obsm["X_senca"] = model.get_latent_representation()
        new.obsm["X_senca"] = model.get_latent_representation(new)
        aris = []
        for seed in seeds:
            _regions(rest, seed)
            senca.tl.assign_regions(new, rest, overwrite=True)
            aris.append(_ari(new.obs["pathologist"], new.obs["senca_region"]))
        left[s] = {"left_out": aris, "trained_in": trained_in[s]}
        print(s, f"left out {np.mean(aris):.3f} vs trained in {np.mean(trained_in[s]):.3f}", flush=True)
    out["left_out"] = left
    out["load_s"] = load_s
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def _ms(v) -> str:
    return f"{np.mean(v):.3f} ± {np.std(v):.3f}"


def report(res: dict) -> str:
    a, b = res["senca_cohort"], res["baseline_pca_smoothing"]
    lines = [
        "## SENCA cohort mode: 36 her2st sections, one region caller",
        "",
        f"Command: `python -m benchmarks.cohort --seeds {len(res['seeds'])}`; {res['n_spots']:,} spots, "
        f"{res['n_genes']:,} genes (3,000 cohort HVGs), {len(res['sections'])} sections; {res['when']}.",
        "",
        "One model over every section (neighbours within sections), one `senca.tl.regions(n_regions=6)` fitted on all "
        "spots; ARI on the labelled, non-undetermined spots of A1-D1 pooled (one label vocabulary) and per section "
        "under the same caller; mean ± sd over region-caller seeds. The baseline is the same SENCA model with "
        "`integrate=False`: cohort PCA + H&E-free neighbourhood smoothing + the same caller.",
        "",
        "| embedding | pooled ARI A1-D1 | A1 | B1 | C1 | D1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("SENCA cohort mode (Harmony over sections)", a), ("cohort PCA + smoothing (integrate=False)", b)):
        cells = " | ".join(f"{np.mean(r['section_ari'][s]):.3f}" for s in LABELLED)
        lines.append(f"| {name} | {_ms(r['pooled_ari'])} | {cells} |")
    lines += [
        "",
        "A section left out of the cohort, embedded afterwards by the 35-section model and assigned by its stored "
        "region caller (`senca.tl.assign_regions`), against the same section trained in (ARI under the cohort "
        "vocabulary, mean over seeds):",
        "",
        "| section | trained in | left out, embedded afterwards | difference |",
        "|---|---|---|---|",
    ]
    for s, r in res["left_out"].items():
        lines.append(
            f"| {s} | {np.mean(r['trained_in']):.3f} | {np.mean(r['left_out']):.3f} | "
            f"{np.mean(r['left_out']) - np.mean(r['trained_in']):+.3f} |"
        )
    lines += [
        "",
        f"Time for the whole cohort on {res['machine'].get('cores', '?')} CPU cores ({res['threads']} torch threads, "
        f"load {res['machine'].get('load_1min')} at the end): reading the 36 sections and selecting genes "
        f"{res['load_s']:.0f} s; setup {a['setup_s']:.0f} s; model (PCA, Harmony) {a['model_s']:.0f} s; default "
        f"training {a['train_s']:.0f} s (it chose {a.get('passes', '?')} attention passes by count splitting over "
        f"the cohort); embedding {a['embed_s']:.0f} s; one `tl.regions` call {np.mean(a['regions_s']):.0f} s: "
        f"**{a['fit_s'] + np.mean(a['regions_s']):.0f} s** from setup to regions. Peak RSS "
        f"{res['peak_rss_gb']:.1f} GB.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="8 sections, 1 seed (smoke test)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args()
    seeds = list(range(1 if args.quick else args.seeds))
    res = run(seeds, quick=args.quick, threads=args.threads)
    res.update(when=now(), machine=machine(), versions=versions(["senca", "harmonypy", "scanpy", "scikit-learn"]))
    name = "cohort_quick" if args.quick else "cohort"
    dump_json(res, RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(report(res))
    print(report(res))


if __name__ == "__main__":
    main()
