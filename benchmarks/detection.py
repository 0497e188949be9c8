"""SpaCRD cancer-region detection on her2st: leave-one-patient-out over A1, B1, C1, D1.

``python -m benchmarks.detection [--quick] [--seeds N] [--max-epochs E] [--no-image] [--no-single] [--timing]``

Protocol (fixed before looking at any fold; nothing is tuned per fold):

- Labels: pathologist label ``invasive cancer`` or ``cancer in situ`` = cancer; every other class, ``undetermined``
  included, = non-cancer (SpaCRD's protocol).
- Folds: train on three of A1, B1, C1, D1 (one section per patient), predict the fourth (its labels are only read by
  the evaluation). With four labelled sections this is also "train on all other labelled sections". ``seeds`` seeds
  per fold (default 5: 0..4).
- SpaCRD: ``senca.model.SpaCRD`` with its defaults (expression-only: only A1 has an image), scored with its default
  ``predict`` and, from the same fit, with the label-free variants listed in ``VARIANTS`` (the ablations): the
  network alone (``n_smooth=0, adapt=None``), pooling only, the previous default (fine-tuning a copy of the network,
  Gaussian-mixture call), the linear adaptation with the mixture call, other pseudo-label fractions and pooling.
- Single network: the same with ``n_members=1`` (default predict and network alone), to measure the ensemble.
- Mixed-source folds: the same with A1's histology features (``senca.im.extract_features(method="stats")`` on the
  A1 app PNG) and NaN feature rows for B1, C1, D1 (no image): the three folds where A1 is a source.
- Baseline: logistic regression (scikit-learn defaults, L2, C=1) on the *same* genes and the same per-section
  standardised features SpaCRD uses, same folds (deterministic), followed by the *same* label-free steps as each
  SpaCRD variant (the same functions: ``pseudo_labels``, ``linear_adapt``, ``neighbor_smooth``, the same calls);
  "LogReg + adapt" is the LogReg with SpaCRD's default steps. So the table separates what the network contributes
  from what the target adaptation does.
- Nested leave-one-section-out estimate of the choice of label-free variant: for each fold, the variant with the
  best mean AUC over the other three folds is scored on it.
- Metrics: AUC, AP, F1 at each variant's label-free call (never the labels), predicted and true prevalence. Wall
  time per fit. ``--timing``: training on all four sections and predicting one unlabelled section (A2), with one
  and with two torch threads.

Writes ``benchmarks/results/detection.json`` and ``benchmarks/results/detection.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import dump_json

SECTIONS = ["A1", "B1", "C1", "D1"]
CANCER = ["invasive cancer", "cancer in situ"]
RESULTS = Path(__file__).resolve().parent / "results"


def _quiet():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    warnings.filterwarnings("ignore")
    import logging

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(1)


def load_sections(with_image: bool) -> dict:
    """her2st A1-D1 with obs['cancer'] (bool); A1 gets obsm['X_histology'] when ``with_image``."""
    import senca

    out = {}
    for s in SECTIONS:
        img = "hires" if (with_image and s == "A1") else None
        a = senca.datasets.her2st(s, image=img)
        a.obs["cancer"] = a.obs["pathologist"].astype(str).isin(CANCER).to_numpy()
        out[s] = a
    if with_image:
        a1 = out["A1"]
        senca.im.extract_features(a1, method="stats", key_added="X_histology", progress=False)
        d = a1.obsm["X_histology"].shape[1]
        for s in SECTIONS[1:]:
            out[s].obsm["X_histology"] = np.full((out[s].n_obs, d), np.nan, dtype=np.float32)
    return out


VARIANTS = {  # label-free predict settings, each scored from the same fit (the ablations)
    "default": {},
    "net": {"n_smooth": 0, "adapt": None},
    "net + pooling": {"adapt": None},
    "finetune (previous default)": {"adapt": "finetune"},
    "linear, GMM call": {"threshold": "gmm"},
    "linear, fraction 0.2": {"adapt_fraction": 0.2},
    "linear, fraction 0.3": {"adapt_fraction": 0.3},
    "linear, 3 pooling passes": {"n_smooth": 3},
}


def _metrics(y, score, call) -> dict:
    import senca

    sc = senca.metrics.detection_scores(y, score, threshold=0.5)  # the threshold is replaced below
    from sklearn.metrics import f1_score

    sc["f1"] = float(f1_score(y, call))
    sc["predicted_prevalence"] = float(np.mean(call))
    del sc["threshold"]
    return sc


def logreg_variants(xs, ys, xt, nbr) -> dict:
    """LogReg decision values on the target, then the same label-free steps as each SpaCRD variant."""
    import inspect

    from sklearn.linear_model import LogisticRegression

    from senca.metrics import gmm_threshold
    from senca.model import SpaCRD
    from senca.model._adapt import linear_adapt, neighbor_smooth, pseudo_labels

    defaults = {k: v.default for k, v in inspect.signature(SpaCRD.predict).parameters.items()}
    d = LogisticRegression(max_iter=2000).fit(xs, ys).decision_function(xt)
    groups = np.zeros(len(xt), dtype=int)
    out = {}
    for name, kw in VARIANTS.items():
        kw = {**defaults, **kw}
        adapt = kw["adapt"]
        if adapt == "finetune":  # nothing to fine-tune: the previous benchmark's LogReg + adapt is not repeated
            continue
        n_smooth, fraction = kw["n_smooth"], kw["adapt_fraction"]
        lg = d
        if adapt == "linear":
            lg = linear_adapt(xt, pseudo_labels(neighbor_smooth(d, nbr, n_smooth), groups, fraction), groups, d)
        lg = neighbor_smooth(lg, nbr, n_smooth)
        s = (lg - lg.min()) / np.ptp(lg)
        balanced = adapt == "linear" and kw["threshold"] != "gmm"
        out[name] = (s, lg >= 0 if balanced else s >= gmm_threshold(s))
    return out


def run_fold(
    sections: dict,
    target: str,
    seeds: list[int],
    image: bool,
    max_epochs: int | None,
    n_top_genes: int | None = None,
    single: bool = True,
) -> dict:
    """Train SpaCRD (one fit per seed) and the logistic baseline on the three other sections; score ``target``."""
    import senca
    from senca.pp import knn_index
    from senca.pp._section_features import gene_features

    src_names = [s for s in SECTIONS if s != target]
    source = senca.pp.concat_sections({s: sections[s] for s in src_names})
    tgt = sections[target].copy()
    y = tgt.obs["cancer"].to_numpy()
    tgt.obs = tgt.obs[[c for c in tgt.obs.columns if c not in ("cancer", "pathologist")]]  # labels never seen
    res = {
        "target": target,
        "sources": src_names,
        "image": image,
        "n_target": int(tgt.n_obs),
        "target_prevalence": float(y.mean()),
        "spacrd": [],
        "single": [],
        "logreg": None,
    }
    extra = {} if n_top_genes is None else {"n_top_genes": n_top_genes}
    for members, key in ((None, "spacrd"), (1, "single")):
        if key == "single" and not single:
            continue
        for seed in seeds:
            t0 = time.perf_counter()
            senca.model.SpaCRD.setup_anndata(
                source,
                layer="counts",
                image_key="X_histology" if image else None,
                labels_key="cancer",
                sample_key="section",
            )
            model = senca.model.SpaCRD(source, **extra, **({} if members is None else {"n_members": members}))
            model.train(
                max_epochs=max_epochs,
                seed=seed,
                accelerator="cpu",
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            pred = tgt.copy()
            model.predict(pred, overwrite=True)
            wall = time.perf_counter() - t0
            row = {"seed": seed, "wall_s": wall, "variants": {}}
            names = list(VARIANTS) if key == "spacrd" else ["default", "net"]
            for name in names:
                p = pred if name == "default" else tgt.copy()
                if name != "default":
                    model.predict(p, **VARIANTS[name])
                row["variants"][name] = _metrics(y, p.obs["spacrd_score"].to_numpy(), p.obs["spacrd_cancer"].to_numpy())
            res[key].append(row)
            d, n = row["variants"]["default"], row["variants"]["net"]
            print(
                f"  {target} {key} seed {seed}: auc {d['auc']:.3f} ap {d['ap']:.3f} f1 {d['f1']:.3f} "
                f"(called {d['predicted_prevalence']:.2f}; net {n['auc']:.3f}; {wall:.0f} s)",
                flush=True,
            )
            genes, k = model.genes, model.n_neighbors
    # logistic regression on the same genes, same per-section standardisation, the same label-free steps
    t0 = time.perf_counter()
    xs = gene_features(source.layers["counts"], source.var_names, genes, source.obs["section"].astype(str).to_numpy())
    xt = gene_features(tgt.layers["counts"], tgt.var_names, genes, np.zeros(tgt.n_obs, dtype=int))
    nbr = knn_index(np.asarray(tgt.obsm["spatial"]), k, None)
    lr = logreg_variants(xs, source.obs["cancer"].to_numpy(), xt, nbr)
    res["logreg"] = {"variants": {name: _metrics(y, s, c) for name, (s, c) in lr.items()}}
    res["logreg"]["wall_s"] = time.perf_counter() - t0
    v = res["logreg"]["variants"]
    print(f"  {target} logreg: auc {v['net']['auc']:.3f} (+adapt {v['default']['auc']:.3f})", flush=True)
    return res


def timing(sections: dict, threads: int) -> dict:
    """Train on A1-D1 with the defaults and predict the unlabelled section A2, with ``threads`` torch threads."""
    import torch

    import senca

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    source = senca.pp.concat_sections(sections)
    senca.model.SpaCRD.setup_anndata(source, layer="counts", labels_key="cancer", sample_key="section")
    model = senca.model.SpaCRD(source)
    t1 = time.perf_counter()
    model.train(seed=0, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    t2 = time.perf_counter()
    model.predict(senca.datasets.her2st("A2", image=None))
    t3 = time.perf_counter()
    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"threads": threads, "setup_s": t1 - t0, "train_s": t2 - t1, "predict_s": t3 - t2, "load_1min": load}


def _vals(rows, variant, key):
    return np.array([r["variants"][variant][key] for r in rows], dtype=float)


def _ms(vals) -> str:
    vals = np.asarray(vals, dtype=float)
    return f"{vals.mean():.3f} ± {vals.std():.3f}"


def summarise(folds: list[dict]) -> pd.DataFrame:
    rows = []
    for f in folds:
        sp, lr = f["spacrd"], f["logreg"]["variants"]
        row = {
            "target": f["target"],
            "n": f["n_target"],
            "true prev.": f"{f['target_prevalence']:.2f}",
            "SpaCRD AUC": _ms(_vals(sp, "default", "auc")),
            "SpaCRD AP": _ms(_vals(sp, "default", "ap")),
            "SpaCRD F1": _ms(_vals(sp, "default", "f1")),
            "SpaCRD called": _ms(_vals(sp, "default", "predicted_prevalence")),
            "net alone AUC": _ms(_vals(sp, "net", "auc")),
        }
        if f["single"]:
            row["1 network AUC"] = _ms(_vals(f["single"], "default", "auc"))
            row["1 network alone AUC"] = _ms(_vals(f["single"], "net", "auc"))
        row.update(
            {
                "LogReg AUC": f"{lr['net']['auc']:.3f}",
                "LogReg + adapt AUC": f"{lr['default']['auc']:.3f}",
                "LogReg + adapt F1": f"{lr['default']['f1']:.3f}",
                "LogReg + adapt called": f"{lr['default']['predicted_prevalence']:.2f}",
                "s/fit": f"{np.mean([r['wall_s'] for r in sp]):.0f}",
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def ablation(folds: list[dict], key: str = "auc") -> pd.DataFrame:
    """Mean over seeds of ``key`` per variant and fold, for SpaCRD and for LogReg with the same steps."""
    rows = []
    for name in VARIANTS:
        r = {"variant": name}
        for f in folds:
            r[f"SpaCRD {f['target']}"] = _vals(f["spacrd"], name, key).mean()
        r["SpaCRD mean"] = np.mean([r[f"SpaCRD {f['target']}"] for f in folds])
        for f in folds:
            lv = f["logreg"]["variants"].get(name)
            r[f"LogReg {f['target']}"] = np.nan if lv is None else lv[key]
        r["LogReg mean"] = np.mean([r[f"LogReg {f['target']}"] for f in folds])
        rows.append(r)
    return pd.DataFrame(rows).round(3)


def nested(folds: list[dict], key: str = "auc") -> dict:
    """Nested leave-one-section-out: per fold, the variant with the best mean over the other folds, scored on it."""
    table = {name: {f["target"]: _vals(f["spacrd"], name, key).mean() for f in folds} for name in VARIANTS}
    out = {}
    for f in folds:
        others = [g["target"] for g in folds if g is not f]
        best = max(VARIANTS, key=lambda n: np.mean([table[n][o] for o in others]))
        out[f["target"]] = {"chosen": best, key: table[best][f["target"]]}
    out["mean"] = float(np.mean([v[key] for v in out.values()]))
    return out


def _fold_mean(folds, variant, key, method="spacrd"):
    """Mean over folds (and ± std over seeds of the fold mean for SpaCRD)."""
    if method == "logreg":
        return float(np.mean([f["logreg"]["variants"][variant][key] for f in folds])), 0.0
    per_seed = np.array([_vals(f[method], variant, key) for f in folds])  # folds x seeds
    means = per_seed.mean(0)
    return float(means.mean()), float(means.std())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, no image folds, no single-network ablation")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--image-seeds", type=int, default=3, help="seeds of the mixed-source folds (default 3)")
    p.add_argument("--max-epochs", type=int, default=None, help="SpaCRD stage-2 epochs (default: the model's)")
    p.add_argument("--n-top-genes", type=int, default=None, help="HVGs (default: the model's, 3000)")
    p.add_argument("--no-image", action="store_true", help="skip the mixed-source folds with A1's image")
    p.add_argument("--no-single", action="store_true", help="skip the single-network (n_members=1) ablation")
    p.add_argument("--timing", action="store_true", help="also time training on A1-D1 + predicting A2, 1 and 2 threads")
    p.add_argument("--folds", default=",".join(SECTIONS), help="targets to run (default all four)")
    p.add_argument("--out", default=str(RESULTS / "detection"), help="output path without extension")
    args = p.parse_args(argv)
    _quiet()
    seeds = list(range(1 if args.quick else args.seeds))
    image = not (args.quick or args.no_image)
    single = not (args.quick or args.no_single)
    targets = args.folds.split(",")
    t_all = time.perf_counter()
    sections = load_sections(with_image=image)
    out = {
        "protocol": __doc__,
        "seeds": seeds,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu(s)",
        "threads": 1,
        "folds": [],
        "folds_image": [],
    }
    import sklearn
    import torch

    import senca

    out["versions"] = {"senca": senca.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__}
    for t in targets:
        print(f"fold: target {t}, expression-only", flush=True)
        out["folds"].append(run_fold(sections, t, seeds, False, args.max_epochs, args.n_top_genes, single))
    if image:
        for t in [t for t in targets if t != "A1"]:
            print(f"fold: target {t}, sources with A1's image (mixed)", flush=True)
            fold = run_fold(sections, t, seeds[: args.image_seeds], True, args.max_epochs, args.n_top_genes, False)
            out["folds_image"].append(fold)
    if args.timing:
        plain = load_sections(with_image=False)
        out["timing"] = [timing(plain, n) for n in (1, 2)]
    out["total_wall_s"] = time.perf_counter() - t_all
    summary = {}
    for name, folds in (("expression", out["folds"]), ("mixed_image", out["folds_image"])):
        if not folds:
            continue
        summary[name] = {
            f"{m}_{v}_{k}": _fold_mean(folds, v, k, m)
            for m in ("spacrd", "logreg")
            for v in ("default", "net")
            for k in ("auc", "ap", "f1")
        }
        if len(folds) > 2:
            summary[name]["nested_auc"] = nested(folds, "auc")
            summary[name]["nested_f1"] = nested(folds, "f1")
        if folds[0]["single"]:
            summary[name]["single_default_auc"] = _fold_mean(folds, "default", "auc", "single")
            summary[name]["single_net_auc"] = _fold_mean(folds, "net", "auc", "single")
    out["summary"] = summary
    out["command"] = (
        f"python -m benchmarks.detection{' --quick' if args.quick else ''}"
        f"{'' if args.quick or args.seeds == 5 else f' --seeds {args.seeds}'}"
        f"{'' if args.n_top_genes is None else f' --n-top-genes {args.n_top_genes}'}"
        f"{' --no-image' if args.no_image else ''}{' --no-single' if args.no_single else ''}"
        f"{' --timing' if args.timing else ''}"
    )
    path = Path(args.out)
    dump_json(out, path.with_suffix(".json"))
    text = markdown(out)
    path.with_suffix(".md").write_text(text)
    print(text)


def markdown(out: dict) -> str:
    """The report of one run (``out`` as written to the json file)."""
    lines = [
        "# SpaCRD cancer-region detection, her2st leave-one-patient-out (A1, B1, C1, D1)",
        "",
        f"Command: `{out['command']}`; seeds {out['seeds']}; {out['machine']}, 1 torch thread; total wall "
        f"{out['total_wall_s'] / 60:.1f} min.",
        "Cancer = invasive cancer or cancer in situ; undetermined = non-cancer. SpaCRD: `predict` with its defaults "
        "(an ensemble of 3 networks; label-free adaptation to the target: a logistic regression on the target's own "
        "genes fitted to its most confident spots, neighbourhood pooling of the logits; the call at the adapted "
        "logit's even-odds point), mean ± std over seeds. F1 at each method's label-free call; 'called' is the "
        "predicted prevalence (compare 'true prev.'). Net alone: the same fits scored by the trained networks "
        "alone (`n_smooth=0, adapt=None`). 1 network: `n_members=1`. LogReg: logistic regression on the same "
        "standardised genes (deterministic); LogReg + adapt: the same followed by the same label-free target steps "
        "and call.",
        "",
        "## Expression-only folds",
        "",
        summarise(out["folds"]).to_markdown(index=False),
        "",
        "## Ablations: label-free variants scored from the same fits (AUC; LogReg with the same steps)",
        "",
        ablation(out["folds"], "auc").to_markdown(index=False),
        "",
        "F1 at each variant's call:",
        "",
        ablation(out["folds"], "f1").to_markdown(index=False),
        "",
    ]
    if out["folds_image"]:
        lines += [
            "## Mixed sources: A1 with its H&E colour/texture statistics, B1/C1/D1 without image",
            "",
            summarise(out["folds_image"]).to_markdown(index=False),
            "",
        ]
    lines += ["## Mean over folds (± std over seeds of the fold mean)", ""]
    for name, s in out["summary"].items():
        lines.append(
            f"- {name}: SpaCRD AUC {s['spacrd_default_auc'][0]:.3f} ± {s['spacrd_default_auc'][1]:.3f}, AP "
            f"{s['spacrd_default_ap'][0]:.3f}, F1 {s['spacrd_default_f1'][0]:.3f} ± {s['spacrd_default_f1'][1]:.3f} | "
            f"networks alone AUC {s['spacrd_net_auc'][0]:.3f} ± {s['spacrd_net_auc'][1]:.3f} | LogReg AUC "
            f"{s['logreg_net_auc'][0]:.3f} | LogReg + adapt AUC {s['logreg_default_auc'][0]:.3f}, AP "
            f"{s['logreg_default_ap'][0]:.3f}, F1 {s['logreg_default_f1'][0]:.3f}"
        )
        if "single_default_auc" in s:
            lines.append(
                f"  - one network (`n_members=1`): AUC {s['single_default_auc'][0]:.3f} ± "
                f"{s['single_default_auc'][1]:.3f}; alone {s['single_net_auc'][0]:.3f} ± {s['single_net_auc'][1]:.3f}"
            )
        if "nested_auc" in s:
            chosen = ", ".join(f"{t}: {v['chosen']}" for t, v in s["nested_auc"].items() if t != "mean")
            lines.append(
                f"  - nested leave-one-section-out choice of the variant (best mean AUC on the other three folds): "
                f"AUC {s['nested_auc']['mean']:.3f} ({chosen}); chosen by F1: F1 {s['nested_f1']['mean']:.3f}"
            )
    if out.get("timing"):
        lines += ["", "## Time: train on A1-D1 (defaults) + predict A2", ""]
        for t in out["timing"]:
            lines.append(
                f"- {t['threads']} torch thread(s): setup {t['setup_s']:.1f} s, train {t['train_s']:.1f} s, predict "
                f"{t['predict_s']:.1f} s; total {t['setup_s'] + t['train_s'] + t['predict_s']:.1f} s (1-min load "
                f"average {t['load_1min']:.1f}: other processes shared the 2 cores)"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
