"""Summarise logs/TAG.jsonl: mean over seeds per fold and variant (AUC, F1, called vs true prevalence); nested choice.

``python summarize.py TAG``
"""

import json
import sys

import numpy as np
import pandas as pd

df = pd.DataFrame([json.loads(line) for line in open(f"logs/{sys.argv[1]}.jsonl")])
for key in ("auc", "f1", "pred_prev"):
    q = df.groupby(["method", "variant", "target"])[key].mean().unstack("target")
    q["mean"] = q.mean(1)
    print(key)
    print(q.round(3).to_string())
print("true prevalence", df.groupby("target")["true_prev"].first().round(2).to_dict())
sp = df[df.method == "spacrd"].groupby(["variant", "target"])["auc"].mean().unstack("target")
folds = list(sp.columns)
nest = {}
for t in folds:
    others = [o for o in folds if o != t]
    best = sp[others].mean(1).idxmax()
    nest[t] = (best, round(float(sp.loc[best, t]), 3))
print("nested LOSO (AUC):", nest, "mean", round(np.mean([v[1] for v in nest.values()]), 3))
print("fits per fold:", df[df.method == "spacrd"].groupby("target")["seed"].nunique().to_dict())
