"""Non-learned neighbour weighting (bilateral kernels on expression / H&E features) vs uniform smoothing."""

import numpy as np
from _common import cluster, knn, pca, report, sections

SEEDS = [0, 1, 2]
secs = sections()


def kernel_weights(f, idx, scale=1.0):
    """a_ij over idx[:,1:] ∝ exp(-|f_i - f_j|^2 / (2 (scale*sigma)^2)), sigma = median neighbour distance."""
    d2 = ((f[:, None, :] - f[idx[:, 1:]]) ** 2).sum(-1)
    sig2 = np.median(d2) * scale**2
    w = np.exp(-d2 / (2 * sig2))
    return w / w.sum(1, keepdims=True)


def embed(p, idx, a, passes=2):
    z = p
    k = idx.shape[1]
    for _ in range(passes):
        z = z / k + (1 - 1 / k) * np.einsum("nk,nkd->nd", a, z[idx[:, 1:]])
    return z


rows = {}
for s in secs:
    idx = knn(s.xy, 6)
    p = pca(s.logx)
    uni = np.full((len(p), 5), 0.2)
    variants = {"uniform": uni}
    for sc in [1.0, 2.0]:
        variants[f"expr-bilateral s={sc}"] = kernel_weights(p, idx, sc)
    if s.he is not None:
        hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
        hp = pca(hh, n=10)
        for sc in [1.0, 2.0]:
            variants[f"img-bilateral s={sc}"] = kernel_weights(hp, idx, sc)
        # naive concatenation of H&E features (the known-bad baseline), same smoothing
        variants["concat-img"] = None
    for name, a in variants.items():
        for meth in ["gmm", "gmm_km"]:
            key = f"{name} {meth}"
            if a is None:
                hz = (hh - hh.mean(0)) / hh.std(0) * p[:, 0].std() / 3
                z = embed(np.hstack([p, hz]), idx, uni)
            else:
                z = embed(p, idx, a)
            rows.setdefault(key, {})[s.name] = [s.score(cluster(z, s.n, sd, meth, n_pcs=15))[0] for sd in SEEDS]
for key, r in rows.items():
    if len(r) == 4:
        report(key, r)
    else:
        print(f"{key:55s} A1 {np.mean(r['A1']):.3f}±{np.std(r['A1']):.3f}")
