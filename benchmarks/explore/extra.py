# ruff: noqa: B023  (each lambda is called inside the loop iteration that defines it)
"""Extra checks on recipe B (5 seeds): GMM n PCs, image bandwidth grid, consensus, DEC-style clustering-aware refit."""

import numpy as np
import torch
from _common import cluster, knn, pca, report, sections
from _recipe import embed, weights
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA

torch.set_num_threads(1)
SEEDS = [0, 1, 2, 3, 4]
secs = sections()


def dec(z, n, seed, n_pcs=15, iters=150, lr=1e-2):
    """DEC on top of the KMeans-initialised EEE GMM: Student-t soft assignments, sharpened target, linear map."""
    torch.manual_seed(seed)
    e = PCA(n_components=n_pcs, random_state=seed, svd_solver="full").fit_transform(z - z.mean(0))
    e = e / e[:, 0].std()
    lab0 = cluster(z, n, seed, "gmm_km", n_pcs=n_pcs)
    x = torch.tensor(e, dtype=torch.float32)
    mu = torch.nn.Parameter(torch.stack([x[lab0 == c].mean(0) for c in range(n)]))
    w = torch.nn.Parameter(torch.eye(n_pcs))
    opt = torch.optim.Adam([mu, w], lr=lr)

    def soft():
        d = ((x @ w)[:, None, :] - mu[None]) ** 2
        q = 1 / (1 + d.sum(-1))
        return q / q.sum(1, keepdim=True)

    for it in range(iters):
        if it % 10 == 0:
            with torch.no_grad():
                q = soft()
                p = q**2 / q.sum(0)
                p = p / p.sum(1, keepdim=True)
        opt.zero_grad()
        q = soft()
        loss = (p * (torch.log(p + 1e-9) - torch.log(q + 1e-9))).sum(1).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return soft().argmax(1).numpy()


def consensus(z, n, seed, runs=10):
    labs = np.stack([cluster(z, n, seed * 100 + r, "gmm_km", n_pcs=15) for r in range(runs)])
    co = (labs[:, :, None] == labs[:, None, :]).mean(0)
    return AgglomerativeClustering(n, metric="precomputed", linkage="average").fit_predict(1 - co)


rows = {}
for s in secs:
    idx = knn(s.xy, 6)
    p = pca(s.logx)
    hp = None
    if s.he is not None:
        hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
        hp = pca(hh, n=10)
    z = embed(p, idx, weights(p, hp, idx, np.inf, 1.0))
    var = {f"recipe B gmm_km {k}PC": (lambda sd, k=k: cluster(z, s.n, sd, "gmm_km", n_pcs=k)) for k in [10, 15, 20]}
    var["recipe B consensus10"] = lambda sd: consensus(z, s.n, sd)
    var["recipe B + DEC refit"] = lambda sd: dec(z, s.n, sd)
    for name, fn in var.items():
        rows.setdefault(name, {})[s.name] = [s.score(fn(sd))[0] for sd in SEEDS]
    if hp is not None:
        for sh in [0.6, 0.8, 1.0, 1.2, 1.4]:
            zz = embed(p, idx, weights(p, hp, idx, np.inf, sh))
            print(
                f"A1 sh={sh}",
                np.round(np.mean([s.score(cluster(zz, s.n, sd, "gmm_km", n_pcs=15))[0] for sd in range(10)]), 3),
                "(10 seeds)",
                flush=True,
            )
for name, r in rows.items():
    report(name, r)
