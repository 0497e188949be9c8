"""Shared harness for the learned-SENCA experiments (scratch; not part of the package).

her2st sections read straight from ``$SENCA_DATA_DIR/her2st`` (cached as npz in ``benchmarks/_work/senca_learned``).
Protocol (as in ``benchmarks/regions.py``): n_regions = pathologist classes present except "undetermined";
ARI on labelled, non-undetermined spots; clustering = k-means-initialised EEE Gaussian mixture on 15 PCs of the
embedding (what ``senca.tl.regions`` does, without refinement); mean +- sd over seeds 0-4.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score as ARI
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

warnings.filterwarnings("ignore")
ROOT = Path(os.environ.get("SENCA_DATA_DIR", "../shared/data")) / "her2st"
CACHE = Path(__file__).resolve().parents[2] / "_work" / "senca_learned"
ALL = [f"{p}{i}" for p, n in zip("ABCDEFGH", [6, 6, 6, 6, 3, 3, 3, 3]) for i in range(1, n + 1)]
LABELLED = ["A1", "B1", "C1", "D1"]


def load(s):
    """Counts (csr), genes, pixel coordinates and pathologist labels ("NA" where none) of one section."""
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / f"{s}.npz"
    if not f.exists():
        cnt = pd.read_csv(ROOT / "ST-cnts" / f"{s}.tsv.gz", sep="\t", index_col=0)
        spots = pd.read_csv(ROOT / "ST-spotfiles" / f"{s}_selection.tsv", sep="\t")
        spots.index = spots["x"].astype(str) + "x" + spots["y"].astype(str)
        spots = spots[~spots.index.duplicated()].reindex(cnt.index)
        labels = np.array(["NA"] * len(cnt), dtype=object)
        lf = ROOT / "ST-pat" / "lbl" / f"{s}_labeled_coordinates.tsv"
        if lf.exists():
            lbl = pd.read_csv(lf, sep="\t").dropna(subset=["x", "y"])
            lbl.index = lbl["x"].round().astype(int).astype(str) + "x" + lbl["y"].round().astype(int).astype(str)
            lbl = lbl[~lbl.index.duplicated()]
            labels = lbl["label"].reindex(cnt.index).fillna("NA").astype(str).values
        c = sp.csr_matrix(cnt.values.astype(np.float32))
        np.savez(
            f,
            data=c.data,
            indices=c.indices,
            indptr=c.indptr,
            shape=np.array(c.shape),
            genes=np.asarray(cnt.columns, dtype=str),
            xy=spots[["pixel_x", "pixel_y"]].values.astype(np.float64),
            labels=np.asarray(labels, dtype=str),
        )
    z = np.load(f, allow_pickle=True)
    d = {k: z[k] for k in z.files}
    d["counts"] = sp.csr_matrix((d.pop("data"), d.pop("indices"), d.pop("indptr")), shape=tuple(d.pop("shape")))
    return d


def knn(xy, k):
    """(n, k) neighbour index, the spot itself in column 0."""
    _, idx = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors(xy)
    for r in np.flatnonzero(idx[:, 0] != np.arange(len(xy))):
        idx[r] = [r, *[j for j in idx[r] if j != r][: k - 1]]
    return idx


def hvg(counts, n_top=3000):
    import anndata as ad
    import scanpy as sc

    keep = np.asarray((counts > 0).sum(0)).ravel() > 0
    a = ad.AnnData(counts[:, keep].astype(np.float32))
    sc.pp.highly_variable_genes(a, flavor="seurat_v3", n_top_genes=min(n_top, a.n_vars))
    return np.flatnonzero(keep)[a.var["highly_variable"].values]


def lognorm(counts, cols, lib):
    """log1p(1e4 x / library), the library over all genes."""
    return np.log1p(1e4 * counts[:, cols].toarray() / np.maximum(lib, 1)[:, None]).astype(np.float32)


def pca(x, n=50, seed=0):
    return PCA(n_components=n, random_state=seed, svd_solver="full").fit_transform(x - x.mean(0)).astype(np.float32)


def smooth(x, idx, passes=2):
    """Mean over each spot's k nearest spots (itself included), ``passes`` times: the smoothed-PCA baseline."""
    for _ in range(passes):
        x = x[idx].mean(1)
    return x


def cluster(emb, n, seed, n_pcs=15):
    """senca.tl.regions' default caller without refinement: k-means-initialised tied-covariance GMM on 15 PCs."""
    e = emb - emb.mean(0)
    if n_pcs and n_pcs < e.shape[1]:
        e = PCA(n_components=n_pcs, random_state=seed, svd_solver="full").fit_transform(e)
    init = KMeans(n, random_state=seed, n_init=10).fit_predict(e)
    means = np.stack([e[init == c].mean(0) for c in range(n)])
    gmm = GaussianMixture(
        n, covariance_type="tied", random_state=seed, means_init=means, reg_covar=1e-6, tol=1e-5, max_iter=1000
    )
    return gmm.fit_predict(e)


class Sec:
    """One section: counts, 3,000 seurat_v3 HVGs, log-normalised HVGs (whole library), kNN (k = 6), labels."""

    def __init__(self, name, n_top=3000):
        d = load(name)
        self.name, self.counts, self.genes, self.xy, self.labels = name, d["counts"], d["genes"], d["xy"], d["labels"]
        self.lib = np.asarray(self.counts.sum(1)).ravel()
        self.mask = (self.labels != "undetermined") & (self.labels != "NA")
        self.n = len(np.unique(self.labels[self.mask])) if self.mask.any() else 0
        cf = CACHE / f"{name}_hvg{n_top}.npy"
        if cf.exists():
            self.cols = np.load(cf)
        else:
            self.cols = hvg(self.counts, n_top)
            np.save(cf, self.cols)
        self.logx = lognorm(self.counts, self.cols, self.lib)
        self.idx = knn(self.xy, 6)

    def score(self, lab):
        return ARI(self.labels[self.mask], np.asarray(lab)[self.mask])


_S = {}


def sec(name):
    if name not in _S:
        _S[name] = Sec(name)
    return _S[name]


def thinned_counts(S, frac, seed=1):
    """Binomial thinning of every count (frac of the depth): a shallower copy of the same tissue."""
    if frac >= 1:
        return S.counts
    c = S.counts.copy()
    c.data = np.random.default_rng(seed).binomial(c.data.astype(np.int64), frac).astype(np.float32)
    return c


def evaluate(name, embed_fn, seeds=(0, 1, 2, 3, 4), secs=LABELLED):
    """``embed_fn(section, seed) -> (n_spots, d)``; prints one table row and returns {section: [ARI per seed]}."""
    res = {s: [sec(s).score(cluster(embed_fn(sec(s), sd), sec(s).n, sd)) for sd in seeds] for s in secs}
    cells = " | ".join(f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in res.values())
    print(f"| {name} | {cells} | {np.mean([np.mean(v) for v in res.values()]):.3f} |", flush=True)
    return res
