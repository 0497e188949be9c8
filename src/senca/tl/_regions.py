"""Region calling from a spot embedding: Gaussian mixture (mclust EEE), Leiden or k-means, with spatial refinement."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from senca._utils import check_key_free, get_rep, sample_groups

from ._refine import majority_refine

_METHODS = ("gmm", "leiden", "kmeans")


def check_outputs_free(adata: AnnData, key_added: str, overwrite: bool) -> str:
    """Refuse to replace the region caller's outputs without ``overwrite``; returns the confidence column's name."""
    conf_key = f"{key_added}_confidence"
    for where, mapping, key in (
        ("adata.obs", adata.obs, key_added),
        ("adata.obs", adata.obs, conf_key),
        ("adata.uns", adata.uns, key_added),
    ):
        check_key_free(mapping, key, where, overwrite)
    return conf_key


def regions(
    adata: AnnData,
    n_regions: int | None = None,
    use_rep: str = "X_senca",
    method: Literal["gmm", "leiden", "kmeans"] = "gmm",
    n_pcs: int | None = 15,
    refine: bool = True,
    spatial_key: str = "spatial",
    n_neighbors: int = 6,
    sample_key: str | None = None,
    key_added: str = "senca_region",
    bic_range: tuple[int, int] = (2, 10),
    resolution: float = 1.0,
    method_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Call tissue regions by clustering a spot embedding, then smooth them in space.

    The embedding ``adata.obsm[use_rep]`` is centred and reduced to its top ``n_pcs`` principal
    components, then clustered:

    - ``"gmm"``: a Gaussian mixture whose components share one full covariance matrix
      (``sklearn.mixture.GaussianMixture(covariance_type="tied")``, the ``EEE`` model of R's mclust that
      most spatial-domain papers use; no R needed), EM started from the centres of a k-means fit
      (10 starts), tolerance 1e-5 (change them with ``method_kwargs``, e.g. ``{"n_init": 3}`` for sklearn's
      own initialisation).
    - ``"leiden"``: Leiden (``scanpy.tl.leiden(flavor="igraph", n_iterations=2, directed=False)``) on a
      symmetric 15-nearest-neighbour graph of the components; when ``n_regions`` is given, the
      resolution is found by bisection so that exactly ``n_regions`` clusters come out (the closest
      count is kept, with a warning, when no resolution gives it).
    - ``"kmeans"``: ``sklearn.cluster.KMeans`` with 10 initialisations.

    With ``refine=True`` a spot whose label disagrees with most of its ``n_neighbors`` nearest spatial
    neighbours (fewer than half share its label, more than half share another) takes the majority
    label (simultaneous passes repeated until stable, at most 10; neighbours never cross samples when
    ``sample_key`` is given).
    Regions are then numbered ``"0"``, ``"1"``, ... by decreasing size. The fitted caller is stored, so
    that :func:`senca.tl.assign_regions` can give the spots of another section (embedded by the same model)
    the same region labels.

    Parameters
    ----------
    adata
        Annotated data with the embedding in ``adata.obsm[use_rep]`` (``"X"`` uses ``adata.X``) and,
        for refinement, coordinates in ``adata.obsm[spatial_key]``.
    n_regions
        Number of regions. ``None``: for ``"gmm"`` and ``"kmeans"`` the number in ``bic_range`` with the
        lowest BIC of the shared-covariance mixture; for ``"leiden"`` plain Leiden at ``resolution``.
    use_rep
        Key of the embedding in ``adata.obsm``.
    method
        ``"gmm"``, ``"leiden"`` or ``"kmeans"``.
    n_pcs
        Number of principal components of the embedding to cluster (capped by its dimension and the
        number of spots); ``None`` clusters the embedding itself.
    refine
        Apply the neighbourhood-majority relabelling.
    spatial_key
        Key of the spot coordinates in ``adata.obsm`` (only used when ``refine=True``).
    n_neighbors
        Number of spatial neighbours, the spot itself excluded, looked at by the refinement (6 fits
        the hexagonal Visium grid, 4 the square legacy-ST grid).
    sample_key
        Column of ``adata.obs`` with the sample/section of each spot: refinement stays within samples.
    key_added
        Name of the result in ``adata.obs`` (and of its confidence and parameters, below).
    bic_range
        ``(min, max)`` numbers of regions, both included, tried when ``n_regions=None``.
    resolution
        Leiden resolution used when ``method="leiden"`` and ``n_regions=None``.
    method_kwargs
        Extra keyword arguments for ``GaussianMixture`` / ``KMeans`` (e.g. ``{"n_init": 5}``), or for
        the Leiden graph (``{"n_neighbors": 30}``).
    seed
        Seed of PCA, the mixture / k-means initialisation and Leiden; same seed, same regions.
    overwrite
        Replace existing ``adata.obs[key_added]``, ``adata.obs[f"{key_added}_confidence"]`` and
        ``adata.uns[key_added]``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes

    - ``adata.obs[key_added]``: categorical region labels ``"0"``, ``"1"``, ... (largest first);
    - ``adata.obs[f"{key_added}_confidence"]``: per-spot confidence in ``[0, 1]`` of the final label.
      ``"gmm"``: the mixture's posterior probability of that region (low where refinement overruled the
      mixture). ``"kmeans"``: the posterior of that region under an isotropic Gaussian around each
      centroid with the pooled within-cluster variance (a soft k-means assignment). ``"leiden"``: the
      weighted fraction of the spot's neighbours in the clustering graph that carry the same label;
    - ``adata.uns[key_added]``: ``{"params": {...}}`` with the arguments, the number of regions actually
      found (``"n_regions"``), the number asked for (``"n_regions_requested"``, ``-1`` when chosen
      automatically) and, for Leiden, the resolution used; plus, when the number was chosen by BIC,
      ``"bic": {"n_regions": array, "bic": array}`` (scikit-learn's sign convention: lower is better;
      mclust reports ``-BIC``); and the fitted caller, ``"caller"``: the embedding's centre and principal
      axes, and per mixture component (k-means / Leiden: per region) its mean (mixtures also their
      covariances and weights) and region, with which :func:`senca.tl.assign_regions` puts the spots of
      new sections into the same regions.

    Examples
    --------
    >>> import numpy as np, scanpy as sc, senca
    >>> adata = senca.datasets.synthetic(n_spots=400, n_regions=3, seed=0)
    >>> sc.pp.normalize_total(adata)
    >>> sc.pp.log1p(adata)
    >>> sc.pp.pca(adata, n_comps=10)
    >>> senca.tl.regions(adata, n_regions=3, use_rep="X_pca", method="gmm")
    >>> adata.obs["senca_region"].cat.categories.tolist()
    ['0', '1', '2']
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if not isinstance(adata, AnnData):
        raise TypeError(f"regions expects an AnnData, got {type(adata).__name__}.")
    x = get_rep(adata, use_rep)
    if x.ndim != 2:
        raise ValueError(f"{use_rep!r} must be a 2-D (n_obs, n_features) array, got shape {x.shape}.")
    n_obs = x.shape[0]
    if n_regions is not None:
        if isinstance(n_regions, bool) or not isinstance(n_regions, int | np.integer):
            raise TypeError(f"n_regions must be an int or None, got {n_regions!r}.")
        n_regions = int(n_regions)
        if n_regions < 1:
            raise ValueError(f"n_regions must be >= 1, got {n_regions}.")
        if n_regions > n_obs:
            raise ValueError(f"n_regions={n_regions} exceeds the number of spots ({n_obs}); ask for fewer regions.")
    else:
        lo, hi = (int(v) for v in bic_range)
        if not 1 <= lo <= hi:
            raise ValueError(f"bic_range must be (min, max) with 1 <= min <= max, got {bic_range}.")
        if lo > n_obs:
            raise ValueError(f"bic_range starts at {lo} regions but there are only {n_obs} spots.")
    if n_neighbors < 1 and refine:
        raise ValueError(f"n_neighbors must be >= 1 for refinement, got {n_neighbors}.")
    coords = groups = None
    if refine:
        if spatial_key not in adata.obsm:
            raise KeyError(
                f"adata.obsm[{spatial_key!r}] not found: refinement needs spot coordinates. "
                "Pass spatial_key= or refine=False."
            )
        coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    groups = sample_groups(adata, sample_key)
    conf_key = check_outputs_free(adata, key_added, overwrite)

    requested = n_regions
    kwargs = dict(method_kwargs or {})
    pcs, centre, axes = _top_pcs(x, n_pcs, seed)
    bic = None
    fitted: dict[str, np.ndarray] = {}
    if method == "gmm":
        if n_regions is None:
            n_regions, bic = _bic_choice(pcs, bic_range, seed, kwargs)
        gmm = _gmm(pcs, n_regions, seed, kwargs)
        post = gmm.predict_proba(pcs)
        codes = post.argmax(1).astype(np.int64)
        fitted = {"means": gmm.means_, "covariances": _full_covariances(gmm), "weights": gmm.weights_}
    elif method == "kmeans":
        if n_regions is None:
            n_regions, bic = _bic_choice(pcs, bic_range, seed, {})
        codes = _fit_kmeans(pcs, n_regions, seed, kwargs)
        post = None
    else:
        graph = _knn_graph(pcs, int(kwargs.pop("n_neighbors", 15)))
        codes, resolution_used = _fit_leiden(graph, n_regions, resolution, seed)
        post = None

    if refine:
        from senca.pp import knn_index

        k = min(n_neighbors + 1, n_obs)
        if groups is not None:
            k = min(k, int(pd.Series(groups).value_counts().min()))
        nbrs = knn_index(coords, k, groups)[:, 1:]
        codes = majority_refine(codes, nbrs)

    # number regions by decreasing size, dropping any emptied by the refinement
    sizes = np.bincount(codes, minlength=n_regions if method == "gmm" else 0)
    order = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] > 0]
    remap = np.full(len(sizes), -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    final = remap[codes]
    n_found = len(order)
    if n_regions is not None and n_found != n_regions:
        warnings.warn(
            f"regions: asked for {n_regions} regions, found {n_found} (method={method!r}, refine={refine}).",
            UserWarning,
            stacklevel=2,
        )

    if method == "gmm":
        conf = post[np.arange(n_obs), np.asarray(order)[final]]
        fitted["region_of_component"] = remap
    elif method == "kmeans":
        conf = _soft_kmeans(pcs, final)
    else:
        conf = _graph_agreement(graph, final)
    if method != "gmm":  # k-means and Leiden assign new spots to the nearest final region centre
        fitted["means"] = np.stack([pcs[final == c].mean(0) for c in range(n_found)])
        fitted["region_of_component"] = np.arange(n_found, dtype=np.int64)
    fitted.update(centre=centre, axes=axes)

    if copy:
        adata = adata.copy()
    cats = [str(i) for i in range(n_found)]
    adata.obs[key_added] = pd.Categorical.from_codes(final, categories=cats)
    adata.obs[conf_key] = np.clip(conf, 0.0, 1.0).astype(np.float64)
    if f"{key_added}_colors" in adata.uns:  # stale palette of a previous call
        del adata.uns[f"{key_added}_colors"]
    params = {
        "method": method,
        "use_rep": use_rep,
        "n_regions": int(n_found),
        "n_regions_requested": -1 if requested is None else int(requested),
        "n_pcs": int(pcs.shape[1]),
        "refine": bool(refine),
        "n_neighbors": int(n_neighbors),
        "spatial_key": spatial_key,
        "sample_key": "" if sample_key is None else sample_key,
        "seed": int(seed),
    }
    if method == "leiden":
        params["resolution"] = float(resolution_used)
    uns: dict[str, Any] = {"params": params, "caller": {k: np.asarray(v) for k, v in fitted.items()}}
    if bic is not None:
        params["bic_range"] = np.asarray(bic_range, dtype=np.int64)
        uns["bic"] = {"n_regions": bic[0], "bic": bic[1]}
    adata.uns[key_added] = uns
    return adata if copy else None


def _top_pcs(x: np.ndarray, n_pcs: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre the embedding and project it on its top ``n_pcs`` axes.

    Returns ``(pcs, centre, axes)``, ``axes`` of shape ``(d, n_comp)`` (the identity when ``n_pcs`` is None), so
    that new spots can be projected the same way.
    """
    centre = x.mean(0)
    x = x - centre
    axes = np.eye(x.shape[1])
    if n_pcs is None:
        return x, centre, axes
    n_pcs = int(n_pcs)
    if n_pcs < 1:
        raise ValueError(f"n_pcs must be >= 1 or None, got {n_pcs}.")
    n_comp = min(n_pcs, x.shape[1], x.shape[0] - 1)
    if n_comp < 1:
        return x, centre, axes
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_comp, svd_solver="full", random_state=seed).fit(x)
    return pca.transform(x), centre, pca.components_.T.copy()


