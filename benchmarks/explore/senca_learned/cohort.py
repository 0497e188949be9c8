"""Cohort mode on all 36 her2st sections: one embedding, one region caller, one label vocabulary.

Run: ``python cohort.py [--scvi]`` (about 5 min; ``--scvi`` also trains two scVI models, about 35 min on one core).
Genes: 3,000 seurat_v3 HVGs over the 36 sections (batch_key = section) of the genes all sections share; the
embedding is smoothed within each section (mean over the 6 nearest spots, twice) and clustered once over all
13,620 spots (k-means-initialised EEE GMM on 15 PCs, 6 regions = the pathologist classes of A1-D1 pooled, without
"undetermined"); pooled ARI on the labelled spots of A1-D1, mean over seeds 0-2. Left-out rows: the section is
removed from PCA, Harmony and the region caller, then embedded by mapping onto the Harmony reference (Symphony's
query mapping) and assigned by the stored caller.
"""

import sys

import harmonypy
import numpy as np
import pandas as pd
import scipy.sparse as sp
from _h import ALL, ARI, CACHE, LABELLED, PCA, GaussianMixture, KMeans, load, sec

NCL = 6


def cohort_matrix(n_top=3000):
    f = CACHE / f"cohort_{n_top}.npz"
    if f.exists():
        z = np.load(f, allow_pickle=True)
        return z["logx"], z["section"], z["genes"]
    import anndata as ad
    import scanpy as sc

    ds = {s: load(s) for s in ALL}
    common = set(ds[ALL[0]]["genes"])
    for s in ALL[1:]:
        common &= set(ds[s]["genes"])
    common = np.array(sorted(common))
    mats = [ds[s]["counts"][:, pd.Index(ds[s]["genes"]).get_indexer(common)] for s in ALL]
    section = np.concatenate([[s] * ds[s]["counts"].shape[0] for s in ALL])
    x = sp.vstack(mats).tocsr()
    lib = np.concatenate([np.asarray(ds[s]["counts"].sum(1)).ravel() for s in ALL])
    a = ad.AnnData(x.astype(np.float32))
    a.obs["section"] = section
    sc.pp.highly_variable_genes(a, flavor="seurat_v3", n_top_genes=n_top, batch_key="section")
    hv = a.var["highly_variable"].to_numpy()
    logx = np.log1p(1e4 * x[:, hv].toarray() / np.maximum(lib, 1)[:, None]).astype(np.float32)
    np.savez(f, logx=logx, section=section, genes=common[hv])
    return logx, section, common[hv]


X, SECTION, GENES = cohort_matrix()
IDX = np.zeros((len(X), 6), dtype=np.int64)
for s in ALL:
    r = np.flatnonzero(SECTION == s)
    IDX[r] = r[sec(s).idx]
LABELS = np.concatenate([sec(s).labels for s in ALL])
OK = (LABELS != "undetermined") & (LABELS != "NA")
POOLED = np.isin(SECTION, LABELLED) & OK


