"""How far can the pathologist's vocabulary be transferred to a new patient? Ceilings and the field's label transfer.

``python -m benchmarks.multiclass_ceiling [--seeds N] [--folds A1,B1]``

The same folds as ``benchmarks/multiclass.py`` (leave one patient out over her2st A1, B1, C1, D1; the source
sections' classes as vocabulary; ``undetermined`` unlabelled; ARI against the pathologist, undetermined excluded).
Per fold and seed:

- SpaCRD's default ``predict`` (the figure of ``benchmarks/multiclass.py``).
- *Oracle proportions*: SpaCRD's network logits pooled over the neighbourhood (``n_smooth=2``), and SpaCRD's default
  probabilities, each labelled under the constraint that every class of the vocabulary gets exactly as many of the
  target's labelled spots as the pathologist gave it (optimal assignment, ``scipy.optimize.linear_sum_assignment``;
  the target's classes absent from the vocabulary are spread over the vocabulary in proportion). No label-free step
  can know the target's composition better, so this bounds every recalibration of the network's scores (thresholds,
  class priors, EM on the label shift) from above.
- scANVI (scvi-tools; the field's label transfer, for dissociated cells): scVI on the four sections (2,000
  ``seurat_v3`` genes by section, ``batch_key`` = section, 10 latent dimensions, 200 epochs), then scANVI (20 epochs)
  with the source labels and the target's spots unlabelled (transductive, as SpaCRD's adaptation); its most probable
  class, and the same after SpaCRD's neighbourhood pooling of its log-probabilities.
- SENCA's unsupervised regions (default embedding of the target, ``senca.tl.regions``) with 10 regions, each named
  by majority vote of the target's own labels: what naming finer regions could reach with a perfect namer.
- Label-free probes (mechanisms that could close part of the gap without target labels):
  *EM label shift*: the network's probabilities reweighted by the target's class priors estimated by EM (Saerens et
  al. 2002, from the source's class frequencies), then pooled; *class EM on SENCA*: Gaussian classes (tied diagonal
  variance) on the top 10 principal components of SENCA's embedding of the target, started from SpaCRD's default
  probabilities, 30 EM iterations (each class's mean, spread and share refitted to the new patient); *SENCA regions
  named by profile*: SENCA's regions (as many as the vocabulary has classes), each named by the source class whose
  mean expression profile (the mean over source sections of each section's class mean, section-standardised genes)
  correlates best with the region's.

Writes ``benchmarks/results/multiclass_ceiling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import dump_json
from benchmarks.multiclass import (
    RESULTS,
    SECTIONS,
    UNLABELED,
    _ms,
    _quiet,
    called_regions,
    class_metrics,
    load_sections,
    majority_names,
    target_embedding,
)

FINE_REGIONS = 10


def proportion_labels(scores: np.ndarray, classes: list, truth: np.ndarray) -> np.ndarray:
    """Labels of the target's labelled spots maximising the summed ``scores`` with the pathologist's class counts.

    ``scores`` are log-probabilities or logits (``(n, K)``, NaN: a class the model cannot predict). Each class of
    ``classes`` gets as many of the labelled spots as the pathologist gave it; the spots of classes outside
    ``classes`` are spread over them in proportion. Unlabelled spots keep their most likely class.
    """
    from scipy.optimize import linear_sum_assignment

    s = np.where(np.isfinite(scores), scores, -1e6)
    out = np.asarray(classes, dtype=object)[s.argmax(1)]
    keep = np.flatnonzero(truth != UNLABELED)
    counts = pd.Series(truth[keep]).value_counts()
    want = np.array([counts.get(c, 0) for c in classes], dtype=float)
    want = want / want.sum() * len(keep)
    slots = np.floor(want).astype(int)
    slots[np.argsort(-(want - slots))[: len(keep) - slots.sum()]] += 1  # largest remainders
    columns = np.repeat(np.arange(len(classes)), slots)
    rows, cols = linear_sum_assignment(-s[keep][:, columns])
    out[keep[rows]] = np.asarray(classes, dtype=object)[columns[cols]]
    return out


def scanvi_proba(sections: dict, target: str, seed: int) -> tuple[np.ndarray, list]:
    """scANVI's class probabilities of the target's spots (source labels; target and undetermined unlabelled)."""
    import scanpy as sc
    import scvi

    import senca

    cohort = senca.pp.concat_sections(sections)
    cohort.X = cohort.layers["counts"].copy()
    sc.pp.highly_variable_genes(cohort, n_top_genes=2000, flavor="seurat_v3", batch_key="section", layer="counts")
    a = cohort[:, cohort.var["highly_variable"]].copy()
    section = a.obs["section"].astype(str).to_numpy()
    labels = a.obs["pathologist"].astype(str).to_numpy()
    a.obs["transfer"] = np.where((section == target) | (labels == UNLABELED), "Unknown", labels)
    a.obs = a.obs[["section", "transfer"]]
    scvi.settings.seed = seed
    kw = {"enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu"}
    scvi.model.SCVI.setup_anndata(a, layer="counts", batch_key="section")
    vae = scvi.model.SCVI(a, n_latent=10)
    vae.train(max_epochs=200, **kw)
    model = scvi.model.SCANVI.from_scvi_model(vae, "Unknown", labels_key="transfer")
    model.train(max_epochs=20, **kw)
    proba = model.predict(a[section == target].copy(), soft=True)
    return proba.to_numpy(), [str(c) for c in proba.columns]


def label_shift_em(proba: np.ndarray, source_prior: np.ndarray, n_iter: int = 1000, tol: float = 1e-8) -> np.ndarray:
    """Saerens et al. (2002): the posteriors under the target's class priors, estimated by EM from the source's."""
    prior = source_prior.copy()
    for _ in range(n_iter):
        q = proba * (prior / np.maximum(source_prior, 1e-12))
        q /= q.sum(1, keepdims=True)
        new = q.mean(0)
        if np.abs(new - prior).max() < tol:
            break
        prior = new
    return q


def class_em(z: np.ndarray, proba: np.ndarray, n_iter: int = 30) -> np.ndarray:
    """Gaussian classes with a tied diagonal variance, refitted by EM to ``z`` from the responsibilities ``proba``."""
    from scipy.special import logsumexp

    r = proba.copy()
    alive = r.sum(0) > 1e-6
    for _ in range(n_iter):
        w = r.sum(0) + 1e-9
        mu = (r.T @ z) / w[:, None]
        var = sum((r[:, [k]] * (z - mu[k]) ** 2).sum(0) for k in range(r.shape[1])) / len(z) + 1e-3
        ll = np.stack([-0.5 * (((z - mu[k]) ** 2) / var).sum(1) for k in range(r.shape[1])], 1) + np.log(w / w.sum())
        ll[:, ~alive] = -np.inf
        r = np.exp(ll - logsumexp(ll, 1, keepdims=True))
    return r


def profile_names(regions: np.ndarray, xt: np.ndarray, xs: np.ndarray, ys: np.ndarray, groups, classes) -> np.ndarray:
    """Each region named by the source class whose mean profile (over source sections) correlates best with it."""

    def centred(m):
        m = m - m.mean(1, keepdims=True)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    profiles, usable = [], []
    for c in classes:
        means = [xs[(ys == c) & (groups == g)].mean(0) for g in np.unique(groups) if ((ys == c) & (groups == g)).any()]
        usable.append(bool(means))
        profiles.append(np.mean(means, 0) if means else np.zeros(xs.shape[1]))
    names = pd.unique(regions)
    mean = np.stack([xt[regions == r].mean(0) for r in names])
    sim = centred(mean) @ centred(np.stack(profiles)).T
    sim[:, ~np.asarray(usable)] = -np.inf
    lookup = dict(zip(names, np.asarray(classes, dtype=object)[sim.argmax(1)], strict=True))
    return np.array([lookup[r] for r in regions], dtype=object)


def run_fold(sections: dict, target: str, seeds: list[int]) -> dict:
    from sklearn.decomposition import PCA

    import senca
    from senca.data import FEATURE_KEYS
    from senca.model._adapt import class_proba, neighbor_smooth, network_logits
    from senca.pp import knn_index

    src_names = [s for s in SECTIONS if s != target]
    source = senca.pp.concat_sections({s: sections[s] for s in src_names})
    tgt = sections[target].copy()
    truth = tgt.obs["pathologist"].astype(str).to_numpy()
    tgt.obs = tgt.obs[[c for c in tgt.obs.columns if c not in ("cancer", "pathologist")]]  # labels never seen
    n_classes = len(set(truth) - {UNLABELED})
    embedded = target_embedding(tgt)
    z = PCA(10, random_state=0).fit_transform(embedded.obsm["X_senca"])
    z = z / z.std(0)
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        senca.model.SpaCRD.setup_anndata(
            source, layer="counts", labels_key="pathologist", sample_key="section", overwrite=True
        )
        model = senca.model.SpaCRD(source)
        model.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
        classes = [str(c) for c in model.classes]
        p = tgt.copy()
        model.predict(p)
        default = p.obsm["spacrd_proba"][classes].to_numpy()
        groups = np.zeros(tgt.n_obs, dtype=int)
        feats = model._section_features(tgt.layers["counts"], tgt.var_names, model.genes, groups)
        nbr = knn_index(np.asarray(tgt.obsm["spatial"]), model.n_neighbors, None)
        logits = network_logits(model.module, feats, nbr, 512)
        logits[:, np.asarray(model.class_counts_) == 0] = np.nan
        pooled = neighbor_smooth(logits, nbr, 2)
        labelled = np.asarray(model.class_counts_, dtype=float)
        shifted = label_shift_em(class_proba(logits), labelled / labelled.sum())
        sgroups = source.obs["section"].astype(str).to_numpy()
        xs = model._section_features(source.layers["counts"], source.var_names, model.genes, sgroups)
        gene = FEATURE_KEYS.SPACRD_GENE_KEY
        xs, xt = xs[gene][np.arange(source.n_obs)], feats[gene][np.arange(tgt.n_obs)]
        ys = source.obs["pathologist"].astype(str).to_numpy()
        row = {
            "seed": seed,
            "spacrd default": class_metrics(truth, np.asarray(classes, dtype=object)[default.argmax(1)]),
            "spacrd network, oracle proportions": class_metrics(truth, proportion_labels(pooled, classes, truth)),
            "spacrd default, oracle proportions": class_metrics(
                truth, proportion_labels(np.log(np.maximum(default, 1e-12)), classes, truth)
            ),
            "spacrd network (pooled)": class_metrics(
                truth, np.asarray(classes, dtype=object)[class_proba(pooled).argmax(1)]
            ),
        }
        t1 = time.perf_counter()
        proba, names = scanvi_proba(sections, target, seed)
        row["scanvi"] = class_metrics(truth, np.asarray(names, dtype=object)[proba.argmax(1)])
        row["scanvi + pooling"] = class_metrics(
            truth, np.asarray(names, dtype=object)[neighbor_smooth(np.log(np.maximum(proba, 1e-12)), nbr, 2).argmax(1)]
        )
        row["senca oracle-named (target's classes)"] = class_metrics(
            truth, majority_names(called_regions(embedded, n_classes, seed), truth)
        )
        row[f"senca oracle-named ({FINE_REGIONS} regions)"] = class_metrics(
            truth, majority_names(called_regions(embedded, FINE_REGIONS, seed), truth)
        )
        row["probe: EM label shift"] = class_metrics(
            truth, np.asarray(classes, dtype=object)[neighbor_smooth(np.log(shifted), nbr, 2).argmax(1)]
        )
        row["probe: class EM on SENCA"] = class_metrics(
            truth, np.asarray(classes, dtype=object)[class_em(z, default).argmax(1)]
        )
        regions = called_regions(embedded, len(classes), seed)
        row["probe: SENCA regions named by profile"] = class_metrics(
            truth, profile_names(regions, xt, xs, ys, sgroups, classes)
        )
        row["wall_s"] = {"spacrd": t1 - t0, "scanvi": time.perf_counter() - t1}
        rows.append(row)
        print(
            f"  {target} seed {seed}: "
            + ", ".join(f"{k} {v['ari']:.3f}" for k, v in row.items() if isinstance(v, dict) and "ari" in v),
            flush=True,
        )
    return {"target": target, "sources": src_names, "n_target": int(tgt.n_obs), "rows": rows}


def markdown(out: dict) -> str:
    folds = out["folds"]
    methods = [k for k, v in folds[0]["rows"][0].items() if isinstance(v, dict) and "ari" in v]
    # label-free methods first, then the oracles (which read the target's labels)
    methods.sort(key=lambda m: ("oracle" in m, m.startswith("scanvi"), m.startswith("probe")))
    lines = [
        "# Transferring the pathologist's vocabulary to a new patient: ceilings and scANVI (her2st)",
        "",
        f"Command: `{out['command']}`; seeds {out['seeds']}; {out['machine']}, 1 torch thread; total wall "
        f"{out['total_wall_s'] / 60:.1f} min.",
        "",
        "Folds of `benchmarks/multiclass.py` (leave one patient out over A1, B1, C1, D1). ARI against the "
        "pathologist (undetermined spots excluded); cells: mean ± sd over seeds; the last column: mean over the four "
        "folds (± sd over seeds of the four-fold mean). *Oracle proportions* give the target's true class counts to "
        "an optimal assignment of the scores (what recalibrating them could reach with the true composition). "
        "*Oracle-named*: unsupervised regions, each named by the target's own labels. Protocol: the module docstring.",
        "",
        "| method | " + " | ".join(f["target"] for f in folds) + " | mean |",
        "|---|" + "---|" * (len(folds) + 1),
    ]
    n = min(len(f["rows"]) for f in folds)
    for m in methods:
        mean = [np.mean([f["rows"][i][m]["ari"] for f in folds]) for i in range(n)]
        cells = [_ms([r[m]["ari"] for r in f["rows"]]) for f in folds]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | **{_ms(mean)}** |")
    lines += [
        "",
        "Leave one section out, each probe against the default (choose on the other three folds, score the fourth):",
        "",
    ]
    table = {m: {f["target"]: np.mean([r[m]["ari"] for r in f["rows"]]) for f in folds} for m in methods}
    for probe in [m for m in methods if m.startswith("probe")]:
        chosen, scores = [], []
        for f in folds:
            others = [g["target"] for g in folds if g is not f]
            best = max(("spacrd default", probe), key=lambda m: np.mean([table[m][o] for o in others]))
            chosen.append(f"{f['target']}: {'probe' if best == probe else 'default'}")
            scores.append(table[best][f["target"]])
        lines.append(f"- {probe}: ARI {np.mean(scores):.3f} ({', '.join(chosen)}); the default alone "
                     f"{np.mean(list(table['spacrd default'].values())):.3f}.")  # fmt: skip
    lines += [
        "",
        "Wall time per fit (mean): SpaCRD "
        f"{np.mean([r['wall_s']['spacrd'] for f in folds for r in f['rows']]):.0f} s, scANVI "
        f"{np.mean([r['wall_s']['scanvi'] for f in folds for r in f['rows']]):.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--folds", default=",".join(SECTIONS), help="targets to run (default all four)")
    p.add_argument("--out", default=str(RESULTS / "multiclass_ceiling"), help="output path without extension")
    args = p.parse_args(argv)
    _quiet()
    import logging

    logging.getLogger("scvi").setLevel(logging.ERROR)
    seeds = list(range(args.seeds))
    t_all = time.perf_counter()
    sections = load_sections()
    import scvi
    import torch

    import senca

    out = {
        "protocol": __doc__,
        "seeds": seeds,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu(s)",
        "versions": {"senca": senca.__version__, "torch": torch.__version__, "scvi-tools": scvi.__version__},
        "folds": [],
    }
    for t in args.folds.split(","):
        print(f"fold: target {t}", flush=True)
        out["folds"].append(run_fold(sections, t, seeds))
    out["total_wall_s"] = time.perf_counter() - t_all
    out["command"] = (
        f"python -m benchmarks.multiclass_ceiling{'' if args.seeds == 3 else f' --seeds {args.seeds}'}"
        f"{'' if args.folds == ','.join(SECTIONS) else f' --folds {args.folds}'}"
    )
    path = Path(args.out)
    dump_json(out, path.with_suffix(".json"))
    text = markdown(out)
    path.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
