"""Fixed-k spatial neighbour index, computed within each sample (never an n_obs x n_obs matrix)."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from sklearn.neighbors import NearestNeighbors

from senca._utils import check_key_free, sample_groups


def knn_index(coords: np.ndarray, n_neighbors: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n_neighbors`` nearest spots of each spot, itself first, within its group.

    Parameters
    ----------
    coords
        ``(n_obs, 2)`` spatial coordinates.
    n_neighbors
        Neighbourhood size *including* the spot itself.
    groups
        Optional ``(n_obs,)`` sample labels; neighbours never cross samples.

    Returns
    -------
    ``(n_obs, n_neighbors)`` int64 array of global row indices; column 0 is the spot itself.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"Spatial coordinates must have shape (n_obs, 2); got {coords.shape}.")
    if not np.isfinite(coords).all():
        raise ValueError("Spatial coordinates contain NaN or infinite values; drop those spots first.")
    n_neighbors = int(n_neighbors)
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}.")
    groups = np.zeros(len(coords), dtype=int) if groups is None else np.asarray(groups)
    out = np.empty((len(coords), n_neighbors), dtype=np.int64)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        if len(rows) < n_neighbors:
            raise ValueError(
                f"Sample {g!r} has {len(rows)} spots, fewer than n_neighbors={n_neighbors}. "
                "Lower n_neighbors or drop that sample."
            )
        nn = NearestNeighbors(n_neighbors=n_neighbors).fit(coords[rows, :2])
        _, idx = nn.kneighbors(coords[rows, :2])
        # duplicated coordinates can put another spot first: force the spot itself into column 0
        local = np.arange(len(rows))
        not_self = idx[:, 0] != local
        if not_self.any():
            for r in np.flatnonzero(not_self):
                others = [j for j in idx[r] if j != r][: n_neighbors - 1]
                idx[r] = [r, *others]
        out[rows] = rows[idx]
    return out


def spatial_neighbors(
    adata: AnnData,
    n_neighbors: int = 6,
    spatial_key: str = "spatial",
    sample_key: str | None = None,
    key_added: str = "spatial_knn",
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Store the k-nearest-spot index in ``adata.obsm[key_added]``, for plots and your own analyses.

    The same index the senca models build (with :func:`knn_index`), but the models do not read it: each
    ``setup_anndata`` computes its own from its ``n_neighbors`` and ``sample_key``, so that a model's neighbourhood
    always matches its setup (SENCA keeps its index in ``adata.obsm["senca_knn"]``). Neighbours are searched within
    each sample (``sample_key``), so sections never mix. Memory is ``O(n_obs * n_neighbors)``.

    Parameters
    ----------
    adata
        Annotated data with coordinates in ``adata.obsm[spatial_key]``.
    n_neighbors
        Neighbourhood size including the spot itself.
    spatial_key
        Key of the coordinates in ``adata.obsm``.
    sample_key
        Column of ``adata.obs`` naming the sample/section of each spot, or ``None`` for one sample.
    key_added
        Key written in ``adata.obsm``.
    overwrite
        Replace an existing ``adata.obsm[key_added]``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes ``adata.obsm[key_added]``: an
    ``(n_obs, n_neighbors)`` int64 array of row indices, the spot itself in column 0.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=200, seed=0)
    >>> senca.pp.spatial_neighbors(adata, n_neighbors=6)
    >>> adata.obsm["spatial_knn"].shape
    (200, 6)
    """
    if spatial_key not in adata.obsm:
        raise KeyError(f"adata.obsm[{spatial_key!r}] not found; pass spatial_key= with the spot coordinates.")
    groups = sample_groups(adata, sample_key)
    if copy:
        adata = adata.copy()
    check_key_free(adata.obsm, key_added, "adata.obsm", overwrite)
    adata.obsm[key_added] = knn_index(np.asarray(adata.obsm[spatial_key]), n_neighbors, groups)
    return adata if copy else None
