"""SpaCRD beyond two classes: the pathologist's vocabulary transferred to a new patient (her2st A1, B1, C1, D1).

``python -m benchmarks.multiclass [--seeds N] [--folds A1,B1] [--no-reference] [--reference-rev REV]``

Protocol (fixed before looking at any fold; nothing is tuned per fold):

- Folds: leave one patient out over A1, B1, C1, D1 (one section per patient): train on the other three, predict the
  fourth, whose labels are only read by the evaluation. ``seeds`` seeds per fold (default 5: 0..4), all in one run.
- Vocabulary: the pathologist's classes of the three source sections (``undetermined`` is unlabelled: not trained
  on). A target class absent from the sources (B1's breast glands, A1's cancer in situ) cannot be predicted: it
  counts against every method alike.
- Evaluation: ARI and macro-F1 (over the target's own classes) against the pathologist, ``undetermined`` spots
  excluded.
- SpaCRD: ``SpaCRD.setup_anndata(labels_key="pathologist")`` (multi-class), defaults, expression only (only A1 has an
  image), scored with its default ``predict`` and, from the same fit, the label-free variants of ``VARIANTS``.
- (a) Multinomial logistic regression (scikit-learn defaults, L2, C=1) on the same genes and the same per-section
  standardised features, with the same label-free steps (the same functions) as each SpaCRD variant.
- (b) SENCA's unsupervised regions: ``senca.tl.regions`` on SENCA's default embedding of the target
  (``get_latent_representation()``, no training, expression + space), ``n_regions`` = the target's number of
  pathologist classes, seed = the fold's seed; each region named by majority vote of the target's own labels (an
  oracle naming: an upper bound for unsupervised regions). Also: the same regions named by SpaCRD's labels (a
  label-free naming).
- The cancer call of the multi-class model: the sum of its cancer classes' probabilities (invasive cancer, cancer in
  situ, those in the vocabulary), AUC on every spot (undetermined = not cancer, as ``benchmarks/detection.py``),
  beside the binary model's (``labels_key`` = cancer, defaults, the same seed) on the same folds.
- The binary model's adaptation: AUC of its default against the network alone and the adaptation without its
  agreement check, from the same fits.
- Binary outputs unchanged: the binary model of seed 0 is also trained and scored by the senca source of
  ``--reference-rev`` (default: where this branch left ``main``) and by this working tree's source, each in a fresh
  process; the scores must be equal.

Writes ``benchmarks/results/multiclass.json`` and ``benchmarks/results/multiclass.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import dump_json

SECTIONS = ["A1", "B1", "C1", "D1"]
CANCER = ["invasive cancer", "cancer in situ"]
UNLABELED = "undetermined"
RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]

VARIANTS = {  # label-free predict settings, each scored from the same fit (the ablations)
    "default": {},
    "net": {"n_smooth": 0, "adapt": None},
    "net + pooling": {"adapt": None},
    "finetune": {"adapt": "finetune"},
}
BINARY_VARIANTS = {"default": {}, "net": {"n_smooth": 0, "adapt": None}}


def _quiet():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    warnings.filterwarnings("ignore")
    import logging

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(1)


def load_sections() -> dict:
    """her2st A1-D1, expression only, with obs['pathologist'] and obs['cancer'] (bool, undetermined = not cancer)."""
    import senca

    out = {}
    for s in SECTIONS:
        a = senca.datasets.her2st(s, image=None)
        a.obs["cancer"] = a.obs["pathologist"].astype(str).isin(CANCER).to_numpy()
        out[s] = a
    return out


# ----------------------------------------------------------------------------------------------------- metrics
def class_metrics(truth: np.ndarray, labels: np.ndarray) -> dict:
    """ARI and macro-F1 (over the target's classes) on the spots the pathologist labelled (undetermined excluded)."""
    from sklearn.metrics import adjusted_rand_score, f1_score

    keep = truth != UNLABELED
    t, p = truth[keep], np.asarray(labels, dtype=object)[keep].astype(str)
    return {
        "ari": float(adjusted_rand_score(t, p)),
        "f1": float(f1_score(t, p, labels=sorted(set(t)), average="macro", zero_division=0)),
        "accuracy": float(np.mean(t == p)),
    }


def cancer_auc(cancer: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(cancer, score))


def majority_names(regions: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Each region named by the most frequent of ``names`` among its spots (undetermined ones left out)."""
    out = np.empty(len(regions), dtype=object)
    for r in pd.unique(regions):
        inside = regions == r
        votes = names[inside & (names != UNLABELED)]
        out[inside] = pd.Series(votes).mode().iloc[0] if len(votes) else UNLABELED
    return out


# ----------------------------------------------------------------------------------------------------- baselines
def logreg_variants(xs, ys, xt, nbr, classes) -> dict:
    """Multinomial LogReg logits on the target, then the same label-free steps as each SpaCRD variant."""
    import inspect

    from sklearn.linear_model import LogisticRegression

    from senca.model import SpaCRD
    from senca.model._adapt import class_proba, class_pseudo_labels, linear_adapt, neighbor_smooth

    defaults = {k: v.default for k, v in inspect.signature(SpaCRD.predict).parameters.items()}
    labelled = ys != UNLABELED
    clf = LogisticRegression(max_iter=3000).fit(xs[labelled], ys[labelled])
    d = clf.decision_function(xt)[:, [list(clf.classes_).index(c) for c in classes]]
    groups = np.zeros(len(xt), dtype=int)
    out = {}
    for name, kw in VARIANTS.items():
        kw = {**defaults, **kw}
        if kw["adapt"] == "finetune":  # nothing to fine-tune
            continue
        lg = d
        if kw["adapt"] == "linear":
            pseudo = class_pseudo_labels(neighbor_smooth(d, nbr, kw["n_smooth"]), groups, kw["adapt_fraction"])
            lg = linear_adapt(xt, pseudo, groups, d)
        proba = class_proba(neighbor_smooth(lg, nbr, kw["n_smooth"]))
        out[name] = proba
    return out


def target_embedding(adata):
    """SENCA's default embedding of one section (expression + space), in ``obsm['X_senca']`` of a gene subset."""
    import senca

    a = senca.pp.select_genes(adata, n_top_genes=3000, layer="counts")
    senca.model.SENCA.setup_anndata(a, layer="counts", spatial_key="spatial", library_key="library_size")
    a.obsm["X_senca"] = senca.model.SENCA(a).get_latent_representation()
    return a


def called_regions(embedded, n_regions: int, seed: int) -> np.ndarray:
    """``senca.tl.regions`` on a :func:`target_embedding` (overwriting its previous call)."""
    import senca

    senca.tl.regions(embedded, n_regions=n_regions, use_rep="X_senca", seed=seed, overwrite=True)
    return embedded.obs["senca_region"].astype(str).to_numpy()


def senca_regions(adata, n_regions: int, seeds: list[int]) -> dict[int, np.ndarray]:
    """SENCA's regions of one section (default embedding, expression + space), one calling per seed."""
    embedded = target_embedding(adata)
    return {seed: called_regions(embedded, n_regions, seed) for seed in seeds}


# ----------------------------------------------------------------------------------------------------- reference
_REFERENCE_CHILD = r"""
import os, sys, warnings
os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, sys.argv[1])
warnings.filterwarnings("ignore")
import logging
for name in ("lightning", "lightning.pytorch", "scvi", "lightning_fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)
import numpy as np, torch
torch.set_num_threads(1)
import senca
assert senca.__file__.startswith(sys.argv[1]), senca.__file__
target, seed, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
secs = {}
for s in ["A1", "B1", "C1", "D1"]:
    a = senca.datasets.her2st(s, image=None)
    a.obs["cancer"] = a.obs["pathologist"].astype(str).isin(["invasive cancer", "cancer in situ"]).to_numpy()
    secs[s] = a
source = senca.pp.concat_sections({s: secs[s] for s in secs if s != target})
senca.model.SpaCRD.setup_anndata(source, layer="counts", labels_key="cancer", sample_key="section")
model = senca.model.SpaCRD(source)
model.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
tgt = secs[target].copy()
model.predict(tgt)
np.savez(out, score=tgt.obs["spacrd_score"].to_numpy(), call=tgt.obs["spacrd_cancer"].to_numpy())
"""


def reference_rev(rev: str | None) -> str:
    """The commit to compare the binary model against: ``rev``, or where this branch left ``main``."""
    if rev is None:
        base = subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True, text=True)
        rev = base.stdout.strip() or "main"
    out = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def reference_binary(rev: str | None, target: str, seed: int) -> dict[str, np.ndarray]:
    """The binary model's scores of one fold and seed, computed by the senca source of commit ``rev`` in a fresh
    process (``None``: this working tree's source, also in a fresh process, so that both sides start alike)."""
    with tempfile.TemporaryDirectory() as tmp:
        if rev is None:
            src = REPO / "src"
        else:
            archive = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            src = Path(tmp) / "src"
        out = Path(tmp) / "scores.npz"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(
            [sys.executable, "-c", _REFERENCE_CHILD, str(src), target, str(seed), str(out)],
            check=True,
            env=env,
            cwd=tmp,
        )
        with np.load(out) as z:
            return {k: z[k] for k in z.files}


def binary_variants(model, tgt, cancer) -> dict:
    """AUC of a binary model's default, of its network alone, and of the adaptation without its agreement check."""
    from senca.data import FEATURE_KEYS
    from senca.model._adapt import agreeing_sections, linear_adapt, neighbor_smooth, network_logits, pseudo_labels
    from senca.pp import knn_index

    out = {"variants": {}}
    for name, kw in BINARY_VARIANTS.items():
        p = tgt.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.predict(p, **kw)
        out["variants"][name] = {"auc": cancer_auc(cancer, p.obs["spacrd_score"].to_numpy())}
        if name == "default":
            out["score"] = p.obs["spacrd_score"].to_numpy()
            out["call"] = p.obs["spacrd_cancer"].to_numpy()
    # predict's linear adaptation written out, without the agreement check, and whether the check declined it
    groups = np.zeros(tgt.n_obs, dtype=int)
    feats = model._section_features(tgt.layers["counts"], tgt.var_names, model.genes, groups)
    nbr = knn_index(np.asarray(tgt.obsm["spatial"]), model.n_neighbors, None)
    net = network_logits(model.module, feats, nbr, 512)
    pseudo = pseudo_labels(neighbor_smooth(net, nbr, 2), groups, 0.1)
    adapted = linear_adapt(feats[FEATURE_KEYS.SPACRD_GENE_KEY], pseudo, groups, net)
    out["variants"]["adapt, no check"] = {"auc": cancer_auc(cancer, neighbor_smooth(adapted, nbr, 2))}
    out["declined"] = bool(agreeing_sections(adapted, net, pseudo, nbr, groups, 2)[1])
    return out


def run_pairs(sections: dict, seeds: list[int]) -> list[dict]:
    """The binary model trained on one section and scored on another (12 ordered pairs): its adaptation under stress."""
    import senca

    rows = []
    for target in SECTIONS:
        tgt = sections[target].copy()
        cancer = tgt.obs["cancer"].to_numpy()
        tgt.obs = tgt.obs[[c for c in tgt.obs.columns if c not in ("cancer", "pathologist")]]
        for source_name in [s for s in SECTIONS if s != target]:
            source = sections[source_name].copy()
            source.obs["section"] = source_name
            for seed in seeds:
                senca.model.SpaCRD.setup_anndata(
                    source, layer="counts", labels_key="cancer", sample_key="section", overwrite=True
                )
                model = senca.model.SpaCRD(source)
                model.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
                row = {"target": target, "source": source_name, "seed": seed, **binary_variants(model, tgt, cancer)}
                row.pop("score")
                row.pop("call")
                rows.append(row)
                v = row["variants"]
                print(
                    f"  pair {source_name} -> {target} seed {seed}: default {v['default']['auc']:.3f}, network "
                    f"{v['net']['auc']:.3f}, no check {v['adapt, no check']['auc']:.3f}, declined {row['declined']}",
                    flush=True,
                )
    return rows


# ----------------------------------------------------------------------------------------------------- one fold
def run_fold(sections: dict, target: str, seeds: list[int], rev: str | None) -> dict:
    """Multi-class and binary SpaCRD (one fit per seed), the baselines; all scored on ``target``."""
    import senca
    from senca.pp import knn_index
    from senca.pp._section_features import gene_features

    src_names = [s for s in SECTIONS if s != target]
    source = senca.pp.concat_sections({s: sections[s] for s in src_names})
    tgt = sections[target].copy()
    truth = tgt.obs["pathologist"].astype(str).to_numpy()
    cancer = tgt.obs["cancer"].to_numpy()
    tgt.obs = tgt.obs[[c for c in tgt.obs.columns if c not in ("cancer", "pathologist")]]  # labels never seen
    n_target_classes = len(set(truth) - {UNLABELED})
    res = {
        "target": target,
        "sources": src_names,
        "n_target": int(tgt.n_obs),
        "target_classes": sorted(set(truth) - {UNLABELED}),
        "spacrd": [],
        "binary": [],
        "senca": [],
        "logreg": None,
    }
    regions = senca_regions(tgt, n_target_classes, seeds)
    vocab_regions = None
    for seed in seeds:
        # multi-class SpaCRD
        t0 = time.perf_counter()
        senca.model.SpaCRD.setup_anndata(
            source, layer="counts", labels_key="pathologist", sample_key="section", overwrite=True
        )
        model = senca.model.SpaCRD(source)
        model.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
        wall = time.perf_counter() - t0
        classes = list(model.classes)
        cancer_cols = [c for c in classes if c in CANCER]
        row = {"seed": seed, "wall_s": wall, "classes": classes, "variants": {}}
        for name, kw in VARIANTS.items():
            p = tgt.copy()
            model.predict(p, **kw)
            labels = p.obs["spacrd_label"].astype(str).to_numpy()
            m = class_metrics(truth, labels)
            m["cancer_auc"] = cancer_auc(cancer, p.obsm["spacrd_proba"][cancer_cols].sum(1).to_numpy())
            m["predicted"] = {str(k): int(v) for k, v in pd.Series(labels).value_counts().items()}
            row["variants"][name] = m
            if name == "default":
                default_labels = labels
        if vocab_regions is None:
            vocab_regions = senca_regions(tgt, len(classes), seeds)
        row["senca_named_by_spacrd"] = class_metrics(truth, majority_names(vocab_regions[seed], default_labels))
        res["spacrd"].append(row)
        d = row["variants"]["default"]
        print(
            f"  {target} multi-class seed {seed}: ARI {d['ari']:.3f} F1 {d['f1']:.3f} cancer AUC {d['cancer_auc']:.3f}"
            f" (net ARI {row['variants']['net']['ari']:.3f}; {wall:.0f} s)",
            flush=True,
        )
        genes, k = model.genes, model.n_neighbors
        # binary SpaCRD, the same seed
        senca.model.SpaCRD.setup_anndata(
            source, layer="counts", labels_key="cancer", sample_key="section", overwrite=True
        )
        binary = senca.model.SpaCRD(source)
        binary.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
        brow = {"seed": seed, **binary_variants(binary, tgt, cancer)}
        if rev is not None and seed == seeds[0]:
            # both in fresh processes: this long-running one differs from a fresh one by 1e-8 on her2st A1 with the
            # same source (floating-point history of the process, e.g. BLAS paths that follow memory alignment)
            ref, now = reference_binary(rev, target, seed), reference_binary(None, target, seed)
            brow["reference"] = {
                "rev": rev,
                "max_abs_score_diff": float(np.max(np.abs(ref["score"] - now["score"]))),
                "calls_equal": bool(np.array_equal(ref["call"], now["call"])),
                "max_abs_diff_to_this_process": float(np.max(np.abs(now["score"] - brow["score"]))),
            }
            print(f"  {target} binary seed {seed} vs {rev}: {brow['reference']}", flush=True)
        brow.pop("score")
        brow.pop("call")
        res["binary"].append(brow)
        aucs = ", ".join(f"{k} {v['auc']:.3f}" for k, v in brow["variants"].items())
        print(f"  {target} binary seed {seed}: {aucs}", flush=True)
        # SENCA, oracle naming
        named = majority_names(regions[seed], truth)
        res["senca"].append(
            {"seed": seed, "named": class_metrics(truth, named), "raw_ari": class_metrics(truth, regions[seed])["ari"]}
        )
    # multinomial logistic regression on the same genes and features, the same label-free steps (deterministic)
    xs = gene_features(source.layers["counts"], source.var_names, genes, source.obs["section"].astype(str).to_numpy())
    xt = gene_features(tgt.layers["counts"], tgt.var_names, genes, np.zeros(tgt.n_obs, dtype=int))
    nbr = knn_index(np.asarray(tgt.obsm["spatial"]), k, None)
    ys = source.obs["pathologist"].astype(str).to_numpy()
    res["logreg"] = {"variants": {}}
    for name, proba in logreg_variants(xs, ys, xt, nbr, classes).items():
        m = class_metrics(truth, np.asarray(classes, dtype=object)[proba.argmax(1)])
        m["cancer_auc"] = cancer_auc(cancer, proba[:, [classes.index(c) for c in cancer_cols]].sum(1))
        res["logreg"]["variants"][name] = m
    v = res["logreg"]["variants"]["default"]
    print(f"  {target} logreg: ARI {v['ari']:.3f} F1 {v['f1']:.3f}", flush=True)
    return res


# ----------------------------------------------------------------------------------------------------- report
def _seed_means(folds, get) -> np.ndarray:
    """Per seed, the mean over folds of ``get(fold, seed_index)``."""
    n_seeds = min(len(f["spacrd"]) for f in folds)
    return np.array([np.mean([get(f, i) for f in folds]) for i in range(n_seeds)])


def _ms(v) -> str:
    v = np.asarray(v, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if v.size > 1 else f"{v.mean():.3f}"


def summary(folds: list[dict]) -> dict:
    """Means over folds (per seed, then mean ± sd over seeds) of every method."""

    def spacrd(name, key):
        return lambda f, i: f["spacrd"][i]["variants"][name][key]

    out = {}
    for key in ("ari", "f1", "cancer_auc"):
        for name in VARIANTS:
            out[f"spacrd {name} {key}"] = _seed_means(folds, spacrd(name, key)).tolist()
            if name in folds[0]["logreg"]["variants"]:
                out[f"logreg {name} {key}"] = [float(np.mean([f["logreg"]["variants"][name][key] for f in folds]))]
    for key in ("ari", "f1"):
        out[f"senca oracle {key}"] = [float(np.mean([f["senca"][i]["named"][key] for f in folds])) for i in
                                      range(len(folds[0]["senca"]))]  # fmt: skip
        out[f"senca named by spacrd {key}"] = [
            float(np.mean([f["spacrd"][i]["senca_named_by_spacrd"][key] for f in folds]))
            for i in range(len(folds[0]["spacrd"]))
        ]
    out["senca raw ari"] = _seed_means(folds, lambda f, i: f["senca"][i]["raw_ari"]).tolist()
    for name in ("default", "net", "adapt, no check"):
        out[f"binary {name} auc"] = [
            float(np.mean([f["binary"][i]["variants"][name]["auc"] for f in folds]))
            for i in range(len(folds[0]["binary"]))
        ]
    return out


def nested(folds: list[dict], key: str) -> dict:
    """Nested leave-one-section-out: per fold, the variant with the best mean over the other folds, scored on it."""
    table = {n: {f["target"]: np.mean([r["variants"][n][key] for r in f["spacrd"]]) for f in folds} for n in VARIANTS}
    out = {}
    for f in folds:
        others = [g["target"] for g in folds if g is not f]
        best = max(VARIANTS, key=lambda n: np.mean([table[n][o] for o in others]))
        out[f["target"]] = {"chosen": best, key: float(table[best][f["target"]])}
    out["mean"] = float(np.mean([v[key] for v in out.values()]))
    return out


def markdown(out: dict) -> str:
    folds, s = out["folds"], out["summary"]
    lines = [
        "# SpaCRD beyond two classes: the pathologist's vocabulary in a new patient (her2st, leave one patient out)",
        "",
        f"Command: `{out['command']}`; seeds {out['seeds']}; {out['machine']}, 1 torch thread; total wall "
        f"{out['total_wall_s'] / 60:.1f} min (a machine shared with other jobs).",
        "",
        "Train on three of A1, B1, C1, D1 (one section per patient) with the pathologist's labels, predict the fourth. "
        "Vocabulary: the source sections' classes; *undetermined* spots are unlabelled (not trained on, not scored). "
        "ARI and macro-F1 (over the target's classes) against the pathologist; cells: mean ± sd over seeds. "
        "SpaCRD: `SpaCRD.setup_anndata(labels_key='pathologist')`, defaults, expression only; `predict` with its "
        "defaults (label-free adaptation to the target, neighbourhood pooling). (a) LogReg: multinomial logistic "
        "regression on the same genes and per-section standardised features, with the same label-free steps "
        "(deterministic). (b) SENCA: `senca.tl.regions` on SENCA's default embedding, as many regions as the target "
        "has pathologist classes, each region named by majority vote of the target's own labels (oracle naming: an "
        "upper bound for unsupervised regions).",
        "",
        "## Per target section",
        "",
        "| target | spots | classes (target) | SpaCRD ARI | SpaCRD F1 | LogReg ARI | LogReg F1 "
        "| SENCA (oracle-named) ARI | SENCA (oracle-named) F1 | SENCA raw ARI | s/fit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in folds:
        sp = [r["variants"]["default"] for r in f["spacrd"]]
        lr = f["logreg"]["variants"]["default"]
        se = [r["named"] for r in f["senca"]]
        lines.append(
            f"| {f['target']} | {f['n_target']} | {len(f['target_classes'])} | {_ms([m['ari'] for m in sp])} | "
            f"{_ms([m['f1'] for m in sp])} | {lr['ari']:.3f} | {lr['f1']:.3f} | {_ms([m['ari'] for m in se])} | "
            f"{_ms([m['f1'] for m in se])} | {_ms([r['raw_ari'] for r in f['senca']])} | "
            f"{np.mean([r['wall_s'] for r in f['spacrd']]):.0f} |"
        )

    def m(key):
        return _ms(s[key])

    lines += [
        f"| **mean** | | | **{m('spacrd default ari')}** | **{m('spacrd default f1')}** | "
        f"{m('logreg default ari')} | {m('logreg default f1')} | {m('senca oracle ari')} | {m('senca oracle f1')} | "
        f"{m('senca raw ari')} | |",
        "",
        "Means over the four folds (± sd over seeds of the four-fold mean). Targets of the issue: SpaCRD ≥ (a) "
        "LogReg, and SpaCRD ≥ SENCA (oracle-named) + 0.15 ARI:",
        "",
    ]
    sa, la, oa = (np.mean(s[k]) for k in ("spacrd default ari", "logreg default ari", "senca oracle ari"))
    sf, lf = (np.mean(s[k]) for k in ("spacrd default f1", "logreg default f1"))
    lines += [
        f"- SpaCRD vs LogReg with the same steps: ARI {sa:.3f} vs {la:.3f}, macro-F1 {sf:.3f} vs {lf:.3f}: "
        f"{'reached' if sa >= la and sf >= lf else 'not reached'}.",
        f"- SpaCRD vs SENCA oracle-named + 0.15: ARI {sa:.3f} vs {oa + 0.15:.3f} ({oa:.3f} + 0.15): "
        f"{'reached' if sa >= oa + 0.15 else 'not reached'}.",
        f"- SENCA's regions named by SpaCRD's labels (label-free; as many regions as the vocabulary has classes): "
        f"ARI {m('senca named by spacrd ari')}, macro-F1 {m('senca named by spacrd f1')}.",
        "",
        "## Label-free steps, scored from the same fits (mean over folds)",
        "",
        "| variant | SpaCRD ARI | SpaCRD F1 | LogReg ARI | LogReg F1 |",
        "|---|---|---|---|---|",
    ]
    for name in VARIANTS:
        lr = (f"{np.mean(s[f'logreg {name} ari']):.3f} | {np.mean(s[f'logreg {name} f1']):.3f}"
              if f"logreg {name} ari" in s else "– | –")  # fmt: skip
        lines.append(f"| {name} `{VARIANTS[name]}` | {m(f'spacrd {name} ari')} | {m(f'spacrd {name} f1')} | {lr} |")
    na, nf = out["nested_ari"], out["nested_f1"]
    chosen = ", ".join(f"{t}: {v['chosen']}" for t, v in na.items() if t != "mean")
    lines += [
        "",
        f"Nested leave-one-section-out choice of the variant (best mean on the other three folds): ARI "
        f"{na['mean']:.3f} ({chosen}); by F1: F1 {nf['mean']:.3f}.",
        "",
        "## The cancer call: multi-class model vs binary model (AUC, same folds and seeds)",
        "",
        "Multi-class: the sum of the probabilities of the cancer classes in the vocabulary (invasive cancer, cancer "
        "in situ); binary: `labels_key` = cancer (invasive or in situ; undetermined = not cancer), defaults. Every "
        "target spot, undetermined = not cancer.",
        "",
        "| target | multi-class AUC | multi-class, network alone | binary AUC | binary, network alone "
        "| binary, adaptation without its check |",
        "|---|---|---|---|---|---|",
    ]
    for f in folds:
        mc = [r["variants"]["default"]["cancer_auc"] for r in f["spacrd"]]
        mn = [r["variants"]["net"]["cancer_auc"] for r in f["spacrd"]]
        b = {n: [r["variants"][n]["auc"] for r in f["binary"]] for n in ("default", "net", "adapt, no check")}
        lines.append(
            f"| {f['target']} | {_ms(mc)} | {_ms(mn)} | {_ms(b['default'])} | {_ms(b['net'])} | "
            f"{_ms(b['adapt, no check'])} |"
        )
    lines += [
        f"| **mean** | {m('spacrd default cancer_auc')} | {m('spacrd net cancer_auc')} | {m('binary default auc')} "
        f"| {m('binary net auc')} | {m('binary adapt, no check auc')} |",
        "",
    ]
    declined = sum(r["declined"] for f in folds for r in f["binary"])
    lines += [
        f"The binary adaptation's agreement check declined the adaptation in {declined} of "
        f"{sum(len(f['binary']) for f in folds)} fits of these folds.",
        "",
    ]
    if out.get("pairs"):
        pairs = out["pairs"]
        lines += [
            "### The binary adaptation under stress: one source section, another target (12 ordered pairs)",
            "",
            "Binary model trained on a single section, scored on another (seeds "
            f"{sorted({r['seed'] for r in pairs})}); AUC of the default (adaptation with its check), the network "
            "alone and the adaptation without its check. A fold where the adaptation hurts is one where 'no check' "
            "is below 'network'.",
            "",
            "| source → target | default | network alone | adaptation, no check | check declined |",
            "|---|---|---|---|---|",
        ]
        for r in pairs:
            v = r["variants"]
            lines.append(
                f"| {r['source']} → {r['target']} (seed {r['seed']}) | {v['default']['auc']:.3f} | "
                f"{v['net']['auc']:.3f} | {v['adapt, no check']['auc']:.3f} | {'yes' if r['declined'] else 'no'} |"
            )
        mean = {k: np.mean([r["variants"][k]["auc"] for r in pairs]) for k in ("default", "net", "adapt, no check")}
        hurt = [r for r in pairs if r["variants"]["adapt, no check"]["auc"] < r["variants"]["net"]["auc"]]
        cases = [
            f"{r['source']} → {r['target']}: "
            f"{r['variants']['adapt, no check']['auc'] - r['variants']['net']['auc']:+.3f}, "
            f"{'declined' if r['declined'] else 'not declined'}"
            for r in hurt
        ]
        lines += [
            f"| **mean** | {mean['default']:.3f} | {mean['net']:.3f} | {mean['adapt, no check']:.3f} | "
            f"{sum(r['declined'] for r in pairs)} |",
            "",
            f"The adaptation (no check) fell below the network alone in {len(hurt)} of {len(pairs)} pairs"
            + (f" ({'; '.join(cases)})" if cases else "")
            + ".",
            "",
        ]
    refs = [r["reference"] for f in folds for r in f["binary"] if "reference" in r]
    if refs:
        same = all(r["max_abs_score_diff"] == 0.0 and r["calls_equal"] for r in refs)
        worst = max(r["max_abs_score_diff"] for r in refs)
        lines += [
            "## Binary outputs unchanged",
            "",
            f"The binary model (seed {out['seeds'][0]}, every fold) trained and scored by this source and by the "
            f"source of commit `{refs[0]['rev']}` (each in a fresh process, same data and seed): largest score "
            f"difference {worst:.3g}, calls {'equal' if all(r['calls_equal'] for r in refs) else 'DIFFERENT'}: "
            f"{'identical' if same else 'NOT identical'}. The scores of this benchmark's own long-running process "
            "differ from the fresh one's by at most "
            f"{max(r.get('max_abs_diff_to_this_process', 0.0) for r in refs):.3g} (the same source and seed: the "
            "last bits depend on what the process ran before, not on the code).",
            "",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--folds", default=",".join(SECTIONS), help="targets to run (default all four)")
    p.add_argument("--no-reference", action="store_true", help="skip the comparison with the reference commit")
    p.add_argument("--reference-rev", default=None, help="commit of the binary reference (default: merge-base)")
    p.add_argument("--pairs-seeds", type=int, default=1, help="seeds of the single-source pairs (0: skip them)")
    p.add_argument("--out", default=str(RESULTS / "multiclass"), help="output path without extension")
    args = p.parse_args(argv)
    _quiet()
    seeds = list(range(args.seeds))
    rev = None if args.no_reference else reference_rev(args.reference_rev)
    t_all = time.perf_counter()
    sections = load_sections()
    import sklearn
    import torch

    import senca

    out = {
        "protocol": __doc__,
        "seeds": seeds,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu(s)",
        "versions": {"senca": senca.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__},
        "folds": [],
    }
    for t in args.folds.split(","):
        print(f"fold: target {t}", flush=True)
        out["folds"].append(run_fold(sections, t, seeds, rev))
    if args.pairs_seeds:
        print("single-source pairs (binary model)", flush=True)
        out["pairs"] = run_pairs(sections, list(range(args.pairs_seeds)))
    out["total_wall_s"] = time.perf_counter() - t_all
    out["summary"] = summary(out["folds"])
    out["nested_ari"] = nested(out["folds"], "ari")
    out["nested_f1"] = nested(out["folds"], "f1")
    out["command"] = (
        f"python -m benchmarks.multiclass{'' if args.seeds == 5 else f' --seeds {args.seeds}'}"
        f"{'' if args.folds == ','.join(SECTIONS) else f' --folds {args.folds}'}"
        f"{' --no-reference' if args.no_reference else ''}"
        f"{f' --reference-rev {args.reference_rev}' if args.reference_rev and not args.no_reference else ''}"
        f"{'' if args.pairs_seeds == 1 else f' --pairs-seeds {args.pairs_seeds}'}"
    )
    path = Path(args.out)
    dump_json(out, path.with_suffix(".json"))
    text = markdown(out)
    path.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
