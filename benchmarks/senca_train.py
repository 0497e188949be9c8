"""What does SENCA's ``train()`` change?  The estimator (the untrained network) against the network after ``train()``
(attention passes chosen by count splitting) and after ``train(max_epochs=...)`` (plus fine-tuning, kept only when
its held-out loss improves), on her2st A1-D1, in the same run, with the same seeds.

``python -m benchmarks.senca_train [--seeds 5] [--epochs 30] [--quick]``

Conditions (each: every seed; ``n_regions`` = pathologist classes except "undetermined"; ARI on labelled spots;
``senca.tl.regions`` with the seed):

- ``full depth``: A1, B1, C1, D1 as they are, expression + space (the seed drives the count splits and the caller);
- ``0.05x`` and ``0.02x depth``: the same sections with every count kept with probability 0.05 / 0.02 (binomial
  thinning, one draw per seed; genes chosen on the full-depth section, whole library of the thinned counts);
- ``A1 + H&E`` and ``A1 + shuffled H&E``: A1 with its colour/texture statistics, and with the same features permuted
  across spots (one permutation per seed): does training use the image, and does it resist a meaningless one?
- with ``--cohort``: ``cohort (36 sections)``, one model in cohort mode over all 36 her2st sections and one
  ``tl.regions(n_regions=6, sample_key="section")`` caller, pooled ARI on A1-D1 (one vocabulary); and ``new section``,
  for each of A1-D1 a cohort model fitted on the *other patients'* sections only, the section embedded afterwards
  (``get_latent_representation(new)``) and its regions called on it alone.

A gain counts when the mean over seeds of the paired difference (trained - estimator, on the 4-section mean) exceeds
two standard errors. Writes ``benchmarks/results/senca_train.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from benchmarks._common import (
    RESULTS,
    dump_json,
    load_her2st,
    machine,
    now,
    senca_git,
    single_thread,
    thinned,
    versions,
)

SECTIONS = ["A1", "B1", "C1", "D1"]


def _section(name: str, fraction: float, seed: int, image: str | None):
    import senca

    a = senca.datasets.her2st(name, image="hires" if image else None)
    genes = senca.pp.select_genes(a, n_top_genes=3000, layer="counts").var_names
    if fraction < 1.0:
        a = thinned(a, fraction, seed)
    a.obs["library_size"] = np.asarray(a.layers["counts"].sum(1)).ravel()
    a = a[:, genes].copy()
    if image:
        senca.im.extract_features(a, method="stats", progress=False)
        if image == "shuffled":
            a.obsm["X_histology"] = a.obsm["X_histology"][np.random.default_rng(seed).permutation(a.n_obs)]
    return a


def _ari(a, z, n_regions: int, seed: int) -> float:
    import senca

    a.obsm["X_bench"] = z
    senca.tl.regions(a, n_regions=n_regions, use_rep="X_bench", seed=seed, overwrite=True)
    return float(senca.metrics.region_scores(a.obs["pathologist"], a.obs["senca_region"])["ari"])


def _states(model, seed: int, epochs: int, score, depth) -> dict:
    """``score(representation)`` (the ARI of ``model``'s embedding) of the estimator, after ``train()`` and after
    ``train(max_epochs)``, the passes ``train()`` chose, whether the fine-tuning was kept, both training times and the
    median depth (``depth``: libraries). The estimator is asked for by name: a model trained for an earlier seed is
    no longer at its initial state."""
    row = {"estimator": score("estimator")}
    t0 = time.perf_counter()
    model.train(seed=seed)
    train_s = time.perf_counter() - t0
    row.update(train=score("network"), passes=model.selection_["passes"])
    t0 = time.perf_counter()
    model.train(seed=seed, max_epochs=epochs, enable_progress_bar=False)
    finetune_s = time.perf_counter() - t0
    row.update(finetune=score("network"), kept=bool(model.finetune_["kept"]), train_s=round(train_s, 3),
               finetune_s=round(finetune_s, 2), median_umis=float(np.median(depth)))  # fmt: skip
    return row


def run_one(name: str, fraction: float, seed: int, image: str | None, epochs: int) -> dict:
    """Estimator, train() and train(max_epochs) on one section and seed."""
    import senca

    a = _section(name, fraction, seed, image)
    truth = a.obs["pathologist"].astype(str)
    n_regions = int(truth[~truth.isin(["undetermined", "nan"])].nunique())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        senca.model.SENCA.setup_anndata(
            a, layer="counts", image_key="X_histology" if image else None, library_key="library_size"
        )
        model = senca.model.SENCA(a)
        return _states(model, seed, epochs,
                       lambda rep: _ari(a, model.get_latent_representation(representation=rep), n_regions, seed),
                       a.obs["library_size"])  # fmt: skip


CONDITIONS = {
    "full depth": (SECTIONS, 1.0, None),
    "0.05x depth": (SECTIONS, 0.05, None),
    "0.02x depth": (SECTIONS, 0.02, None),
    "A1 + H&E": (["A1"], 1.0, "he"),
    "A1 + shuffled H&E": (["A1"], 1.0, "shuffled"),
}


def run(seeds: list[int], epochs: int, conditions: dict) -> dict:
    single_thread()
    out: dict = {}
    for cond, (sections, fraction, image) in conditions.items():
        out[cond] = {}
        for name in sections:
            out[cond][name] = [run_one(name, fraction, s, image, epochs) for s in seeds]
            r = out[cond][name]
            print(
                f"{cond} {name}: estimator {np.mean([x['estimator'] for x in r]):.3f}, train "
                f"{np.mean([x['train'] for x in r]):.3f} (passes {[x['passes'] for x in r]}), fine-tuned "
                f"{np.mean([x['finetune'] for x in r]):.3f} (kept {sum(x['kept'] for x in r)}/{len(r)})",
                flush=True,
            )
    return out


def _cohort_sections(exclude_patient: str | None = None):
    import senca

    names = senca.datasets.her2st_sections("all", local_only=True)
    adatas = {}
    for s in names:
        if exclude_patient and s.startswith(exclude_patient):
            continue
        a = load_her2st(s)
        a.obs["pathologist"] = a.obs["pathologist"].astype(str) if "pathologist" in a.obs else "NA"
        adatas[s] = a
    cohort = senca.pp.concat_sections(adatas)
    cohort = cohort[np.asarray(cohort.layers["counts"].sum(1)).ravel() > 0].copy()
    return senca.pp.select_genes(cohort, n_top_genes=3000, sample_key="section")


def _aligned(section, genes):
    """The section on exactly ``genes`` (a gene it lacks counts zero), its whole library in ``obs["library_size"]``."""
    import anndata as ad
    import scipy.sparse as sp

    counts = sp.csr_matrix(section.layers["counts"])
    pos = section.var_names.get_indexer(genes)
    kept = sp.csr_matrix(counts[:, np.where(pos >= 0, pos, 0)].multiply((pos >= 0)[None, :]))
    out = ad.AnnData(kept, obs=section.obs.copy(), obsm={"spatial": np.asarray(section.obsm["spatial"])})
    out.var_names = list(genes)
    out.layers["counts"] = kept.copy()
    out.obs["library_size"] = np.asarray(counts.sum(1)).ravel()
    return out


def _fit_cohort(cohort):
    import senca

    senca.model.SENCA.setup_anndata(
        cohort, layer="counts", sample_key="section", library_key="library_size", overwrite=True
    )
    return senca.model.SENCA(cohort)


def run_cohort(seeds: list[int], epochs: int) -> dict:
    """(c) one vocabulary over the 36-section cohort; (b) a section embedded by a model of the other patients."""
    import senca

    single_thread()
    out: dict = {"cohort (36 sections)": {"A1-D1 pooled": []}, "new section": {s: [] for s in SECTIONS}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = _cohort_sections()
        labelled = cohort.obs["section"].isin(SECTIONS).to_numpy()
        truth = cohort.obs["pathologist"].to_numpy()
        model = _fit_cohort(cohort)
        for seed in seeds:

            def pooled_ari(rep, seed=seed):
                cohort.obsm["X_bench"] = model.get_latent_representation(representation=rep)
                senca.tl.regions(cohort, n_regions=6, use_rep="X_bench", sample_key="section", seed=seed,
                                 overwrite=True)  # fmt: skip
                pred = cohort.obs["senca_region"].to_numpy()
                return float(senca.metrics.region_scores(truth[labelled], pred[labelled])["ari"])

            row = _states(model, seed, epochs, pooled_ari, cohort.obs["library_size"])
            out["cohort (36 sections)"]["A1-D1 pooled"].append(row)
            print("cohort", seed, row, flush=True)
        for name in SECTIONS:
            rest = _cohort_sections(exclude_patient=name[0])
            new = _aligned(load_her2st(name), rest.var_names)
            truth_new = new.obs["pathologist"].astype(str)
            n_regions = int(truth_new[~truth_new.isin(["undetermined", "nan"])].nunique())
            model = _fit_cohort(rest)
            for seed in seeds:

                def new_ari(rep, model=model, new=new, n_regions=n_regions, seed=seed):
                    return _ari(new, model.get_latent_representation(new, representation=rep), n_regions, seed)

                row = _states(model, seed, epochs, new_ari, new.obs["library_size"])
                out["new section"][name].append(row)
                print("new section", name, seed, row, flush=True)
    return out


def _paired(rows: dict, key: str) -> tuple[float, float, float]:
    """Per seed: the mean over sections of (key - estimator); returns mean, standard error, and the key's mean."""
    n_seeds = len(next(iter(rows.values())))
    diffs = [np.mean([rows[s][i][key] - rows[s][i]["estimator"] for s in rows]) for i in range(n_seeds)]
    level = [np.mean([rows[s][i][key] for s in rows]) for i in range(n_seeds)]
    se = float(np.std(diffs, ddof=1) / np.sqrt(n_seeds)) if n_seeds > 1 else float("nan")
    return float(np.mean(diffs)), se, float(np.mean(level))


def report(res: dict) -> str:
    seeds, epochs = res["seeds"], res["epochs"]
    cohort = " --cohort" if "cohort (36 sections)" in res["runs"] else ""
    rerun = res.get("cohort_run")
    cohort_run = f" (cohort rows: `--cohort-only`, {rerun['when']}, senca {rerun['senca']})" if rerun else ""
    lines = [
        "## What SENCA's train() changes: the estimator against the trained network",
        "",
        f"Command: `python -m benchmarks.senca_train --seeds {len(seeds)} --epochs {epochs}{cohort}`; {res['when']}, "
        f"senca {res['senca']}{cohort_run}. her2st, `n_regions` = pathologist classes except *undetermined*, ARI "
        "on labelled spots (`senca.tl.regions` with each seed). *estimator*: "
        "`get_latent_representation(representation='estimator')` (the network's initial state); *train()*: after "
        "`model.train(seed)` (attention passes chosen by count splitting, "
        f"no labels); *+ fine-tuning*: after `model.train(seed, max_epochs={epochs})` (the attention's learnable "
        "paths trained on count splits, kept only when the held-out loss improves). Depth: binomial thinning of "
        "the counts, one draw per seed. Differences are paired by seed (the 4-section mean, or A1 alone, of trained "
        "minus estimator), mean ± standard error over seeds; **bold** where the gain exceeds two standard errors.",
        "",
        "| condition | median UMIs / spot | estimator | train() | train() - estimator | passes chosen "
        "| + fine-tuning | fine-tuned - estimator | fine-tuning kept | train() s | fine-tuning s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cond, rows in res["runs"].items():
        flat = [x for r in rows.values() for x in r]
        d_tr, se_tr, lv_tr = _paired(rows, "train")
        d_ft, se_ft, lv_ft = _paired(rows, "finetune")
        est = float(np.mean([np.mean([rows[s][i]["estimator"] for s in rows]) for i in range(len(seeds))]))

        def cell(d, se):
            txt = f"{d:+.3f} ± {se:.3f}"
            return f"**{txt}**" if d > 2 * se else txt

        passes = sorted({x["passes"] for x in flat})
        lines.append(
            f"| {cond} ({', '.join(rows)}) | {np.median([x['median_umis'] for x in flat]):.0f} | {est:.3f} | "
            f"{lv_tr:.3f} | {cell(d_tr, se_tr)} | {', '.join(map(str, passes))} | {lv_ft:.3f} | {cell(d_ft, se_ft)} "
            f"| {sum(x['kept'] for x in flat)}/{len(flat)} | {np.median([x['train_s'] for x in flat]):.2f} | "
            f"{np.median([x['finetune_s'] for x in flat]):.1f} |"
        )
    lines += ["", "Per section (mean ARI over seeds: estimator / train() / + fine-tuning):", ""]
    lines += ["| condition | " + " | ".join(SECTIONS) + " |", "|---|" + "---|" * len(SECTIONS)]
    for cond, rows in res["runs"].items():
        if not set(rows) & set(SECTIONS):
            continue
        cells = []
        for s in SECTIONS:
            if s not in rows:
                cells.append("–")
                continue
            m = [np.mean([x[k] for x in rows[s]]) for k in ("estimator", "train", "finetune")]
            cells.append(" / ".join(f"{v:.3f}" for v in m))
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Times are medians per section on the shared 2-core machine (one thread), `train()` without and with "
        "fine-tuning. The choice of passes has no label-tuned setting: its leave-one-section-out estimate is the "
        "all-four figure above.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="A1 at full depth, two seeds, three epochs (CI smoke test)")
    p.add_argument("--cohort", action="store_true", help="also the cohort conditions (36 sections; about an hour)")
    p.add_argument("--cohort-only", action="store_true", help="the cohort conditions alone, merged into the results")
    args = p.parse_args(argv)
    if args.cohort_only:
        res = json.loads((RESULTS / "senca_train.json").read_text())
        seeds = list(range(args.seeds))
        if seeds != res["seeds"] or args.epochs != res["epochs"]:
            raise SystemExit(f"the stored results ran seeds {res['seeds']}, epochs {res['epochs']}: pass the same")
        res["runs"].update(run_cohort(seeds, args.epochs))
        res["cohort_run"] = {"when": now(), "senca": senca_git()}
        dump_json(res, RESULTS / "senca_train.json")
        (RESULTS / "senca_train.md").write_text(report(res))
        print(report(res))
        return
    conditions = {"full depth": (["A1"], 1.0, None)} if args.quick else CONDITIONS
    seeds = list(range(2 if args.quick else args.seeds))
    epochs = 3 if args.quick else args.epochs
    res = {
        "seeds": seeds,
        "epochs": epochs,
        "runs": {**run(seeds, epochs, conditions), **(run_cohort(seeds, epochs) if args.cohort else {})},
        "when": now(),
        "senca": senca_git(),
        "machine": machine(),
        "versions": versions(["senca", "torch", "scvi-tools"]),
    }
    name = "senca_train_quick" if args.quick else "senca_train"
    dump_json(res, RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(report(res))
    print(report(res))


if __name__ == "__main__":
    main()
