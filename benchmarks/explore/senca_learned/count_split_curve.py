"""How much smoothing do held-out counts ask for?  Count splitting on all 36 her2st sections (no labels).

Each spot's counts are split binomially into halves A and B; the smoothed half A (0-8 passes of the mean over the
6 nearest spots) predicts half B in the top 15 PCs. Prints the best number of passes and the loss curve relative to
its minimum. Run: ``python count_split_curve.py`` (about 1 min).
"""

import numpy as np
from _h import ALL, lognorm, sec
from sklearn.decomposition import PCA

print("| section | median depth | best passes | loss / min for 0..8 passes |\n|---|---|---|---|")
for s in ALL:
    S = sec(s)
    rng = np.random.default_rng(0)
    a = S.counts.copy()
    a.data = rng.binomial(S.counts.data.astype(np.int64), 0.5).astype(np.float32)
    b = S.counts - a
    xa = lognorm(a, S.cols, np.asarray(a.sum(1)).ravel())
    xb = lognorm(b, S.cols, np.asarray(b.sum(1)).ravel())
    m = xa.mean(0)
    pc = PCA(15, svd_solver="full").fit(xa - m)
    za, zb = pc.transform(xa - m), pc.transform(xb - m)
    loss = [((zb - za) ** 2).sum(1).mean()]
    for _ in range(8):
        za = za[S.idx].mean(1)
        loss.append(((zb - za) ** 2).sum(1).mean())
    loss = np.array(loss)
    print(
        f"| {s} | {np.median(S.lib):.0f} | {int(np.argmin(loss))} | {' '.join(f'{v:.2f}' for v in loss / loss.min())} |"
    )
