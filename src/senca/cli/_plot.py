"""The demo's figure: categorical spot annotations drawn over the H&E image, one panel per key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _image_and_scale(adata: Any) -> tuple[np.ndarray | None, float, float]:
    spatial = adata.uns.get("spatial", {})
    for lib in spatial.values():
        images = lib.get("images", {}) if isinstance(lib, dict) else {}
        sf = lib.get("scalefactors", {}) if isinstance(lib, dict) else {}
        for res in ("hires", "lowres"):
            if res in images:
                scale = float(sf.get(f"tissue_{res}_scalef", 1.0))
                diameter = float(sf.get("spot_diameter_fullres", 0.0)) * scale
                return np.asarray(images[res]), scale, diameter
    return None, 1.0, 0.0


def regions_figure(adata: Any, keys: Sequence[str], title: str | None = None, panel_size: float = 4.5) -> Any:
    """Return a matplotlib figure with one panel per ``obs`` key, spots coloured by category over the H&E."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    img, scale, diameter = _image_and_scale(adata)
    xy = np.asarray(adata.obsm["spatial"], dtype=float) * scale
    pad = 2.0 * diameter if diameter > 0 else 0.05 * float(np.ptp(xy))
    x0, x1 = xy[:, 0].min() - pad, xy[:, 0].max() + pad
    y0, y1 = xy[:, 1].min() - pad, xy[:, 1].max() + pad
    height = panel_size * (y1 - y0) / max(x1 - x0, 1e-9)
    fig, axes = plt.subplots(
        1, len(keys), figsize=((panel_size + 1.8) * len(keys), height + 0.6), layout="constrained", squeeze=False
    )
    axes = axes[0]
    cmap = plt.get_cmap("tab10" if max(adata.obs[k].nunique() for k in keys) <= 10 else "tab20")
    for ax, key in zip(axes, keys):
        cats = adata.obs[key].astype("category")
        if img is not None:
            ax.imshow(img)
        # marker area in points^2 from the spot diameter in image pixels (approximate, for the figure size)
        size = 12.0 if diameter <= 0 else max(4.0, (0.9 * diameter * panel_size * 72 / (x1 - x0)) ** 2)
        for i, cat in enumerate(cats.cat.categories):
            m = (cats == cat).to_numpy()
            ax.scatter(xy[m, 0], xy[m, 1], s=size, color=cmap(i % cmap.N), label=str(cat), alpha=0.85, linewidths=0)
        # zoom on the tissue: the spots plus a margin of two spot diameters
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)  # image orientation: y grows downwards
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(key)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8, markerscale=1.5)
    if title:
        fig.suptitle(title)
    return fig
