# ruff: noqa: E402, C408
# Scratch experiment (see README.md); run from this folder: python exp7.py
import logging
import sys
import time
import warnings

import pandas as pd

warnings.filterwarnings("ignore")
import torch
from data import SECTIONS, load

torch.set_num_threads(1)
for n in ("lightning", "lightning.pytorch", "scvi", "lightning_fabric"):
    logging.getLogger(n).setLevel(logging.ERROR)
from sklearn.metrics import roc_auc_score

import senca

secs = load()
seeds = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0]
kw = eval(sys.argv[2]) if len(sys.argv) > 2 else {}
pk = eval(sys.argv[3]) if len(sys.argv) > 3 else [{}]
rows = []
for t in SECTIONS:
    src = [s for s in SECTIONS if s != t]
    source = senca.pp.concat_sections({s: secs[s] for s in src})
    tg = secs[t].copy()
    y = tg.obs["cancer"].to_numpy()
    for seed in seeds:
        senca.model.SpaCRD.setup_anndata(source, layer="counts", labels_key="cancer", sample_key="section")
        m = senca.model.SpaCRD(source, **kw)
        t0 = time.time()
        m.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
        r = dict(t=t, seed=seed, train=time.time() - t0)
        for i, k in enumerate([dict(n_smooth=0, adapt_epochs=0)] + pk):
            p = tg.copy()
            p.obs = p.obs[[]]
            t0 = time.time()
            m.predict(p, **k)
            r[f"p{i}"] = roc_auc_score(y, p.obs["spacrd_score"])
            r[f"time{i}"] = time.time() - t0
        rows.append(r)
        print(r, flush=True)
df = pd.DataFrame(rows)
print(df.groupby("t").mean().round(3))
print(df.drop(columns="t").mean().round(3))