def _gmm(pcs: np.ndarray, n: int, seed: int, kwargs: dict):
    """Fit the EEE mixture, started from the centres of a k-means fit (unless ``means_init`` is given)."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    # tol: sklearn's 1e-3 stops EM on plateaus before a shared covariance has adapted (mclust uses 1e-5)
    opts = {"covariance_type": "tied", "reg_covar": 1e-6, "tol": 1e-5, "max_iter": 1000}
    opts.update(kwargs)
    if "means_init" not in opts and "n_init" not in opts:
        # EM from k-means centres is far more stable across seeds than sklearn's own initialisation
        # (mean ARI on her2st A1-D1 +0.06, benchmarks/explore/README.md)
        init = KMeans(n_clusters=n, random_state=seed, n_init=10).fit_predict(pcs)
        opts["means_init"] = np.stack([pcs[init == c].mean(0) for c in range(n)])
    return GaussianMixture(n_components=n, random_state=seed, **opts).fit(pcs)


def _full_covariances(gmm) -> np.ndarray:
    """``(K, p, p)`` covariance of every component of a fitted mixture, whatever its ``covariance_type``."""
    cov = np.asarray(gmm.covariances_, dtype=np.float64)
    k, p = gmm.means_.shape
    if gmm.covariance_type == "tied":
        return np.broadcast_to(cov, (k, p, p)).copy()
    if gmm.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    if gmm.covariance_type == "spherical":
        return np.stack([np.eye(p) * c for c in cov])
    return cov


def _bic_choice(pcs: np.ndarray, bic_range, seed: int, kwargs: dict) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
    lo, hi = (int(v) for v in bic_range)
    ks = np.arange(lo, min(hi, pcs.shape[0]) + 1)
    bics = np.array([_gmm(pcs, int(k), seed, kwargs).bic(pcs) for k in ks])
    return int(ks[np.argmin(bics)]), (ks.astype(np.int64), bics.astype(np.float64))


def _fit_kmeans(pcs: np.ndarray, n: int, seed: int, kwargs: dict) -> np.ndarray:
    from sklearn.cluster import KMeans

    opts = {"n_init": 10}
    opts.update(kwargs)
    return KMeans(n_clusters=n, random_state=seed, **opts).fit_predict(pcs).astype(np.int64)


def _soft_kmeans(pcs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Posterior of each spot's own cluster under isotropic Gaussians with a pooled variance."""
    n_lab = int(labels.max()) + 1
    centres = np.stack([pcs[labels == c].mean(0) for c in range(n_lab)])
    # squared distances without an (n_obs, K, d) temporary
    d2 = (pcs**2).sum(1, keepdims=True) - 2 * pcs @ centres.T + (centres**2).sum(1)[None]
    d2 = np.maximum(d2, 0.0)
    var = max(float(d2[np.arange(len(pcs)), labels].mean()) / max(pcs.shape[1], 1), 1e-12)
    logit = -d2 / (2 * var)
    logit -= logit.max(1, keepdims=True)
    p = np.exp(logit)
    p /= p.sum(1, keepdims=True)
    return p[np.arange(len(pcs)), labels]


