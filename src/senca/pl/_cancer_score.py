"""Cancer score over the H&E with the boundary of the called cancer region."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from anndata import AnnData

from ._utils import coords_of, draw_background, finish, library_rows, marker_size, resolve_library


def _boolean(adata: AnnData, key: str, what: str) -> np.ndarray:
    if key not in adata.obs:
        raise KeyError(f"adata.obs[{key!r}] not found; pass an existing {what}= column or {what}=None.")
    col = adata.obs[key]
    if col.dtype == bool or str(col.dtype) == "boolean":
        return col.fillna(False).to_numpy().astype(bool)
    vals = set(col.dropna().unique().tolist())
    if vals <= {0, 1}:
        return col.fillna(0).to_numpy().astype(bool)
    raise ValueError(
        f"adata.obs[{key!r}] must be boolean (True = cancer), found values {sorted(map(str, vals))[:5]}; "
        "binarise it first, e.g. adata.obs['cancer'] = adata.obs['pathologist'].isin(['invasive cancer'])."
    )


def _contour(ax, coords: np.ndarray, inside: np.ndarray, colour, style: str, label: str) -> bool:
    """Draw the 0.5 level line of the indicator over a Delaunay triangulation of the spots."""
    import matplotlib.tri as mtri
    from sklearn.neighbors import NearestNeighbors

    if inside.all() or not inside.any() or len(coords) < 3:
        return False
    tri = mtri.Triangulation(coords[:, 0], coords[:, 1])
    dist, _ = NearestNeighbors(n_neighbors=2).fit(coords).kneighbors(coords)
    longest = 2.5 * float(np.median(dist[:, 1]))
    t = tri.triangles
    edges = np.stack(
        [np.linalg.norm(coords[t[:, i]] - coords[t[:, (i + 1) % 3]], axis=1) for i in range(3)], axis=1
    ).max(1)
    tri.set_mask(edges > longest)  # no boundary across holes in the tissue
    ax.tricontour(tri, inside.astype(float), levels=[0.5], colors=[colour], linewidths=2.0, linestyles=style, zorder=4)
    ax.plot([], [], color=colour, linestyle=style, linewidth=2.0, label=label)
    return True


def cancer_score(
    adata: AnnData,
    score_key: str = "spacrd_score",
    call_key: str | None = "spacrd_cancer",
    truth_key: str | None = None,
    boundary: Literal["contour", "outline"] = "contour",
    library_id: str | None = None,
    library_key: str | None = None,
    img: bool = True,
    spatial_key: str = "spatial",
    cmap: str = "magma",
    ax=None,
    figsize: tuple[float, float] | None = None,
    save: str | Path | None = None,
    show: bool = False,
):
    """Plot a per-spot cancer score over the H&E with the boundary of the called cancer region.

    Parameters
    ----------
    adata
        Annotated data with ``adata.obs[score_key]`` and coordinates in ``adata.obsm[spatial_key]``.
    score_key
        Column of the continuous score (``SpaCRD.predict`` writes ``"spacrd_score"`` in ``[0, 1]``).
    call_key
        Boolean column of the binary call (``"spacrd_cancer"``); ``None`` draws no boundary.
    truth_key
        Optional boolean column of reference cancer labels, drawn as a dashed boundary for comparison.
    boundary
        ``"contour"``: the line between called and not-called spots (over a triangulation of the spots,
        never across holes); ``"outline"``: a ring around each called spot.
    library_id
        Library of ``adata.uns["spatial"]`` whose image to draw.
    library_key
        Column of ``adata.obs`` naming each spot's library: only the spots of ``library_id`` are drawn.
    img
        Draw the H&E under the spots when one is stored.
    spatial_key
        Key of the spot coordinates in ``adata.obsm``.
    cmap
        Colour map of the score.
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
    >>> adata = senca.datasets.synthetic(n_spots=200, n_regions=3, image=True, seed=0)
    >>> adata.obs["spacrd_score"] = (adata.obs["region"] == "R1").to_numpy() * 0.8 + 0.1
    >>> adata.obs["spacrd_cancer"] = adata.obs["spacrd_score"] > 0.5
    >>> fig = senca.pl.cancer_score(adata)
    >>> len(fig.axes)
    2
    """
    import matplotlib.pyplot as plt

    if boundary not in ("contour", "outline"):
        raise ValueError(f"boundary must be 'contour' or 'outline', got {boundary!r}.")
    if score_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{score_key!r}] not found; run model.predict(adata) first "
            "or pass score_key= of an existing column."
        )
    score = np.asarray(adata.obs[score_key], dtype=np.float64)
    call = _boolean(adata, call_key, "call_key") if call_key is not None else None
    truth = _boolean(adata, truth_key, "truth_key") if truth_key is not None else None
    coords = coords_of(adata, spatial_key)
    rows = library_rows(adata, library_id, library_key)
    lib = library_id if library_key is not None else resolve_library(adata, library_id)

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (6, 5))
    fig = ax.figure
    diameter = draw_background(ax, adata, coords[rows], lib, img)
    s = marker_size(ax, 0.9 * diameter)
    finite = score[rows][np.isfinite(score[rows])]
    lo, hi = (0.0, 1.0) if finite.size and finite.min() >= 0 and finite.max() <= 1 else (None, None)
    sc = ax.scatter(
        coords[rows, 0], coords[rows, 1], c=score[rows], s=s, cmap=cmap, vmin=lo, vmax=hi, edgecolors="none", zorder=2
    )
    fig.colorbar(sc, ax=ax, label=score_key, shrink=0.8)
    drawn = False
    if call is not None:
        if boundary == "contour":
            drawn |= _contour(ax, coords[rows], call[rows], "cyan", "solid", f"called ({call_key})")
        elif call[rows].any():
            sel = rows & call
            ax.scatter(
                coords[sel, 0],
                coords[sel, 1],
                s=s,
                facecolors="none",
                edgecolors="cyan",
                linewidths=1.0,
                zorder=3,
                label=f"called ({call_key})",
            )
            drawn = True
    if truth is not None:
        drawn |= _contour(ax, coords[rows], truth[rows], "white", "dashed", f"reference ({truth_key})")
    if drawn:
        # below the tissue, not over it
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02),
            ncol=2,
            fontsize="small",
            facecolor="0.35",
            labelcolor="white",
        )
    ax.set_title(score_key)
    return finish(fig, save, show)
