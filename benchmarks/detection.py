"""SpaCRD cancer-region detection on her2st: leave-one-patient-out over A1, B1, C1, D1.

``python -m benchmarks.detection [--quick] [--seeds N] [--max-epochs E] [--no-image]``

Protocol (fixed before looking at any fold; nothing is tuned per fold):

- Labels: pathologist label ``invasive cancer`` or ``cancer in situ`` = cancer; every other class, ``undetermined``
  included, = non-cancer (SpaCRD's protocol).
- Folds: train on three of A1, B1, C1, D1 (one section per patient), predict the fourth (its labels are only read by
  the evaluation). ``seeds`` seeds per fold (default 5: 0..4).
- SpaCRD: ``senca.model.SpaCRD`` with its defaults (expression-only: only A1 has an image).
- Mixed-source folds: the same with A1's histology features (``senca.im.extract_features(method="stats")`` on the
  A1 app PNG) and NaN feature rows for B1, C1, D1 (no image): the three folds where A1 is a source.
- SpaCRD's ``predict`` adapts to the target without labels (neighbourhood pooling of the logits and self-training
  on the target's most confident spots, its defaults). From the same fit, ``predict(n_smooth=0, adapt_epochs=0)``
  gives the network's own scores ("SpaCRD net").
- Baseline: logistic regression (scikit-learn defaults, L2, C=1) on the *same* genes and the same per-section
  standardised features SpaCRD uses, same folds (deterministic, so its std over seeds is 0). "LogReg + adapt":
  the same logistic regression followed by the same two label-free target steps as SpaCRD (its decision values
  pooled over neighbourhoods, a second logistic regression fitted on the target's top/bottom 20 % as pseudo-labels,
  pooled again), so the table separates what the network contributes from what the target adaptation does.
- Metrics: ``senca.metrics.detection_scores``: AUC, AP, F1 at the label-free GMM threshold, KS. Wall time per fit.

Writes ``benchmarks/results/detection.json`` and ``benchmarks/results/detection.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

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


def run_fold(
    sections: dict, target: str, seeds: list[int], image: bool, max_epochs: int | None, n_top_genes: int | None = None
) -> dict:
    """Train SpaCRD (one fit per seed) and the logistic baseline on the three other sections; score ``target``."""
    from sklearn.linear_model import LogisticRegression

    import senca
    from senca.model._spacrd import gene_features, neighbor_smooth, pseudo_labels
    from senca.pp import knn_index

    src_names = [s for s in SECTIONS if s != target]
    source = senca.pp.concat_sections({s: sections[s] for s in src_names})
    tgt = sections[target].copy()
    y = tgt.obs["cancer"].to_numpy()
    res = {
        "target": target,
        "sources": src_names,
        "image": image,
        "n_target": int(tgt.n_obs),
        "target_prevalence": float(y.mean()),
        "spacrd": [],
        "logreg": None,
    }
    for seed in seeds:
        t0 = time.perf_counter()
        senca.model.SpaCRD.setup_anndata(
            source,
            layer="counts",
            image_key="X_histology" if image else None,
            labels_key="cancer",
            sample_key="section",
        )
        model = senca.model.SpaCRD(source, **({} if n_top_genes is None else {"n_top_genes": n_top_genes}))
        model.train(
            max_epochs=max_epochs, seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False
        )
        pred = tgt.copy()
        pred.obs = pred.obs[[c for c in pred.obs.columns if c not in ("cancer", "pathologist")]]  # labels never seen
        model.predict(pred, overwrite=True)
        wall = time.perf_counter() - t0
        sc = senca.metrics.detection_scores(y, pred.obs["spacrd_score"].to_numpy(), seed=seed)
        sc.update(seed=seed, wall_s=wall, predicted_prevalence=float(pred.obs["spacrd_cancer"].mean()))
        model.predict(pred, key_added="net", n_smooth=0, adapt_epochs=0)
        sc["net_auc"] = float(senca.metrics.detection_scores(y, pred.obs["net_score"].to_numpy(), seed=seed)["auc"])
        res["spacrd"].append(sc)
        msg = f"auc {sc['auc']:.3f} ap {sc['ap']:.3f} f1 {sc['f1']:.3f} (net {sc['net_auc']:.3f}; {wall:.0f} s)"
        print(f"  {target} seed {seed}: {msg}", flush=True)
        genes = model.genes
    # logistic regression on the same genes, same per-section standardisation
    t0 = time.perf_counter()
    xs = gene_features(source.layers["counts"], source.var_names, genes, source.obs["section"].astype(str).to_numpy())
    xt = gene_features(tgt.layers["counts"], tgt.var_names, genes, np.zeros(tgt.n_obs, dtype=int))
    lr = LogisticRegression(max_iter=2000).fit(xs, source.obs["cancer"].to_numpy())
    d = lr.decision_function(xt)
    s = (d - d.min()) / (d.max() - d.min())
    sc = senca.metrics.detection_scores(y, s, seed=0)
    sc.update(wall_s=time.perf_counter() - t0)
    # the same label-free target steps as SpaCRD.predict's defaults, with a logistic regression as the network
    nbr = knn_index(np.asarray(tgt.obsm["spatial"]), model.n_neighbors, None)
    pseudo = pseudo_labels(neighbor_smooth(d, nbr, 2), np.zeros(tgt.n_obs), 0.2)
    keep = np.isfinite(pseudo)
    d2 = neighbor_smooth(LogisticRegression(max_iter=2000).fit(xt[keep], pseudo[keep]).decision_function(xt), nbr, 2)
    sc["adapt_auc"] = float(senca.metrics.detection_scores(y, d2, seed=0)["auc"])
    res["logreg"] = sc
    print(
        f"  {target} logreg: auc {sc['auc']:.3f} ap {sc['ap']:.3f} f1 {sc['f1']:.3f} (+adapt {sc['adapt_auc']:.3f})",
        flush=True,
    )
    return res


def _ms(vals) -> str:
    vals = np.asarray(vals, dtype=float)
    return f"{vals.mean():.3f} ± {vals.std():.3f}"


def summarise(folds: list[dict]) -> pd.DataFrame:
    rows = []
    for f in folds:
        sp = pd.DataFrame(f["spacrd"])
        rows.append(
            {
                "target": f["target"],
                "image": "A1 stats" if f["image"] else "none",
                "n": f["n_target"],
                "prevalence": f"{f['target_prevalence']:.2f}",
                "SpaCRD AUC": _ms(sp["auc"]),
                "SpaCRD AP": _ms(sp["ap"]),
                "SpaCRD F1": _ms(sp["f1"]),
                "SpaCRD net AUC": _ms(sp["net_auc"]),
                "pred. prevalence": _ms(sp["predicted_prevalence"]),
                "LogReg AUC": f"{f['logreg']['auc']:.3f}",
                "LogReg AP": f"{f['logreg']['ap']:.3f}",
                "LogReg F1": f"{f['logreg']['f1']:.3f}",
                "LogReg + adapt AUC": f"{f['logreg']['adapt_auc']:.3f}",
                "s/fit": f"{sp['wall_s'].mean():.0f}",
            }
        )
    return pd.DataFrame(rows)


def _mean_over_folds(folds, key, method="spacrd"):
    if method == "spacrd":
        per_seed = np.array([[r[key] for r in f["spacrd"]] for f in folds])  # folds x seeds
        means = per_seed.mean(0)  # fold mean per seed
        return float(means.mean()), float(means.std())
    return float(np.mean([f["logreg"][key] for f in folds])), 0.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, no image folds")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--max-epochs", type=int, default=None, help="SpaCRD stage-2 epochs (default: the model's)")
    p.add_argument("--n-top-genes", type=int, default=None, help="HVGs (default: the model's, 3000)")
    p.add_argument("--no-image", action="store_true", help="skip the mixed-source folds with A1's image")
    p.add_argument("--folds", default=",".join(SECTIONS), help="targets to run (default all four)")
    p.add_argument("--out", default=str(RESULTS / "detection"), help="output path without extension")
    args = p.parse_args(argv)
    _quiet()
    seeds = list(range(1 if args.quick else args.seeds))
    image = not (args.quick or args.no_image)
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
        out["folds"].append(run_fold(sections, t, seeds, False, args.max_epochs, args.n_top_genes))
    if image:
        for t in [t for t in targets if t != "A1"]:
            print(f"fold: target {t}, sources with A1's image (mixed)", flush=True)
            out["folds_image"].append(run_fold(sections, t, seeds, True, args.max_epochs, args.n_top_genes))
    out["total_wall_s"] = time.perf_counter() - t_all
    summary = {}
    for name, folds in (("expression", out["folds"]), ("mixed_image", out["folds_image"])):
        if not folds:
            continue
        summary[name] = {
            f"{m}_{k}": _mean_over_folds(folds, k, m) for m in ("spacrd", "logreg") for k in ("auc", "ap", "f1")
        }
        summary[name]["spacrd_net_auc"] = _mean_over_folds(folds, "net_auc", "spacrd")
        summary[name]["logreg_adapt_auc"] = _mean_over_folds(folds, "adapt_auc", "logreg")
    out["summary"] = summary
    out["command"] = (
        f"python -m benchmarks.detection{' --quick' if args.quick else ''}"
        f"{'' if args.quick or args.seeds == 5 else f' --seeds {args.seeds}'}"
        f"{'' if args.n_top_genes is None else f' --n-top-genes {args.n_top_genes}'}"
        f"{' --no-image' if args.no_image else ''}"
    )
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(out, indent=1, default=float))
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
        "Cancer = invasive cancer or cancer in situ; undetermined = non-cancer. F1 at the label-free GMM threshold. "
        "SpaCRD: `predict` with its defaults (label-free adaptation to the target: self-training on its most "
        "confident spots, neighbourhood pooling of the logits), mean ± std over seeds. SpaCRD net: the same fits "
        "scored by the trained network alone (`n_smooth=0, adapt_epochs=0`). LogReg: logistic regression on the same "
        "standardised genes (deterministic); LogReg + adapt: the same followed by the same two label-free target "
        "steps.",
        "",
        "## Expression-only folds",
        "",
        summarise(out["folds"]).to_markdown(index=False),
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
            f"- {name}: SpaCRD AUC {s['spacrd_auc'][0]:.3f} ± {s['spacrd_auc'][1]:.3f}, AP {s['spacrd_ap'][0]:.3f} "
            f"± {s['spacrd_ap'][1]:.3f}, F1 {s['spacrd_f1'][0]:.3f} ± {s['spacrd_f1'][1]:.3f} | LogReg AUC "
            f"{s['logreg_auc'][0]:.3f}, AP {s['logreg_ap'][0]:.3f}, F1 {s['logreg_f1'][0]:.3f} | SpaCRD net only AUC "
            f"{s['spacrd_net_auc'][0]:.3f} ± {s['spacrd_net_auc'][1]:.3f} | LogReg + adapt AUC "
            f"{s['logreg_adapt_auc'][0]:.3f}"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
