# ruff: noqa: B023  (each lambda is called inside the loop iteration that defines it)
"""Final comparison on her2st A1-D1, 5 seeds: the winning SENCA embedding recipe vs the baselines (same run).

Run:  cd benchmarks/explore && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python final.py
Protocol: n_regions = pathologist classes present except "undetermined"; ARI/NMI on labelled non-undetermined spots.
"""

import time

import numpy as np
from _common import cluster, knn, leiden_n, pca, sections, smooth
from _recipe import embed, weights

SEEDS = [0, 1, 2, 3, 4]
PUBLISHED = {"A1": 0.266, "B1": 0.357, "C1": 0.279, "D1": 0.220}
secs = sections()
rows, nmis, times = {}, {}, {}


def add(name, s, fn):
    t0 = time.time()
    for sd in SEEDS:
        ari, nmi = s.score(fn(sd))
        rows.setdefault(name, {}).setdefault(s.name, []).append(ari)
        nmis.setdefault(name, {}).setdefault(s.name, []).append(nmi)
    times.setdefault(name, []).append((time.time() - t0) / len(SEEDS))


for s in secs:
    idx = knn(s.xy, 6)
    p = pca(s.logx)
    z0 = smooth(p, idx, 2)
    add("scanpy PCA + Leiden", s, lambda sd: leiden_n(s.logx, s.n, sd))
    add("smoothed PCA + EEE GMM (sklearn init), 50 PCs", s, lambda sd: cluster(z0, s.n, sd, "gmm", n_pcs=None))
    add("smoothed PCA + EEE GMM (sklearn init), 15 PCs", s, lambda sd: cluster(z0, s.n, sd, "gmm", n_pcs=15))
    add("smoothed PCA + KMeans, 15 PCs", s, lambda sd: cluster(z0, s.n, sd, "kmeans", n_pcs=15))
    add("smoothed PCA + EEE GMM (KMeans init), 15 PCs", s, lambda sd: cluster(z0, s.n, sd, "gmm_km", n_pcs=15))
    hp = None
    if s.he is not None:
        hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
        hp = pca(hh, n=10)
        hz = hh * p[:, 0].std() / 3
        zc = smooth(np.hstack([p, hz]), idx, 2)
        add(
            "smoothed [PCA, H&E stats] concat + EEE GMM (KMeans init)",
            s,
            lambda sd: cluster(zc, s.n, sd, "gmm_km", n_pcs=15),
        )
    t0 = time.time()
    a_e = weights(p, None, idx, 2.0, 0)
    z_e = embed(p, idx, a_e, 2)
    a_h = weights(p, hp, idx, 2.0, 1.0)  # = a_e where there is no image
    z_h = embed(p, idx, a_h, 2)
    a_i = weights(p, hp, idx, np.inf, 1.0)  # image-keyed only; uniform (= baseline) where there is no image
    z_i = embed(p, idx, a_i, 2)
    print(f"{s.name}: recipe embedding in {time.time() - t0:.2f}s", flush=True)
    add("SENCA recipe, expression only, EEE GMM (KMeans init)", s, lambda sd: cluster(z_e, s.n, sd, "gmm_km", n_pcs=15))
    add(
        "SENCA recipe (+H&E where given), EEE GMM (KMeans init)",
        s,
        lambda sd: cluster(z_h, s.n, sd, "gmm_km", n_pcs=15),
    )
    add(
        "SENCA recipe B: image-keyed attention only (se=inf, sh=1)",
        s,
        lambda sd: cluster(z_i, s.n, sd, "gmm_km", n_pcs=15),
    )
    add("SENCA recipe B + refine", s, lambda sd: cluster(z_i, s.n, sd, "gmm_km", n_pcs=15, idx=idx, do_refine=True))
    add(
        "SENCA recipe (+H&E where given), + refine",
        s,
        lambda sd: cluster(z_h, s.n, sd, "gmm_km", n_pcs=15, idx=idx, do_refine=True),
    )
    add("SENCA recipe (+H&E where given), EEE GMM (sklearn init)", s, lambda sd: cluster(z_h, s.n, sd, "gmm", n_pcs=15))

names = [s.name for s in secs]
print(f"\n| method | {' | '.join(names)} | mean | s/section |")
print("|---|" + "---|" * (len(names) + 2))
print(
    f"| best published per-section mean | {' | '.join(f'{PUBLISHED[n]:.3f}' for n in names)} | "
    f"{np.mean(list(PUBLISHED.values())):.3f} | |"
)
for name, r in rows.items():
    cells = []
    for n in names:
        cells.append(f"{np.mean(r[n]):.3f} ± {np.std(r[n]):.3f}" if n in r else "–")
    mean = np.mean([np.mean(r[n]) for n in names]) if len(r) == len(names) else float("nan")
    print(f"| {name} | {' | '.join(cells)} | {mean:.3f} | {np.mean(times[name]):.2f} |")
print("\nNMI")
for name, r in nmis.items():
    cells = [f"{np.mean(r[n]):.3f}" if n in r else "–" for n in names]
    print(f"| {name} | {' | '.join(cells)} |")
