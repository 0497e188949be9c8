# ruff: noqa: E402
# Scratch experiment (see README.md); run from this folder: python exp3.py
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
from data import SECTIONS, load
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import senca
from senca.metrics import gmm_threshold
from senca.model._spacrd import gene_features, select_genes
from senca.pp import knn_index

secs = load()


def smooth(x, nbr, passes=1):
    for _ in range(passes):
        x = x[nbr].mean(1)
    return x


def rank(s):
    return pd.Series(s).rank(pct=True).to_numpy()


res = {}
for t in SECTIONS:
    src = [s for s in SECTIONS if s != t]
    source = senca.pp.concat_sections({s: secs[s] for s in src})
    g = source.obs["section"].astype(str).to_numpy()
    genes = select_genes(source.layers["counts"], source.var_names, g, 3000)
    xs = gene_features(source.layers["counts"], source.var_names, genes, g)
    tg = secs[t]
    y = tg.obs["cancer"].to_numpy()
    xt = gene_features(tg.layers["counts"], tg.var_names, genes, np.zeros(tg.n_obs))
    ys = source.obs["cancer"].to_numpy()
    nbt = knn_index(np.asarray(tg.obsm["spatial"]), 7, None)
    r = {}
    lr = LogisticRegression(C=1, max_iter=3000).fit(xs, ys)
    s0 = lr.decision_function(xt)
    s = smooth(s0, nbt, 2)
    r["lr+sm2"] = roc_auc_score(y, s)
    # self-training on target: pseudo labels from quantiles
    for q in [0.2, 0.3]:
        lo, hi = np.quantile(s, [q, 1 - q])
        keep = (s <= lo) | (s >= hi)
        for C in [1.0, 0.01]:
            lt = LogisticRegression(C=C, max_iter=3000).fit(xt[keep], s[keep] >= hi)
            st = smooth(lt.decision_function(xt), nbt, 2)
            r[f"self q{q} C{C}"] = roc_auc_score(y, st)
            r[f"self q{q} C{C} avg"] = roc_auc_score(y, rank(st) + rank(s))
    # GMM threshold pseudo labels
    th = gmm_threshold((s - s.min()) / (s.max() - s.min()))
    # target PCA-space kNN label propagation
    res[t] = r
    print(t, {k: round(v, 3) for k, v in r.items()}, flush=True)
df = pd.DataFrame(res)
df["mean"] = df.mean(1)
print(df.round(3).to_string())
