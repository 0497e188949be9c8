# ruff: noqa: E402, C408, B007
# Scratch experiment (see README.md); run from this folder: python exp6.py
import copy
import logging
import sys
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
import torch
from data import SECTIONS, load

torch.set_num_threads(1)
import torch.nn.functional as F

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


def pseudo(s, q=0.2):
    lo, hi = np.quantile(s, [q, 1 - q])
    keep = (s <= lo) | (s >= hi)
    return keep, (s >= hi)


def finetune(module, xt, nbr, keep, lab, epochs, lr=1e-4, seed=0, what="all"):
    torch.manual_seed(seed)
    m = copy.deepcopy(module)
    m.train()
    m.stage = "detect"
    params = [p for n, p in m.named_parameters() if (what == "all" or n.startswith("classifier"))]
    opt = torch.optim.Adam(params, lr=lr)
    X = torch.from_numpy(xt)
    idx = np.flatnonzero(keep)
    yy = torch.from_numpy(lab.astype(np.float32))
    rng = np.random.default_rng(seed)
    for ep in range(epochs):
        rng.shuffle(idx)
        for st in range(0, len(idx), 128):
            b = idx[st : st + 128]
            nb = torch.from_numpy(nbr[b])
            out = m.inference(X[nb], None, None, nb)
            loss = F.binary_cross_entropy_with_logits(out["logit"], yy[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        nb = torch.from_numpy(nbr)
        return m.inference(X[nb], None, None, nb)["logit"].numpy(), m


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
        xt = gene_features(tg.layers["counts"], tg.var_names, m.genes, np.zeros(tg.n_obs))
        mod = m.module
        mod.eval()
        with torch.no_grad():
            nb = torch.from_numpy(nbt)
            out = mod.inference(torch.from_numpy(xt)[nb], None, None, nb)
        s = out["logit"].numpy()
        lat = torch.cat([out["qm"], out["qlv"]], -1).numpy()
        s2 = smooth(s, nbt, 2)
        keep, lab = pseudo(s2)
        r = dict(t=t, seed=seed, raw=roc_auc_score(y, s), sm2=roc_auc_score(y, s2))
        lt = LogisticRegression(max_iter=3000).fit(xt[keep], lab[keep])
        r["lr_genes"] = roc_auc_score(y, smooth(lt.decision_function(xt), nbt, 2))
        lt = LogisticRegression(max_iter=3000).fit(lat[keep], lab[keep])
        r["lr_latent"] = roc_auc_score(y, smooth(lt.decision_function(lat), nbt, 2))
        for ep in (5, 20):
            f, _ = finetune(mod, xt, nbt, keep, lab, ep, seed=seed)
            r[f"ft{ep}"] = roc_auc_score(y, smooth(f, nbt, 2))
        f, _ = finetune(mod, xt, nbt, keep, lab, 20, lr=1e-3, seed=seed, what="head")
        r["fthead"] = roc_auc_score(y, smooth(f, nbt, 2))
        rows.append(r)
        print(r, flush=True)
df = pd.DataFrame(rows)
print(df.groupby("t").mean().round(3))
print(df.drop(columns="t").mean().round(3))
