"""The learned embeddings tried against the parameter-free baseline (plain torch, full batch, one section at a time)."""

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from _h import lognorm
from sklearn.decomposition import PCA
from torch import nn

torch.set_num_threads(1)


# --------------------------------------------------------------------------- count-splitting trained attention
def two_hop(idx, passes=2):
    """Support and weights of the baseline's smoothing operator (mean over k nearest, ``passes`` times), self first."""
    n, k = idx.shape
    a = sp.csr_matrix((np.full(n * k, 1.0 / k), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    m = a
    for _ in range(passes - 1):
        m = (a @ m).tocsr()
    m.sort_indices()
    width = int(np.diff(m.indptr).max())
    nb = np.zeros((n, width), dtype=np.int64)
    w = np.zeros((n, width), dtype=np.float32)
    mask = np.zeros((n, width), dtype=bool)
    for i in range(n):
        cols, vals = m.indices[m.indptr[i] : m.indptr[i + 1]], m.data[m.indptr[i] : m.indptr[i + 1]]
        order = np.argsort(cols != i, kind="stable")
        cols, vals = cols[order], vals[order]
        nb[i, : len(cols)], w[i, : len(cols)], mask[i, : len(cols)] = cols, vals, True
        nb[i, len(cols) :] = i
    return nb, w, mask


class CorrectedAttention(nn.Module):
    """Attention logits = log(baseline smoothing weights) + a learned term initialised at zero."""

    def __init__(self, d, hidden=32):
        super().__init__()
        self.q, self.k = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.pair = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
        nn.init.zeros_(self.pair[2].weight)
        nn.init.zeros_(self.pair[2].bias)
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, p, nb, logw, mask, loglib):
        dot = (self.q(p)[:, None] * self.k(p)[nb]).sum(-1) / np.sqrt(self.q.out_features)
        d2 = ((p[:, None] - p[nb]) ** 2).sum(-1)
        d2 = d2 / d2[mask].mean().clamp_min(1e-8)
        is_self = torch.zeros_like(d2)
        is_self[:, 0] = 1
        feats = torch.stack([d2, is_self, (loglib[:, None] - loglib[nb]).abs()], -1)
        logit = (logw + self.scale * dot + self.pair(feats).squeeze(-1)).masked_fill(~mask, -1e9)
        a = torch.softmax(logit, -1)
        return (a[..., None] * p[nb]).sum(1), a


def count_split_attention(S, n_pcs=50, target_pcs=15, epochs=200, lr=1e-2, seed=0):
    """Train the corrected attention so that half A of each spot's counts (binomial split, redrawn every epoch),
    attended over the two-hop neighbourhood, predicts half B of the same spot (top PCs): the held-out-count
    bias-variance choice of how much to smooth. Returns (embedding, mean self weight)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    lib = np.maximum(S.lib, 1)
    x = lognorm(S.counts, S.cols, lib)
    mean = x.mean(0)
    comps = torch.tensor(PCA(n_pcs, svd_solver="full", random_state=0).fit(x - mean).components_.T)
    mt = torch.tensor(mean)
    nb, w, mask = two_hop(S.idx)
    nb_t, mask_t = torch.tensor(nb), torch.tensor(mask)
    logw = torch.log(torch.tensor(w).clamp_min(1e-12))
    model = CorrectedAttention(n_pcs)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    c = S.counts[:, S.cols].tocsr()
    tot = np.asarray(c.sum(1)).ravel()
    for _ in range(epochs):
        a = c.copy()
        a.data = rng.binomial(c.data.astype(np.int64), 0.5).astype(np.float32)
        b = c - a
        la = np.maximum(lib * (np.asarray(a.sum(1)).ravel() + 1) / (tot + 2), 1)
        lb = np.maximum(lib - la, 1)
        pa = (torch.tensor(np.log1p(1e4 * a.toarray() / la[:, None]), dtype=torch.float32) - mt) @ comps
        pb = (torch.tensor(np.log1p(1e4 * b.toarray() / lb[:, None]), dtype=torch.float32) - mt) @ comps
        z, _ = model(pa, nb_t, logw, mask_t, torch.tensor(np.log(la), dtype=torch.float32))
        loss = ((z[:, :target_pcs] - pb[:, :target_pcs]) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = torch.tensor(x - mean) @ comps
        z, att = model(p, nb_t, logw, mask_t, torch.tensor(np.log(lib), dtype=torch.float32))
    return z.numpy(), float(att[:, 0].mean())


# --------------------------------------------------------------------------- invariant information clustering
def _iic(pa, pb, eps=1e-8):
    joint = (pa[:, :, None] * pb[:, None, :]).mean(0)
    joint = ((joint + joint.T) / 2).clamp_min(eps)
    pi, pj = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return -(joint * (torch.log(joint) - torch.log(pi) - torch.log(pj))).sum()


def spatial_iic(S, x, heads=(5, 10, 20), epochs=300, seed=0, hidden=64, lr=1e-3):
    """MLP heads whose soft cluster assignments maximise mutual information between spatial neighbours."""
    torch.manual_seed(seed)
    xt = torch.tensor((x - x.mean(0)) / x.std(), dtype=torch.float32)
    body = nn.Sequential(nn.Linear(xt.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
    hs = nn.ModuleList([nn.Linear(hidden, c) for c in heads])
    opt = torch.optim.Adam([*body.parameters(), *hs.parameters()], lr=lr)
    idx = torch.tensor(S.idx)
    for _ in range(epochs):
        h = body(xt)
        loss = 0
        for head in hs:
            p = torch.softmax(head(h), -1)
            for j in range(1, idx.shape[1]):
                loss = loss + _iic(p, p[idx[:, j]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        h = body(xt)
        return h.numpy(), np.hstack([torch.softmax(head(h), -1).numpy() for head in hs])


# --------------------------------------------------------------------------- spatial self-supervision
def _vicreg(a, b):
    def var(z):
        return F.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean()

    def cov(z):
        z = z - z.mean(0)
        c = (z.T @ z) / (len(z) - 1)
        return ((c - torch.diag(torch.diag(c))) ** 2).sum() / z.shape[1]

    return 25 * F.mse_loss(a, b) + 25 * (var(a) + var(b)) + cov(a) + cov(b)


def spatial_ssl(S, kind="vicreg", neighbour_positive=True, epochs=300, seed=0, d=32, lr=1e-3):
    """Encoder of neighbourhood-averaged PCA trained on two count-thinned views (VICReg or InfoNCE); the positive
    of a spot is a random spatial neighbour's view (or its own second view)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x = S.logx
    mean = x.mean(0)
    comps = PCA(50, svd_solver="full", random_state=0).fit(x - mean).components_.T
    idx = torch.tensor(S.idx)
    c = S.counts[:, S.cols].tocsr()
    la = np.maximum(S.lib * 0.5, 1)

    def view():
        a = c.copy()
        a.data = rng.binomial(c.data.astype(np.int64), 0.5).astype(np.float32)
        return torch.tensor((np.log1p(1e4 * a.toarray() / la[:, None]) - mean) @ comps, dtype=torch.float32)

    enc = nn.Sequential(nn.Linear(50, 128), nn.ReLU(), nn.Linear(128, d))
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    for _ in range(epochs):
        za, zb = enc(view()[idx].mean(1)), enc(view()[idx].mean(1))
        if neighbour_positive:
            j = torch.randint(1, idx.shape[1], (len(idx),))
            zb = zb[idx[torch.arange(len(idx)), j]]
        if kind == "vicreg":
            loss = _vicreg(za, zb)
        else:
            logits = F.normalize(za, dim=-1) @ F.normalize(zb, dim=-1).T / 0.5
            t = torch.arange(len(logits))
            loss = 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = torch.tensor((x - mean) @ comps, dtype=torch.float32)
        return enc(p[idx].mean(1)).numpy()


# --------------------------------------------------------------------------- negative-binomial factor model
def nb_glmpca(S, d=30, seed=0, epochs=400, size_factor=False, lr=0.05):
    """GLM-PCA with a negative-binomial likelihood, log mu = offset + b + z W (offset: the mean library, so the
    latent also carries each spot's depth/cellularity, or each spot's own library with ``size_factor=True``)."""
    torch.manual_seed(seed)
    c = S.counts[:, S.cols].toarray().astype(np.float32)
    lib = np.maximum(S.lib, 1)
    xt = torch.tensor(c)
    n, g = xt.shape
    off = torch.tensor(
        np.log(lib)[:, None] if size_factor else np.full((n, 1), np.log(lib.mean())), dtype=torch.float32
    )
    lx = np.log1p(c * (np.median(lib) / lib)[:, None] if size_factor else c)
    u, s, vt = np.linalg.svd(lx - lx.mean(0), full_matrices=False)
    z = torch.tensor(u[:, :d] * s[:d] / np.sqrt(n), requires_grad=True)
    w = torch.tensor(vt[:d].T * np.sqrt(n) * 0.1, requires_grad=True)
    b = torch.tensor(np.log((c.sum(0) + 1) / lib.sum()), dtype=torch.float32, requires_grad=True)
    logth = torch.zeros(g, requires_grad=True)
    opt = torch.optim.Adam([z, w, b, logth], lr=lr)
    for _ in range(epochs):
        eta = off + b + z @ w.T
        mu, th = torch.exp(eta.clamp(max=15)), torch.exp(logth)
        ll = (
            torch.lgamma(xt + th)
            - torch.lgamma(th)
            - torch.lgamma(xt + 1)
            + th * (torch.log(th) - torch.log(th + mu))
            + xt * (torch.log(mu) - torch.log(th + mu))
        )
        loss = -ll.mean() + 1e-3 * (z**2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    q, r = np.linalg.qr(w.detach().numpy())
    return z.detach().numpy() @ r.T
