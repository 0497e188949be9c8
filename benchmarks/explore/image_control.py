"""A1 only: does the image-keyed attention gain come from the H&E? Bandwidth sweep + shuffled-image control, 5 seeds."""

import numpy as np
from _common import cluster, knn, pca, sections
from _recipe import embed, weights

SEEDS = [0, 1, 2, 3, 4]
s = sections()[0]
idx = knn(s.xy, 6)
p = pca(s.logx)
hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
hp = pca(hh, n=10)
rng = np.random.default_rng(0)


def score(z):
    r = [s.score(cluster(z, s.n, sd, "gmm_km", n_pcs=15))[0] for sd in SEEDS]
    return f"{np.mean(r):.3f} ± {np.std(r):.3f}"


print("A1 uniform (no image)", score(embed(p, idx, np.full((len(p), 5), 0.2))))
for sh in [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]:
    print(f"A1 image-keyed sh={sh}", score(embed(p, idx, weights(p, hp, idx, np.inf, sh))))
for rep in range(3):
    hs = hp[rng.permutation(len(hp))]
    print(f"A1 SHUFFLED image sh=1 (perm {rep})", score(embed(p, idx, weights(p, hs, idx, np.inf, 1.0))))
# random (non-image) features of the same dimension
for rep in range(2):
    hr = rng.standard_normal(hp.shape)
    print(f"A1 RANDOM features sh=1 (draw {rep})", score(embed(p, idx, weights(p, hr, idx, np.inf, 1.0))))

# image-feature dimension: PCA-5 / PCA-10 / PCA-20(=all 24 standardised features, rotated) of the H&E statistics
for nd in [5, 10, 20]:
    print(f"A1 image-keyed sh=1, H&E PCA-{nd}", score(embed(p, idx, weights(p, pca(hh, n=nd), idx, np.inf, 1.0))))
print("A1 image-keyed sh=1, raw standardised 24 features", score(embed(p, idx, weights(p, hh, idx, np.inf, 1.0))))
