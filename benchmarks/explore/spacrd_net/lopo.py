# ruff: noqa: E402, C408
"""SpaCRD leave-one-patient-out over A1-D1: one fit per fold and seed, many label-free predict variants.

Run from this folder: ``python lopo.py TAG "MODEL_KWARGS" "TRAIN_KWARGS" SEEDS``; writes logs/TAG.jsonl (one line per
fold x seed x variant, with AUC, AP, F1 at the variant's call and the predicted / true prevalence). The LogReg rows
(deterministic) are written with seed -1. See README.md.
"""

import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SENCA_DATA_DIR", "/work/shared/data")
warnings.filterwarnings("ignore")
import numpy as np
import torch

torch.set_num_threads(1)
for n in ("lightning", "lightning.pytorch", "scvi", "lightning_fabric"):
    logging.getLogger(n).setLevel(logging.ERROR)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

import senca
from senca.metrics import gmm_threshold
from senca.model._spacrd import gene_features, linear_adapt, neighbor_smooth, pseudo_labels
from senca.pp import knn_index

SECTIONS = ["A1", "B1", "C1", "D1"]
CANCER = ["invasive cancer", "cancer in situ"]
VARIANTS = {
    "net": dict(n_smooth=0, adapt=None),
    "net_s2": dict(n_smooth=2, adapt=None),
    "net_s3": dict(n_smooth=3, adapt=None),
    "linear": dict(),  # the default
    "linear_f0.1": dict(adapt_fraction=0.1),
    "linear_f0.3": dict(adapt_fraction=0.3),
    "linear_s3": dict(n_smooth=3),
    "linear_gmm": dict(threshold="gmm"),
    "finetune": dict(adapt="finetune"),
}


def metrics(y, score, call):
    return dict(
        auc=roc_auc_score(y, score),
        ap=average_precision_score(y, score),
        f1=f1_score(y, call),
        pred_prev=float(np.mean(call)),
        true_prev=float(np.mean(y)),
    )


def logreg_rows(source, tgt, genes, y, k):
    """LogReg on the same genes and features, and the same label-free steps as SpaCRD.predict's variants."""
    xs = gene_features(source.layers["counts"], source.var_names, genes, source.obs["section"].astype(str).to_numpy())
    xt = gene_features(tgt.layers["counts"], tgt.var_names, genes, np.zeros(tgt.n_obs, dtype=int))
    d = LogisticRegression(max_iter=2000).fit(xs, source.obs["cancer"].to_numpy()).decision_function(xt)
    nbr = knn_index(np.asarray(tgt.obsm["spatial"]), k, None)
    g = np.zeros(tgt.n_obs, dtype=int)
    out = {}
    for name, kw in VARIANTS.items():
        ns, fr = kw.get("n_smooth", 2), kw.get("adapt_fraction", 0.2)
        adapt = kw.get("adapt", "linear")
        lg = d
        if adapt == "linear":
            lg = linear_adapt(xt, pseudo_labels(neighbor_smooth(d, nbr, ns), g, fr), g, d)
        elif adapt == "finetune":  # no network to fine-tune: the previous benchmark's LogReg + adapt
            continue
        lg = neighbor_smooth(lg, nbr, ns)
        s = (lg - lg.min()) / np.ptp(lg)
        thr = kw.get("threshold", "auto")
        call = lg >= 0 if (adapt == "linear" and thr != "gmm") else s >= gmm_threshold(s)
        out[name] = metrics(y, s, call)
    return out


def main():
    tag, mkw, tkw = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
    seeds = [int(s) for s in sys.argv[4].split(",")]
    secs = {}
    for s in SECTIONS:
        a = senca.datasets.her2st(s, image=None)
        a.obs["cancer"] = a.obs["pathologist"].astype(str).isin(CANCER).to_numpy()
        secs[s] = a
    log = open(os.path.join(os.path.dirname(__file__) or ".", "logs", f"{tag}.jsonl"), "a")
    for t in SECTIONS:
        source = senca.pp.concat_sections({s: secs[s] for s in SECTIONS if s != t})
        tgt = secs[t].copy()
        y = tgt.obs["cancer"].to_numpy()
        tgt.obs = tgt.obs[[]]
        for seed in seeds:
            senca.model.SpaCRD.setup_anndata(source, layer="counts", labels_key="cancer", sample_key="section")
            model = senca.model.SpaCRD(source, **mkw)
            t0 = time.perf_counter()
            model.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **tkw)
            wall = time.perf_counter() - t0
            for name, kw in VARIANTS.items():
                p = tgt.copy()
                model.predict(p, **kw)
                r = metrics(y, p.obs["spacrd_score"].to_numpy(), p.obs["spacrd_cancer"].to_numpy())
                r.update(tag=tag, target=t, seed=seed, method="spacrd", variant=name, train_s=wall)
                log.write(json.dumps(r) + "\n")
            log.flush()
            print(t, seed, f"{wall:.0f}s", flush=True)
        if seeds[0] == 0:
            for name, r in logreg_rows(source, tgt, model.genes, y, model.n_neighbors).items():
                r.update(tag=tag, target=t, seed=-1, method="logreg", variant=name)
                log.write(json.dumps(r) + "\n")
            log.flush()


if __name__ == "__main__":
    main()
