"""LOSO estimate of the parameter-free baseline's knobs (k, passes, GMM PCs) over A1-D1."""

import itertools

import numpy as np
from _h import LABELLED, cluster, knn, pca, sec, smooth

grid = list(itertools.product([5, 6, 7, 9], [1, 2, 3, 4], [10, 15, 20]))
res = {}
for s in LABELLED:
    S = sec(s)
    p = pca(S.logx)
    for k, ps, npc in grid:
        idx = knn(S.xy, k)
        z = smooth(p, idx, ps)
        res[(s, k, ps, npc)] = float(np.mean([S.score(cluster(z, S.n, sd, n_pcs=npc)) for sd in range(5)]))


def mean_over(secs, cfg):
    return np.mean([res[(s, *cfg)] for s in secs])


out = {}
for held in LABELLED:
    train = [s for s in LABELLED if s != held]
    best = max(grid, key=lambda c: mean_over(train, c))
    out[held] = (best, res[(held, *best)])
    chosen = f"chosen k={best[0]} passes={best[1]} n_pcs={best[2]} (train mean {mean_over(train, best):.3f})"
    print(
        f"held {held}: {chosen} -> {held} ARI {res[(held, *best)]:.3f}  [default (6,2,15): {res[(held, 6, 2, 15)]:.3f}]"
    )
print(
    "LOSO estimate",
    np.mean([v[1] for v in out.values()]),
    " default all-four",
    mean_over(LABELLED, (6, 2, 15)),
    " best all-four",
    max(mean_over(LABELLED, c) for c in grid),
)
