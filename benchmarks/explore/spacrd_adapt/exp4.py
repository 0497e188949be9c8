# ruff: noqa: E402, C408
# Scratch experiment (see README.md); run from this folder: python exp4.py
import logging
import sys
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
import torch
from data import SECTIONS, load

torch.set_num_threads(1)
for n in ("lightning", "lightning.pytorch", "scvi", "lightning_fabric"):
    logging.getLogger(n).setLevel(logging.ERROR)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import senca
from senca.model._spacrd import gene_features
from senca.pp import knn_index

secs = load()
seeds = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0]
kw = eval(sys.argv[2]) if len(sys.argv) > 2 else {}


def smooth(x, nbr, passes=1):
    for _ in range(passes):
        x = x[nbr].mean(1)
    return x


def selftrain(s, xt, nbt, q=0.2, C=1.0):
    lo, hi = np.quantile(s, [q, 1 - q])
    keep = (s <= lo) | (s >= hi)
    lt = LogisticRegression(C=C, max_iter=3000).fit(xt[keep], s[keep] >= hi)
    return smooth(lt.decision_function(xt), nbt, 2)


rows = []
for t in SECTIONS:
    src = [s for s in SECTIONS if s != t]
    source = senca.pp.concat_sections({s: secs[s] for s in src})
    tg = secs[t].copy()
    y = tg.obs["cancer"].to_numpy()
    nbt = knn_index(np.asarray(tg.obsm["spatial"]), 7, None)
    for seed in seeds:
        senca.model.SpaCRD.setup_anndata(source, layer="counts", labels_key="cancer", sample_key="section")
        m = senca.model.SpaCRD(source, **kw)
        m.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
        p = tg.copy()
        p.obs = p.obs[[]]
        m.predict(p)
        s = p.obs["spacrd_score"].to_numpy()
        xt = gene_features(tg.layers["counts"], tg.var_names, m.genes, np.zeros(tg.n_obs))
        s2 = smooth(s, nbt, 2)
        r = dict(t=t, seed=seed, raw=roc_auc_score(y, s), sm2=roc_auc_score(y, s2))
        for q in (0.2, 0.3):
            r[f"self{q}"] = roc_auc_score(y, selftrain(s2, xt, nbt, q))
            r[f"self{q}raw"] = roc_auc_score(y, selftrain(s, xt, nbt, q))
        rows.append(r)
        print(r, flush=True)
df = pd.DataFrame(rows)
print(df.groupby("t").mean().round(3))
print(df.drop(columns="t").mean().round(3))
