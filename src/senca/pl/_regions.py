"""Region maps over the H&E: a thin wrapper over ``squidpy.pl.spatial_scatter``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from anndata import AnnData

from ._utils import finish, get_image, resolve_library


def regions(
    adata: AnnData,
    color: str = "senca_region",
    groundtruth: str | None = None,
    library_id: str | None = None,
    library_key: str | None = None,
    img: bool = True,
    spatial_key: str = "spatial",
    img_res_key: str = "hires",
    title: str | list[str] | None = None,
    figsize: tuple[float, float] | None = None,
    save: str | Path | None = None,
    show: bool = False,
    **kwargs: Any,
):
    """Plot called regions over the H&E, optionally beside a reference annotation.

    A thin wrapper over :func:`squidpy.pl.spatial_scatter`: spots are drawn as circles of their true
    diameter over the image ``adata.uns["spatial"][library_id]["images"][img_res_key]``; without an image
    (or with ``img=False``) the spots are drawn on a blank background.

    Parameters
    ----------
    adata
        Annotated data with ``adata.obs[color]`` and coordinates in ``adata.obsm[spatial_key]``.
    color
        Column of ``adata.obs`` (or a gene) to colour the spots by, e.g. the output of
        :func:`senca.tl.regions`.
    groundtruth
        Optional second column, e.g. ``"pathologist"``, drawn in a panel beside ``color``.
    library_id
        Library of ``adata.uns["spatial"]`` to draw; needed when it holds several.
    library_key
        Column of ``adata.obs`` naming each spot's library (for AnnData with several sections).
    img
        Draw the H&E under the spots when one is stored.
    spatial_key
        Key of the spot coordinates in ``adata.obsm``.
    img_res_key
        Which image of the library to use (``"hires"`` or ``"lowres"``).
    title
        Panel title(s); default the column names.
    figsize
        Figure size in inches.
    save
        Path to write the figure to (format from the extension).
    show
        Call ``matplotlib.pyplot.show()``; leave False in scripts and tests.
    **kwargs
        Passed on to :func:`squidpy.pl.spatial_scatter` (``palette``, ``size``, ``alpha``, ...).

    Returns
    -------
    The matplotlib Figure (one axes per panel).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=200, n_regions=3, image=True, seed=0)
    >>> fig = senca.pl.regions(adata, color="region", groundtruth="histology_program")
    >>> len(fig.axes)
    2
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"regions expects an AnnData, got {type(adata).__name__}.")
    colors = [color] + ([groundtruth] if groundtruth is not None else [])
    for c in colors:
        if c not in adata.obs and c not in adata.var_names:
            raise KeyError(
                f"{c!r} is neither a column of adata.obs nor a gene; "
                "run senca.tl.regions first or pass an existing column."
            )
    if spatial_key not in adata.obsm:
        raise KeyError(f"adata.obsm[{spatial_key!r}] not found; pass spatial_key= with the spot coordinates.")
    kw: dict[str, Any] = {"color": colors, "spatial_key": spatial_key, "return_ax": True}
    if library_key is not None:
        kw["library_key"] = library_key
        lib = library_id
        if lib is not None:
            kw["library_id"] = lib
    else:
        lib = resolve_library(adata, library_id)
    has_img = img and lib is not None and get_image(adata, lib, img_res_key) is not None
    if lib is None:
        kw.update(shape=None, img=False)
    else:
        if library_key is None:
            kw["library_id"] = lib
        kw.update(img=has_img, img_res_key=img_res_key, shape="circle")
    if figsize is not None:
        kw["figsize"] = figsize
    if title is not None:
        kw["title"] = title
    if len(colors) > 1:
        kw.setdefault("wspace", 0.25)
    kw.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # docrep, on squidpy's import
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # squidpy's Colormap.set_bad
        warnings.filterwarnings("ignore", message="No data for colormapping")  # squidpy passes cmap to every layer
        import squidpy as sq

        axes = sq.pl.spatial_scatter(adata, **kw)
    ax0 = axes[0] if isinstance(axes, list | tuple) else axes
    return finish(ax0.figure, save, show)