def smooth_rows(z, rows, passes=2):
    pos = -np.ones(len(X), dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    idx = pos[IDX[rows]]
    for _ in range(passes):
        z = z[idx].mean(1)
    return z


def caller(e, seed):
    pc = PCA(15, svd_solver="full", random_state=seed).fit(e)
    t = pc.transform(e)
    init = KMeans(NCL, random_state=seed, n_init=10).fit_predict(t)
    means = np.stack([t[init == c].mean(0) for c in range(NCL)])
    g = GaussianMixture(
        NCL, covariance_type="tied", random_state=seed, means_init=means, reg_covar=1e-6, tol=1e-5, max_iter=1000
    ).fit(t)
    return lambda z: g.predict(pc.transform(z))


def report(name, z, seeds=(0, 1, 2)):
    e = smooth_rows(z, np.arange(len(X)))
    pooled, per = [], {s: [] for s in LABELLED}
    for sd in seeds:
        lab = caller(e, sd)(e)
        pooled.append(ARI(LABELS[POOLED], lab[POOLED]))
        for s in LABELLED:
            m = (SECTION == s) & OK
            per[s].append(ARI(LABELS[m], lab[m]))
    cells = " | ".join(f"{np.mean(v):.3f}" for v in per.values())
    print(f"| {name} | {np.mean(pooled):.3f} ± {np.std(pooled):.3f} | {cells} |", flush=True)


def harmony(z, batches, seed=0):
    return harmonypy.run_harmony(z, pd.DataFrame({"b": batches}), "b", random_state=seed, verbose=False)


def symphony_map(ho, zref_corr, zq, lam=1.0, sigma=0.1):
    """Symphony's query mapping (Kang et al. 2021): soft-assign the query to the reference's Harmony centroids and
    remove its per-centroid offset, estimated by ridge regression against the reference's compressed statistics."""
    y = np.asarray(ho.Y)
    y = y / np.linalg.norm(y, axis=0, keepdims=True)
    rref = np.asarray(ho.R)
    nr, cr = rref.sum(0), rref.T @ zref_corr
    zc = zq / np.linalg.norm(zq, axis=1, keepdims=True)
    logit = -2.0 * (1 - zc @ y) / sigma
    r = np.exp(logit - logit.max(1, keepdims=True))
    r /= r.sum(1, keepdims=True)
    out = zq.copy()
    for k in range(y.shape[1]):
        rk = r[:, k]
        a = np.array([[nr[k] + rk.sum(), rk.sum()], [rk.sum(), rk.sum() + lam]])
        w = np.linalg.solve(a, np.vstack([cr[k] + rk @ zq, rk @ zq]))
        out -= rk[:, None] * w[1][None]
    return out


def pca50(x, fit_rows=None):
    fit = x if fit_rows is None else x[fit_rows]
    m = fit.mean(0)
    return PCA(50, svd_solver="full", random_state=0).fit(fit - m).transform(x - m)


print(
    "| cohort embedding (smoothed within sections) | pooled ARI A1-D1 | A1 | B1 | C1 | D1 |\n|---|---|---|---|---|---|"
)
Z = pca50(X)
report("cohort PCA (baseline)", Z)
zc = X.copy()
for s in ALL:
    zc[SECTION == s] -= zc[SECTION == s].mean(0)
report("PCA of section-centred expression", pca50(zc))
meta = pd.DataFrame({"section": SECTION, "patient": [s[0] for s in SECTION]})
report("Harmony over patients on the cohort PCA", np.asarray(harmony(Z, meta["patient"].to_numpy()).Z_corr))
HO = harmony(Z, SECTION)
ZH = np.asarray(HO.Z_corr)
report("Harmony over sections on the cohort PCA", ZH)
if "--scvi" in sys.argv:
    import anndata as ad
    import scvi
    import torch

    torch.set_num_threads(1)
    ds = {s: load(s) for s in ALL}
    counts = sp.vstack([ds[s]["counts"][:, pd.Index(ds[s]["genes"]).get_indexer(GENES)] for s in ALL]).tocsr()
    for key in (None, "section"):
        a = ad.AnnData(counts.astype(np.float32), obs=pd.DataFrame({"section": SECTION}))
        scvi.model.SCVI.setup_anndata(a, batch_key=key)
        m = scvi.model.SCVI(a, n_latent=20)
        m.train(max_epochs=100, accelerator="cpu", enable_progress_bar=False, batch_size=256)
        report(f"scVI (n_latent 20, 100 epochs, batch_key={key})", m.get_latent_representation())

print("\n| section | trained in (same caller as above, seed 0) | left out, mapped, stored caller |\n|---|---|---|")
e_all = smooth_rows(ZH, np.arange(len(X)))
call_all = caller(e_all, 0)
for s in LABELLED:
    q, ref = np.flatnonzero(SECTION == s), np.flatnonzero(SECTION != s)
    m = OK[q]
    trained_in = ARI(LABELS[q][m], call_all(e_all[q])[m])
    zr = pca50(X, ref)
    ho = harmony(zr[ref], SECTION[ref])
    zrc = np.asarray(ho.Z_corr)
    zq = symphony_map(ho, zrc, zr[q])
    left_out = ARI(LABELS[q][m], caller(smooth_rows(zrc, ref), 0)(smooth_rows(zq, q))[m])
    print(f"| {s} | {trained_in:.3f} | {left_out:.3f} |", flush=True)
