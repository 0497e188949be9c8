"""Per-section embeddings on her2st A1-D1 against the parameter-free baseline (5 seeds, same run).

Run: ``cd benchmarks/explore/senca_learned && SENCA_DATA_DIR=... python variants.py`` (about 25 min on one core).
Rows: parameter-free variants of the baseline (how sensitive it is), then learned embeddings (trained once per
section with seed 0; the seeds vary the region caller, as in benchmarks/regions.py), then the baseline at a third of
the sequencing depth (binomial thinning), the depth of the held-out her2st sections.
"""

import numpy as np
from _h import LABELLED, evaluate, lognorm, pca, sec, smooth, thinned_counts
from _learned import count_split_attention, nb_glmpca, spatial_iic, spatial_ssl

print("| embedding | " + " | ".join(LABELLED) + " | mean |")
print("|---|" + "---|" * (len(LABELLED) + 1))
_cache = {}


def once(key, fn):
    if key not in _cache:
        _cache[key] = fn()
    return _cache[key]


# -- parameter-free
evaluate("baseline: PCA-50, mean over 6 nearest spots twice", lambda S, sd: smooth(pca(S.logx), S.idx, 2))
for p in (0, 1, 3, 4, 6):
    evaluate(f"baseline with {p} smoothing passes", lambda S, sd, p=p: smooth(pca(S.logx), S.idx, p))


def moran(p, idx):
    nb = p[idx[:, 1:]].mean(1)
    a, b = p - p.mean(0), nb - nb.mean(0)
    return np.clip((a * b).sum(0) / np.sqrt((a**2).sum(0) * (b**2).sum(0)), 0, None)


def multispati(S, n=50):
    p = pca(S.logx, 100)
    w = np.zeros((len(p), len(p)))
    for i in range(len(p)):
        w[i, S.idx[i, 1:]] = 1 / (S.idx.shape[1] - 1)
    vals, vecs = np.linalg.eigh(p.T @ ((w + w.T) / 2) @ p)
    return p @ vecs[:, np.argsort(-vals)[:n]]


def log_median(S, pseudo=1.0):
    lib = np.maximum(S.lib, 1)
    return np.log(S.counts[:, S.cols].toarray() * (np.median(lib) / lib)[:, None] + pseudo).astype(np.float32)


def regress_library(x, lib):
    a = np.c_[np.ones(len(lib)), np.log(np.maximum(lib, 1))]
    return x - a @ np.linalg.lstsq(a, x, rcond=None)[0]


evaluate(
    "PCs weighted by spatial autocorrelation, smoothed",
    lambda S, sd: smooth(pca(S.logx) * moran(pca(S.logx), S.idx), S.idx, 2),
)
evaluate("MULTISPATI axes (spatially lagged covariance), smoothed", lambda S, sd: smooth(multispati(S), S.idx, 2))
evaluate("log1p(x * median library / library), smoothed", lambda S, sd: smooth(pca(log_median(S)), S.idx, 2))
evaluate(
    "log-normalised with log library regressed out, smoothed",
    lambda S, sd: smooth(pca(regress_library(S.logx, S.lib)), S.idx, 2),
)

# -- learned
evaluate(
    "NB GLM-PCA (d 30, mean-library offset), smoothed",
    lambda S, sd: smooth(once(("glm", S.name), lambda: nb_glmpca(S)), S.idx, 2),
)
evaluate(
    "count-splitting trained attention (kernel + learned logits)",
    lambda S, sd: once(("cs", S.name), lambda: count_split_attention(S))[0],
)
for s in LABELLED:
    w = once(("cs", s), lambda s=s: count_split_attention(sec(s)))[1]
    print(f"  {s}: mean self weight of the trained attention {w:.2f} (baseline 0.15)")
evaluate(
    "spatial IIC heads on smoothed PCA (soft assignments)",
    lambda S, sd: once(("iic", S.name), lambda: spatial_iic(S, smooth(pca(S.logx), S.idx, 2)))[1],
)
evaluate(
    "spatial IIC heads on PCA (soft assignments)",
    lambda S, sd: once(("iic0", S.name), lambda: spatial_iic(S, pca(S.logx)))[1],
)
evaluate(
    "VICReg, neighbour positives, thinned views",
    lambda S, sd: smooth(once(("vic", S.name), lambda: spatial_ssl(S)), S.idx, 1),
)
evaluate(
    "InfoNCE, neighbour positives, thinned views",
    lambda S, sd: smooth(once(("nce", S.name), lambda: spatial_ssl(S, "nce")), S.idx, 1),
)

# -- depth: a third of the counts (the depth of the held-out sections)
for p in (1, 2, 3, 4):
    evaluate(
        f"[0.3 depth] baseline with {p} passes",
        lambda S, sd, p=p: smooth(
            pca(lognorm(thinned_counts(S, 0.3), S.cols, np.asarray(thinned_counts(S, 0.3).sum(1)).ravel())), S.idx, p
        ),
    )
