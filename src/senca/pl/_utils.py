"""Shared plotting helpers: library and image look-up, spot sizes, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData


def resolve_library(adata: AnnData, library_id: str | None) -> str | None:
    """Return the library of ``adata.uns["spatial"]`` to draw, ``None`` when there is none."""
    libs = list(adata.uns.get("spatial", {}) or {})
    if library_id is not None:
        if library_id not in libs:
            raise KeyError(f"library_id={library_id!r} not in adata.uns['spatial'] (available: {libs}).")
        return library_id
    if not libs:
        return None
    if len(libs) > 1:
        raise ValueError(
            f"adata.uns['spatial'] holds several libraries {libs}; pass library_id= (and library_key= "
            "naming the obs column of each spot's library)."
        )
    return libs[0]


def get_image(adata: AnnData, library_id: str | None, img_res_key: str = "hires") -> tuple[np.ndarray, float] | None:
    """Return ``(image, scale factor to full-resolution pixels)`` or ``None`` when no image is stored."""
    if library_id is None:
        return None
    entry = adata.uns["spatial"][library_id]
    images = entry.get("images", {}) or {}
    if img_res_key not in images:
        return None
    scalef = float(entry.get("scalefactors", {}).get(f"tissue_{img_res_key}_scalef", 1.0))
    return np.asarray(images[img_res_key]), scalef


def spot_diameter(adata: AnnData, library_id: str | None, coords: np.ndarray) -> float:
    """Spot diameter in coordinate units: from the scale factors, else 0.8 x the median nearest-spot distance."""
    if library_id is not None:
        d = adata.uns["spatial"][library_id].get("scalefactors", {}).get("spot_diameter_fullres")
        if d:
            return float(d)
    if len(coords) < 2:
        return 1.0
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=2).fit(coords).kneighbors(coords)
    med = float(np.median(dist[:, 1]))
    return 0.8 * med if med > 0 else 1.0


def library_rows(adata: AnnData, library_id: str | None, library_key: str | None) -> np.ndarray:
    """Boolean mask of the spots of ``library_id`` (all spots when ``library_key`` is None)."""
    if library_key is None or library_id is None:
        return np.ones(adata.n_obs, dtype=bool)
    if library_key not in adata.obs:
        raise KeyError(f"adata.obs[{library_key!r}] not found; pass the obs column naming each spot's library.")
    return (adata.obs[library_key].astype(str) == str(library_id)).to_numpy()


def draw_background(ax, adata, coords, library_id, img: bool, img_res_key: str = "hires", margin: float = 1.0):
    """Draw the H&E (in full-resolution coordinates) if asked and present, and frame the spots."""
    d = spot_diameter(adata, library_id, coords)
    image = get_image(adata, library_id, img_res_key) if img else None
    if image is not None:
        arr, scalef = image
        h, w = arr.shape[:2]
        ax.imshow(arr, extent=(0, w / scalef, h / scalef, 0), origin="upper", interpolation="nearest")
    pad = margin * d
    ax.set_xlim(coords[:, 0].min() - pad, coords[:, 0].max() + pad)
    ax.set_ylim(coords[:, 1].max() + pad, coords[:, 1].min() - pad)  # image convention: y down
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return d


def marker_size(ax, diameter: float) -> float:
    """Scatter ``s`` (points^2) for circles of ``diameter`` data units on ``ax`` at its current limits."""
    fig = ax.figure
    width_in = ax.get_position().width * fig.get_figwidth()
    x0, x1 = ax.get_xlim()
    pts_per_unit = width_in * 72.0 / max(abs(x1 - x0), 1e-12)
    return float(max((diameter * pts_per_unit) ** 2, 0.5))


def finish(fig, save: str | Path | None, show: bool):
    """Save and/or show ``fig``; return it."""
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig


def coords_of(adata: AnnData, spatial_key: str) -> np.ndarray:
    """Spot coordinates ``(n_obs, 2)`` as floats, with a clear error."""
    if spatial_key not in adata.obsm:
        raise KeyError(f"adata.obsm[{spatial_key!r}] not found; pass spatial_key= with the spot coordinates.")
    return np.asarray(adata.obsm[spatial_key], dtype=np.float64)[:, :2]
