# ruff: noqa: B023  (each lambda is called inside the loop iteration that defines it)
"""Non-learned baselines and smoothing/clustering knobs on her2st A1-D1 (ARI, mean±std over seeds)."""

import sys

import numpy as np
from _common import cluster, knn, leiden_n, pca, report, sections, smooth

SEEDS = [0, 1, 2]
which = sys.argv[1:] or ["base"]
secs = sections()


def run(name, fn):
    res = {s.name: [s.score(fn(s, seed))[0] for seed in SEEDS] for s in secs}
    return report(name, res)


if "base" in which:
    run("scanpy PCA + Leiden", lambda s, sd: leiden_n(s.logx, s.n, sd))
    for k, passes in [(6, 2)]:
        for meth in ["gmm", "kmeans"]:
            run(
                f"smoothPCA k={k} x{passes} {meth} 50PC",
                lambda s, sd: cluster(smooth(pca(s.logx), knn(s.xy, k), passes), s.n, sd, meth, n_pcs=None),
            )
            run(
                f"smoothPCA k={k} x{passes} {meth} 15PC",
                lambda s, sd: cluster(smooth(pca(s.logx), knn(s.xy, k), passes), s.n, sd, meth, n_pcs=15),
            )
if "knobs" in which:
    for k in [5, 6, 7, 9]:
        for passes in [1, 2, 3, 4]:
            run(
                f"smoothPCA k={k} x{passes} gmm 15PC",
                lambda s, sd: cluster(smooth(pca(s.logx), knn(s.xy, k), passes), s.n, sd, "gmm", n_pcs=15),
            )
if "pcs" in which:
    for npc in [5, 10, 15, 20, 30]:
        for ref in [False, True]:
            run(
                f"smoothPCA k=6 x2 gmm {npc}PC refine={ref}",
                lambda s, sd: cluster(
                    smooth(pca(s.logx), knn(s.xy, 6), 2), s.n, sd, "gmm", n_pcs=npc, idx=knn(s.xy, 6), do_refine=ref
                ),
            )
    run(
        "smoothPCA k=6 x2 gmm 15PC scaled",
        lambda s, sd: cluster(smooth(pca(s.logx, scale=True), knn(s.xy, 6), 2), s.n, sd, "gmm", n_pcs=15),
    )
    run(
        "smoothPCA k=6 x2 gmm 15PC ninit10",
        lambda s, sd: cluster(smooth(pca(s.logx), knn(s.xy, 6), 2), s.n, sd, "gmm", n_pcs=15, n_init=10),
    )
if "init" in which:
    for meth in ["gmm_ward", "gmm_km", "ward"]:
        for npc in [10, 15, 20, 30]:
            run(
                f"smoothPCA k=6 x2 {meth} {npc}PC",
                lambda s, sd: cluster(smooth(pca(s.logx), knn(s.xy, 6), 2), s.n, sd, meth, n_pcs=npc),
            )
if "pool" in which:
    # smoothing in count space: pool raw HVG counts over the neighbourhood, then log-normalise, PCA, (optionally smooth)
    def pooled(s, k=6, passes=1, post=1, n_pcs=15, meth="gmm_km", sd=0):
        idx = knn(s.xy, k)
        c = s.counts.astype(np.float64)
        lib = s.lib.astype(np.float64)
        for _ in range(passes):
            c = c[idx].sum(1)
            lib = lib[idx].sum(1)
        logx = np.log1p(1e4 * c / lib[:, None]).astype(np.float32)
        z = smooth(pca(logx), idx, post)
        return cluster(z, s.n, sd, meth, n_pcs=n_pcs)

    for passes, post in [(1, 0), (1, 1), (2, 0)]:
        for meth in ["gmm", "gmm_km"]:
            run(
                f"pool counts x{passes} + smooth x{post} {meth} 15PC",
                lambda s, sd: pooled(s, 6, passes, post, 15, meth, sd),
            )
