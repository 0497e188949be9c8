"""Train the attention smoother once per (section, seed) and score several inference variants from it."""

import sys
import time
from collections import defaultdict

import numpy as np
import torch
from _common import cluster, knn, pca, report, sections
from attn_smooth import AttnSmoother

torch.set_num_threads(1)
SEEDS = [0, 1, 2]
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 150
secs = sections()
res = defaultdict(lambda: defaultdict(list))
ent = defaultdict(list)
t0 = time.time()
for s in secs:
    idx = knn(s.xy, 6)
    it = torch.tensor(idx)
    p = pca(s.logx)
    x = torch.tensor(p / p[:, 0].std())
    c = torch.tensor(s.counts)
    lib = c.sum(1)
    imgs = [False, True] if s.he is not None else [False]
    for use_img in imgs:
        h = None
        if use_img:
            hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
            h = torch.tensor(hh, dtype=torch.float32)
        for sd in SEEDS:
            torch.manual_seed(sd)
            m = AttnSmoother(x.shape[1], c.shape[1], 0 if h is None else h.shape[1])
            opt = torch.optim.Adam(m.parameters(), lr=3e-3)
            for _ in range(EPOCHS):
                opt.zero_grad()
                loss = m.loss(x, h, it, c, lib)
                loss.backward()
                opt.step()
            with torch.no_grad():
                a = m.attention(x, h, it)
            a = a.numpy()
            ent[(s.name, use_img)].append(float((-(a * np.log(a + 1e-9)).sum(1)).mean()))
            for lam in [0.0, 0.5, 1.0]:
                aa = lam * a + (1 - lam) / 5
                for passes in [2, 3]:
                    z = p.copy()
                    for _ in range(passes):
                        z = z / 6 + (5 / 6) * np.einsum("nk,nkd->nd", aa, z[idx[:, 1:]])
                    for meth in ["gmm", "gmm_km"]:
                        lab = cluster(z, s.n, sd, meth, n_pcs=15)
                        key = f"attn lam={lam} x{passes} img={use_img} {meth}"
                        res[key][s.name].append(s.score(lab)[0])
                        if not use_img and s.he is not None:
                            pass
print(f"{time.time() - t0:.0f}s", {k: np.round(v, 2) for k, v in ent.items()}, "uniform entropy", np.log(5))
for key in sorted(res):
    r = dict(res[key])
    if "img=True" in key:
        print(f"{key:55s} A1 {np.mean(r['A1']):.3f}±{np.std(r['A1']):.3f}")
    else:
        report(key, r)
