"""The winning SENCA embedding: median-normalised Gaussian-kernel neighbourhood attention.

Values are PCA of log-normalised HVGs.

For spot i with neighbours j in N(i) (k = 6 nearest incl. itself; j != i below):
    logit_ij = -|p_i - p_j|^2 / (2 se^2 med_e)  [ - |h_i - h_j|^2 / (2 sh^2 med_h)  if an H&E is given ]
    a_ij = softmax_j(logit_ij)        (over the k-1 neighbours)
    z <- z / k + (1 - 1/k) * sum_j a_ij z_j    applied `passes` (= 2) times, starting from z = p
p = PCA-50 of log1p(1e4 x / l) on 3,000 seurat_v3 HVGs; h = PCA-10 of standardised per-spot H&E colour stats;
med_e / med_h = median over all (i, j != i) pairs of the squared distances (scale-free bandwidths). se = 2, sh = 1.
With se = sh = inf it is exactly the smoothed-PCA baseline (mean over the 6 nearest spots, twice).
"""

import numpy as np


def d2(f, idx):
    return ((f[:, None, :] - f[idx[:, 1:]]) ** 2).sum(-1)


def weights(p, hp, idx, se=2.0, sh=1.0):
    logit = np.zeros(idx[:, 1:].shape)
    if np.isfinite(se):
        de = d2(p, idx)
        logit = logit - de / (2 * se**2 * np.median(de))
    if hp is not None and sh and np.isfinite(sh):
        dh = d2(hp, idx)
        logit = logit - dh / (2 * sh**2 * np.median(dh))
    w = np.exp(logit - logit.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


def embed(p, idx, a, passes=2):
    z = p
    k = idx.shape[1]
    for _ in range(passes):
        z = z / k + (1 - 1 / k) * np.einsum("nk,nkd->nd", a, z[idx[:, 1:]])
    return z
