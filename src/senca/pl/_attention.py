"""Attention maps: how each spot spreads its cross-attention over its spatial neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from anndata import AnnData

from ._utils import coords_of, draw_background, finish, library_rows, marker_size, resolve_library

_AUTO_KEYS = ("senca_knn", "spatial_knn")  # written by SENCA.setup_anndata and senca.pp.spatial_neighbors


def _attention_matrix(adata: AnnData, attention) -> np.ndarray:
    if isinstance(attention, str):
        if attention not in adata.obsm:
            raise KeyError(
                f"adata.obsm[{attention!r}] not found; pass the (n_obs, k) array from model.get_attention() "
                "or store it first, e.g. adata.obsm['senca_attention'] = model.get_attention()."
            )
        attention = adata.obsm[attention]
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != adata.n_obs:
        raise ValueError(f"attention must have shape (n_obs={adata.n_obs}, k), got {a.shape}.")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("attention weights must be finite and non-negative.")
    return a


def _neighbour_index(adata: AnnData, neighbors, k: int, coords: np.ndarray) -> np.ndarray:
    if isinstance(neighbors, str):
        if neighbors not in adata.obsm:
            raise KeyError(f"adata.obsm[{neighbors!r}] not found; pass neighbors=None to recompute the index.")
        idx = np.asarray(adata.obsm[neighbors])
    elif neighbors is not None:
        idx = np.asarray(neighbors)
    else:
        auto = [key for key in _AUTO_KEYS if key in adata.obsm and np.shape(adata.obsm[key]) == (adata.n_obs, k)]
        if auto:
            idx = np.asarray(adata.obsm[auto[0]])
        else:
            from senca.pp import knn_index

            idx = knn_index(coords, k)
    idx = idx.astype(np.int64)
    if idx.shape != (adata.n_obs, k):
        raise ValueError(
            f"The neighbour index has shape {idx.shape} but attention has k={k} columns per spot; pass the index "
            "the attention was computed on (e.g. neighbors='spatial_knn' or the model's index)."
        )
    return idx


def attention(
    adata: AnnData,
    attention: str | np.ndarray = "senca_attention",
    stat: Literal["entropy", "max", "self"] = "entropy",
    lines: bool = True,
    neighbors: str | np.ndarray | None = None,
    library_id: str | None = None,
    library_key: str | None = None,
    img: bool = True,
    spatial_key: str = "spatial",
    cmap: str = "viridis",
    ax=None,
    figsize: tuple[float, float] | None = None,
    save: str | Path | None = None,
    show: bool = False,
):
    """Map how each spot distributes its neighbourhood cross-attention.

    Each spot is coloured by a summary of its attention row: the normalised ``"entropy"`` (1 = spread
    evenly over its neighbours, 0 = all on one), the ``"max"`` weight, or the weight on ``"self"``
    (column 0, the spot itself by senca's neighbour convention). With ``lines=True`` a segment joins
    each spot to every neighbour it attends to more than uniformly (weight ``> 1/k``), its width and
    opacity growing with the excess over uniform, so near-uniform attention stays faint.

    For :meth:`senca.model.SENCA.get_attention` (the first attention layer) the spot keeps ``1/k``
    in column 0 and its neighbours share the rest (before fine-tuning, by how alike they look in
    H&E), so ``"self"`` is the same for every spot; ``"entropy"`` and ``"max"`` show where the
    weights are uneven.

    Parameters
    ----------
    adata
        Annotated data with coordinates in ``adata.obsm[spatial_key]``.
    attention
        ``(n_obs, k)`` attention weights (``model.get_attention()``) or the ``adata.obsm`` key holding them.
    stat
        Per-spot summary coloured: ``"entropy"``, ``"max"`` or ``"self"``.
    lines
        Draw attention-weighted segments to the neighbours.
    neighbors
        ``(n_obs, k)`` neighbour index the attention columns refer to, or its ``adata.obsm`` key. ``None``:
        ``adata.obsm["senca_knn"]`` (written by ``SENCA.setup_anndata``) or ``adata.obsm["spatial_knn"]``
        when one has ``k`` columns, else the ``k`` nearest spots (itself first) are recomputed.
    library_id
        Library of ``adata.uns["spatial"]`` whose image to draw.
    library_key
        Column of ``adata.obs`` naming each spot's library: only the spots of ``library_id`` are drawn.
    img
        Draw the H&E under the spots when one is stored.
    spatial_key
        Key of the spot coordinates in ``adata.obsm``.
    cmap
        Colour map of the summary.
    ax
        Axes to draw on; a new figure otherwise.
    figsize
        Size of the new figure.
    save
        Path to write the figure to.
    show
        Call ``matplotlib.pyplot.show()``.

    Returns
    -------
    The matplotlib Figure (the map and its colour bar).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, senca
    >>> adata = senca.datasets.synthetic(n_spots=200, seed=0)
    >>> attn = np.random.default_rng(0).dirichlet(np.ones(6), size=adata.n_obs)
    >>> fig = senca.pl.attention(adata, attn, stat="max", neighbors=None)
    >>> len(fig.axes)
    2
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    if stat not in ("entropy", "max", "self"):
        raise ValueError(f"stat must be 'entropy', 'max' or 'self', got {stat!r}.")
    a = _attention_matrix(adata, attention)
    n, k = a.shape
    coords = coords_of(adata, spatial_key)
    rows = library_rows(adata, library_id, library_key)
    lib = library_id if library_key is not None else resolve_library(adata, library_id)
    p = a / np.clip(a.sum(1, keepdims=True), 1e-12, None)
    if stat == "entropy":
        ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(1)
        value, label = (ent / np.log(k) if k > 1 else np.zeros(n)), "attention entropy (normalised)"
    elif stat == "max":
        value, label = p.max(1), "max attention weight"
    else:
        value, label = p[:, 0], "attention on the spot itself"

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (6, 5))
    fig = ax.figure
    diameter = draw_background(ax, adata, coords[rows], lib, img)
    if lines and k > 1:
        idx = _neighbour_index(adata, neighbors, k, coords)
        src = np.repeat(np.arange(n), k)
        dst = idx.ravel()
        w = p.ravel()
        keep = (src != dst) & (w > (1.0 + 1e-6) / k) & rows[src] & rows[dst]
        if keep.any():
            seg = np.stack([coords[src[keep]], coords[dst[keep]]], axis=1)
            wk = (w[keep] - 1.0 / k) / (1.0 - 1.0 / k)  # excess over uniform: near-uniform rows stay faint
            colours = np.zeros((keep.sum(), 4))
            colours[:, 3] = 0.1 + 0.9 * wk
            ax.add_collection(LineCollection(seg, linewidths=0.3 + 2.0 * wk, colors=colours, zorder=3))
    sc = ax.scatter(
        coords[rows, 0],
        coords[rows, 1],
        c=value[rows],
        s=marker_size(ax, 0.6 * diameter),
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        edgecolors="none",
        zorder=2,
    )
    fig.colorbar(sc, ax=ax, label=label, shrink=0.8)
    ax.set_title(f"attention ({stat})")
    return finish(fig, save, show)
