"""A1, the only labelled section with an H&E: does the image help, is it more than a random key, can keys be learned?

Run: ``python image_a1.py`` (uses senca.im.extract_features(method="stats") on the A1 app PNG; about 2 min).
Attention as in SENCA's default embedding: weights softmax_j(-|h_i - h_j|^2 / (2 median)) over the 5 nearest
neighbours, z <- z/k + (1 - 1/k) sum_j a_ij z_j twice, on PCA-50 of the log-normalised HVGs.
"""

import os

import numpy as np
from _h import cluster, pca, sec, smooth
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold


def features():
    import senca

    a = senca.datasets.her2st("A1", image="hires")
    senca.im.extract_features(a, method="stats", progress=False)
    return np.asarray(a.obsm["X_histology"], dtype=np.float64)


def kernel(keys, idx):
    d2 = ((keys[:, None] - keys[idx[:, 1:]]) ** 2).sum(-1)
    logit = -d2 / (2 * max(np.median(d2), 1e-12))
    w = np.exp(logit - logit.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


def attend(z, idx, a, passes=2):
    k = idx.shape[1]
    for _ in range(passes):
        z = z / k + (1 - 1 / k) * np.einsum("nk,nkd->nd", a, z[idx[:, 1:]])
    return z


os.environ.setdefault("SENCA_DATA_DIR", "../shared/data")
S = sec("A1")
h = features()
hs = (h - h.mean(0)) / (h.std(0) + 1e-6)
p = pca(S.logx)


def row(name, z):
    res = [S.score(cluster(z, S.n, sd)) for sd in range(5)]
    print(f"| {name} | {np.mean(res):.3f} ± {np.std(res):.3f} |", flush=True)


print("| A1 embedding | ARI (5 seeds) |\n|---|---|")
row("no image: smoothed PCA", smooth(p, S.idx, 2))
hp = PCA(10, svd_solver="full").fit_transform(hs)
row("H&E keys: kernel on PCA-10 of the standardised features (SENCA's default)", attend(p, S.idx, kernel(hp, S.idx)))
rng = np.random.default_rng(0)
for r in range(3):
    row(f"shuffled H&E keys #{r}", attend(p, S.idx, kernel(hp[rng.permutation(len(hp))], S.idx)))
for target, name in [(p[:, :10], "PC1-10"), (smooth(p, S.idx, 2)[:, :10], "smoothed PC1-10"), (p[:, :3], "PC1-3")]:
    pred = np.zeros_like(target)
    for tr, te in KFold(5, shuffle=True, random_state=0).split(hs):  # cross-fitted: a spot's key never saw its counts
        pred[te] = RidgeCV(alphas=np.logspace(-2, 4, 20)).fit(hs[tr], target[tr]).predict(hs[te])
    row(f"learned keys: ridge H&E -> expression {name}, cross-fitted", attend(p, S.idx, kernel(pred, S.idx)))
