"""Shared pieces for the SENCA recipe search: preprocessing, neighbours, clustering, scoring."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import warnings

import _data
import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

warnings.filterwarnings("ignore")


def knn(xy, k):
    """(n,k) neighbour index, self in column 0 (ties broken by sklearn's order)."""
    _, idx = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors(xy)
    n = len(xy)
    bad = idx[:, 0] != np.arange(n)
    for r in np.flatnonzero(bad):
        others = [j for j in idx[r] if j != r][: k - 1]
        idx[r] = [r, *others]
    return idx


def hvg_lognorm(counts, n_top=3000):
    """seurat_v3 HVGs on counts, then normalize_total(1e4)+log1p of those genes. Returns (logX, counts_hvg)."""
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(sp.csr_matrix(counts.astype(np.float32)))
    sc.pp.filter_genes(a, min_cells=1)
    sc.pp.highly_variable_genes(a, flavor="seurat_v3", n_top_genes=min(n_top, a.n_vars))
    c = np.asarray(a.X[:, a.var["highly_variable"].values].todense())
    lib = np.asarray(a.X.sum(1)).ravel()  # library over ALL genes
    logx = np.log1p(1e4 * c / lib[:, None])
    return logx.astype(np.float32), c.astype(np.float32), lib.astype(np.float32)


def pca(x, n=50, scale=False, seed=0):
    x = x - x.mean(0)
    if scale:
        x = x / (x.std(0) + 1e-8)
        x = np.clip(x, -10, 10)
    return PCA(n_components=n, random_state=seed, svd_solver="full").fit_transform(x).astype(np.float32)


def smooth(x, idx, passes=2):
    for _ in range(passes):
        x = x[idx].mean(1)
    return x


def refine(labels, idx, frac=0.5):
    """Relabel a spot to its neighbourhood majority when that majority excludes it (strictly > frac)."""
    out = labels.copy()
    for i in range(len(labels)):
        nb = labels[idx[i, 1:]]
        vals, cnt = np.unique(nb, return_counts=True)
        j = np.argmax(cnt)
        if vals[j] != labels[i] and cnt[j] > frac * len(nb):
            out[i] = vals[j]
    return out


def cluster(emb, n, seed, method="gmm", n_pcs=15, idx=None, do_refine=False, n_init=1):
    e = emb - emb.mean(0)
    if n_pcs and n_pcs < e.shape[1]:
        e = PCA(n_components=n_pcs, random_state=seed, svd_solver="full").fit_transform(e)
    if method == "gmm":
        lab = GaussianMixture(n, covariance_type="tied", random_state=seed, n_init=n_init, reg_covar=1e-6).fit_predict(
            e
        )
    elif method in ("gmm_ward", "gmm_km"):
        if method == "gmm_ward":
            from sklearn.cluster import AgglomerativeClustering

            init = AgglomerativeClustering(n, linkage="ward").fit_predict(e)
        else:
            init = KMeans(n, random_state=seed, n_init=10).fit_predict(e)
        means = np.stack([e[init == c].mean(0) for c in range(n)])
        lab = GaussianMixture(
            n, covariance_type="tied", random_state=seed, means_init=means, reg_covar=1e-6
        ).fit_predict(e)
    elif method == "ward":
        from sklearn.cluster import AgglomerativeClustering

        lab = AgglomerativeClustering(n, linkage="ward").fit_predict(e)
    else:
        lab = KMeans(n, random_state=seed, n_init=10).fit_predict(e)
    if do_refine:
        lab = refine(lab, idx)
    return lab


def leiden_n(x, n, seed):
    """scanpy PCA(50) + neighbors(15) + Leiden with the resolution bisected to give n clusters."""
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(x.copy())
    sc.pp.pca(a, n_comps=50, random_state=seed)
    sc.pp.neighbors(a, n_neighbors=15, random_state=seed)
    lo, hi = 0.01, 3.0
    lab = None
    for _ in range(25):
        r = (lo + hi) / 2
        sc.tl.leiden(a, resolution=r, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
        lab = a.obs["leiden"].astype(int).values
        k = len(np.unique(lab))
        if k == n:
            break
        if k < n:
            lo = r
        else:
            hi = r
    return lab


class Section:
    def __init__(self, name, n_top=3000):
        d = _data.load(name)
        self.name = name
        self.labels = d["labels"]
        self.xy = d["xy"]
        self.mask = (self.labels != "undetermined") & (self.labels != "NA")
        self.n = len(np.unique(self.labels[self.mask]))
        self.logx, self.counts, self.lib = hvg_lognorm(d["counts"], n_top)
        self.he = _data.he_features(name)

    def score(self, lab):
        y = self.labels[self.mask]
        p = np.asarray(lab)[self.mask]
        return adjusted_rand_score(y, p), normalized_mutual_info_score(y, p)


_SECTIONS = {}


def sections():
    if not _SECTIONS:
        for s in _data.SECTIONS:
            _SECTIONS[s] = Section(s)
    return [_SECTIONS[s] for s in _data.SECTIONS]


def report(name, results):
    """results: {section: [ari per seed]} -> one line."""
    means = [np.mean(results[s]) for s in _data.SECTIONS]
    cells = " ".join(f"{np.mean(results[s]):.3f}±{np.std(results[s]):.3f}" for s in _data.SECTIONS)
    line = f"{name:55s} {cells}  mean {np.mean(means):.3f}"
    print(line, flush=True)
    return line