def _knn_graph(pcs: np.ndarray, n_neighbors: int):
    from sklearn.neighbors import kneighbors_graph

    k = max(1, min(n_neighbors, pcs.shape[0] - 1))
    g = kneighbors_graph(pcs, n_neighbors=k, mode="connectivity", include_self=False)
    return g.maximum(g.T).tocsr()


def _leiden_once(graph, resolution: float, seed: int) -> np.ndarray:
    import scanpy as sc

    tmp = AnnData(obs=pd.DataFrame(index=[str(i) for i in range(graph.shape[0])]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sc.tl.leiden(
            tmp,
            resolution=resolution,
            adjacency=graph,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=seed,
            key_added="_leiden",
        )
    return tmp.obs["_leiden"].cat.codes.to_numpy().astype(np.int64)


def _fit_leiden(graph, n: int | None, resolution: float, seed: int) -> tuple[np.ndarray, float]:
    if n is None:
        return _leiden_once(graph, resolution, seed), float(resolution)
    tried: dict[float, np.ndarray] = {}

    def count(r: float) -> int:
        tried[r] = _leiden_once(graph, r, seed)
        return int(tried[r].max()) + 1

    lo, hi = 0.0, 1.0
    c_hi = count(hi)
    while c_hi < n and hi < 64:
        lo, hi = hi, hi * 2
        c_hi = count(hi)
    if c_hi != n:
        for _ in range(40):
            mid = (lo + hi) / 2
            c = count(mid)
            if c == n or hi - lo < 1e-5:
                break
            if c < n:
                lo = mid
            else:
                hi = mid
    best = min(tried, key=lambda r: (abs(int(tried[r].max()) + 1 - n), r))
    return tried[best], float(best)


def _graph_agreement(graph, labels: np.ndarray) -> np.ndarray:
    g = graph.tocoo()
    same = (labels[g.row] == labels[g.col]).astype(np.float64) * g.data
    num = np.bincount(g.row, weights=same, minlength=graph.shape[0])
    den = np.bincount(g.row, weights=g.data, minlength=graph.shape[0])
    return np.divide(num, den, out=np.ones_like(num), where=den > 0)
