# Scratch experiment (see README.md); run from this folder: python exp1.py

import numpy as np
import pandas as pd
from data import SECTIONS, load
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import senca
from senca.model._spacrd import gene_features, select_genes
from senca.pp import knn_index

secs = load()


def smooth(x, nbr, passes=1):
    for _ in range(passes):
        x = x[nbr].mean(1)
    return x


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
    nbs = knn_index(np.asarray(source.obsm["spatial"]), 7, g)
    nbt = knn_index(np.asarray(tg.obsm["spatial"]), 7, None)
    r = {}
    for C in [1.0, 0.01, 0.001]:
        lr = LogisticRegression(C=C, max_iter=3000).fit(xs, ys)
        s = lr.decision_function(xt)
        r[f"lr C{C}"] = roc_auc_score(y, s)
        r[f"lr C{C} +scoresmooth"] = roc_auc_score(y, smooth(s, nbt, 2))
        lr = LogisticRegression(C=C, max_iter=3000).fit(smooth(xs, nbs), ys)
        s = lr.decision_function(smooth(xt, nbt))
        r[f"lr C{C} featsmooth"] = roc_auc_score(y, s)
        r[f"lr C{C} featsmooth+scoresmooth"] = roc_auc_score(y, smooth(s, nbt, 2))
    res[t] = r
    print(t, {k: round(v, 3) for k, v in r.items()}, flush=True)
df = pd.DataFrame(res)
df["mean"] = df.mean(1)
print(df.round(3).to_string())
