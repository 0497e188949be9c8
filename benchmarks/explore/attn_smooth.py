"""SENCA recipe candidate: learned neighbourhood attention as adaptive smoothing (plain torch).

Embedding = attention-weighted average of the PCA of log-normalised HVGs over the spot's k nearest spots,
applied `passes` times. The attention (queries/keys from gene tokens, plus image tokens when an H&E is given)
is trained self-supervised: predict a spot's counts (NB) from its neighbours only (self masked, noise2self).
At inference the self weight is fixed to 1/k and the neighbours share (k-1)/k by the learned attention, so an
untrained model equals the smoothed-PCA baseline.
"""

import sys
import time

import numpy as np
import torch
import torch.nn as nn
from _common import cluster, knn, pca, report, sections

torch.set_num_threads(1)


class AttnSmoother(nn.Module):
    def __init__(self, n_in, n_genes, n_img=0, d=64, heads=4, n_latent_dec=None, img_mode="keys"):
        super().__init__()
        self.gene_head = nn.Sequential(nn.Linear(n_in, d), nn.LayerNorm(d), nn.GELU())
        self.img_head = nn.Sequential(nn.Linear(n_img, d), nn.LayerNorm(d), nn.GELU()) if n_img else None
        self.e_gene = nn.Parameter(torch.zeros(d))
        self.e_img = nn.Parameter(torch.zeros(d))
        self.shared = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d), nn.GELU(), nn.Linear(d, d))
        self.heads, self.dh = heads, d // heads
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.img_mode = img_mode
        self.dec = nn.Linear(n_in, n_genes)
        self.log_theta = nn.Parameter(torch.zeros(n_genes))

    def tokens(self, x, h):
        t = self.shared(self.gene_head(x) + self.e_gene)
        if self.img_head is not None:
            th = self.shared(self.img_head(h) + self.e_img)
            if self.img_mode == "keys":
                t = t + th  # both modalities decide who is alike
            elif self.img_mode == "only":
                t = th
        return t

    def attention(self, x, h, idx):
        """Neighbour attention over idx[:, 1:] (self excluded), averaged over heads: (n, k-1)."""
        t = self.tokens(x, h)
        n, k = idx.shape
        q = self.q(t).view(n, self.heads, self.dh)
        kk = self.k(t)[idx[:, 1:]].view(n, k - 1, self.heads, self.dh)
        logits = torch.einsum("nhd,nkhd->nhk", q, kk) / self.dh**0.5
        return logits.softmax(-1).mean(1)

    def embed(self, x, h, idx, passes=2, self_w=None):
        a = self.attention(x, h, idx)
        k = idx.shape[1]
        sw = 1.0 / k if self_w is None else self_w
        z = x
        for _ in range(passes):
            z = sw * z + (1 - sw) * torch.einsum("nk,nkd->nd", a, z[idx[:, 1:]])
        return z, a

    def loss(self, x, h, idx, counts, lib):
        a = self.attention(x, h, idx)
        zn = torch.einsum("nk,nkd->nd", a, x[idx[:, 1:]])  # neighbours only -> predicts the spot
        mu = lib[:, None] * self.dec(zn).softmax(-1)
        theta = self.log_theta.exp()
        ll = (
            torch.lgamma(counts + theta)
            - torch.lgamma(theta)
            - torch.lgamma(counts + 1)
            + theta * (torch.log(theta + 1e-8) - torch.log(theta + mu + 1e-8))
            + counts * (torch.log(mu + 1e-8) - torch.log(theta + mu + 1e-8))
        )
        return -ll.mean()


def run_model(
    s,
    seed,
    k=6,
    passes=2,
    epochs=300,
    lr=3e-3,
    use_img=True,
    img_mode="keys",
    d=64,
    n_pcs=15,
    do_refine=False,
    return_emb=False,
    wd=0.0,
):
    torch.manual_seed(seed)
    np.random.seed(seed)
    idx = knn(s.xy, k)
    p = pca(s.logx)
    x = torch.tensor(p / p[:, 0].std())
    h = None
    if use_img and s.he is not None:
        hh = (s.he - s.he.mean(0)) / (s.he.std(0) + 1e-8)
        h = torch.tensor(hh, dtype=torch.float32)
    m = AttnSmoother(x.shape[1], s.counts.shape[1], 0 if h is None else h.shape[1], d=d, img_mode=img_mode)
    opt = torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd)
    it = torch.tensor(idx)
    c = torch.tensor(s.counts)
    lib = c.sum(1)
    for _ in range(epochs):
        opt.zero_grad()
        loss = m.loss(x, h, it, c, lib)
        loss.backward()
        opt.step()
    with torch.no_grad():
        z, a = m.embed(x, h, it, passes=passes)
    z = z.numpy()
    if return_emb:
        return z, a.numpy()
    return cluster(z, s.n, seed, "gmm", n_pcs=n_pcs, idx=idx, do_refine=do_refine)


if __name__ == "__main__":
    SEEDS = [0, 1, 2]
    secs = sections()
    which = sys.argv[1:] or ["a"]

    def go(name, **kw):
        t0 = time.time()
        res = {s.name: [s.score(run_model(s, sd, **kw))[0] for sd in SEEDS] for s in secs}
        report(name + f" ({(time.time() - t0) / len(SEEDS) / len(secs):.1f}s)", res)

    if "a" in which:
        go("attn-smooth noimg e300", use_img=False)
        go("attn-smooth img(keys) e300", use_img=True)
        go("attn-smooth noimg e0 (=baseline)", use_img=False, epochs=0)
