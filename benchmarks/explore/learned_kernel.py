"""Learned metric for the median-normalised kernel attention (noise2self), vs the fixed kernel; consensus test."""

import numpy as np
import torch
from _common import cluster, knn, pca, report, sections
from _recipe import embed, weights

torch.set_num_threads(1)
SEEDS = [0, 1, 2]
secs = sections()


def attn_t(te, th, idx, se, sh):
    de = ((te[:, None, :] - te[idx[:, 1:]]) ** 2).sum(-1)
    logit = -de / (2 * se**2 * de.median().detach())
    if th is not None:
        dh = ((th[:, None, :] - th[idx[:, 1:]]) ** 2).sum(-1)
        logit = logit - dh / (2 * sh**2 * dh.median().detach())
    return logit.softmax(-1)


def learned(p, hp, idx, seed, se=2.0, sh=1.0, epochs=200, lr=1e-2, noise=0.0):
    torch.manual_seed(seed)
    x = torch.tensor(p)
    h = None if hp is None else torch.tensor(hp, dtype=torch.float32)
    we = torch.nn.Parameter(torch.eye(p.shape[1]) + noise * torch.randn(p.shape[1], p.shape[1]))
    wh = None if h is None else torch.nn.Parameter(torch.eye(h.shape[1]))
    params = [we] + ([wh] if wh is not None else [])
    opt = torch.optim.Adam(params, lr=lr)
    it = torch.tensor(idx)
    for _ in range(epochs):
        opt.zero_grad()
        a = attn_t(x @ we, None if h is None else h @ wh, it, se, sh)
        pred = torch.einsum("nk,nkd->nd", a, x[it[:, 1:]])
        loss = ((pred - x) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        a = attn_t(x @ we, None if h is None else h @ wh, it, se, sh).numpy()
    return a


def consensus(z, n, seed, runs=10, n_pcs=15):
    from sklearn.cluster import AgglomerativeClustering

    labs = np.stack([cluster(z, n, seed * 100 + r, "gmm_km", n_pcs=n_pcs) for r in range(runs)])
    co = (labs[:, :, None] == labs[:, None, :]).mean(0)
    return AgglomerativeClustering(n, metric="precomputed", linkage="average").fit_predict(1 - co)


rows = {}
for s in secs:
    idx = knn(s.xy, 6)
    p = pca(s.logx)
    p = p / p[:, 0].std()
    hp = None
    if s.he is not None:
        hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
        hp = pca(hh, n=10)
    for use_img in [False, True] if hp is not None else [False]:
        hpi = hp if use_img else None
        a_fix = weights(p, hpi, idx, 2.0, 1.0 if use_img else 0)
        z_fix = embed(p, idx, a_fix)
        for sd in SEEDS:
            out = {
                "fixed kernel gmm_km": cluster(z_fix, s.n, sd, "gmm_km", n_pcs=15),
                "fixed kernel consensus10": consensus(z_fix, s.n, sd),
            }
            for ep in [50, 200]:
                a = learned(p, hpi, idx, sd, epochs=ep)
                out[f"learned metric e{ep} gmm_km"] = cluster(embed(p, idx, a), s.n, sd, "gmm_km", n_pcs=15)
            for k, lab in out.items():
                key = f"{k} img={use_img}"
                rows.setdefault(key, {}).setdefault(s.name, []).append(s.score(lab)[0])
for key, r in rows.items():
    if len(r) == 4:
        report(key, r)
    else:
        print(f"{key:55s} A1 {np.mean(r['A1']):.3f}±{np.std(r['A1']):.3f}")
