"""Read a 10x Genomics Space Ranger (Visium) output folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

if TYPE_CHECKING:
    from spatialdata import SpatialData


def read_visium(
    path: str | os.PathLike,
    library_id: str | None = None,
    counts_file: str = "filtered_feature_bc_matrix.h5",
    load_images: bool = True,
    spatialdata: bool = False,
    **kwargs,
) -> AnnData | SpatialData:
    """Read a Space Ranger output folder into senca's layout (delegates to squidpy or spatialdata-io).

    Parameters
    ----------
    path
        Space Ranger ``outs/`` folder: ``counts_file`` and ``spatial/`` (``tissue_positions.csv`` or
        ``tissue_positions_list.csv``, ``scalefactors_json.json``, ``tissue_hires_image.png``,
        ``tissue_lowres_image.png``).
    library_id
        Library identifier (key of ``uns["spatial"]``, value of ``obs["section"]``); default the folder name.
    counts_file
        Count matrix file inside ``path``.
    load_images
        Load the hires and lowres images (AnnData only).
    spatialdata
        Return a :class:`spatialdata.SpatialData` from :func:`spatialdata_io.visium` instead (images
        ``{library_id}_hires_image``/``_lowres_image``, circles ``{library_id}``, table ``"table"``); it reads
        with :func:`senca.io.from_spatialdata`.
    **kwargs
        Passed to :func:`squidpy.read.visium` (or :func:`spatialdata_io.visium`).

    Returns
    -------
    AnnData from :func:`squidpy.read.visium` with, in addition: ``X`` float32 raw counts and a copy in
    ``layers["counts"]``, unique ``var_names``, ``obsm["spatial"]`` as float64 ``(x, y)`` full-resolution pixels,
    and ``obs["section"]`` = ``library_id`` (categorical). ``uns["spatial"][library_id]`` holds ``images``
    (``hires``, ``lowres``) and ``scalefactors``. Or the SpatialData with ``spatialdata=True``.

    Examples
    --------
    >>> import senca
    >>> adata = senca.io.read_visium("outs/", library_id="sample1")  # doctest: +SKIP
    >>> adata.uns["spatial"]["sample1"]["scalefactors"]["tissue_hires_scalef"]  # doctest: +SKIP
    0.08250825
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; pass the Space Ranger 'outs' folder.")
    if not (path / counts_file).exists():
        raise FileNotFoundError(
            f"{path / counts_file} not found; pass counts_file= (e.g. 'raw_feature_bc_matrix.h5' or the name of "
            "an .h5 in the folder)."
        )
    if not (path / "spatial").is_dir():
        raise FileNotFoundError(f"{path / 'spatial'} not found: not a Space Ranger spatial output folder.")
    library_id = str(library_id) if library_id is not None else path.name
    if spatialdata:
        import spatialdata_io

        return spatialdata_io.visium(path, dataset_id=library_id, counts_file=counts_file, **kwargs)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # docrep, on squidpy import
        import squidpy as sq

    adata = sq.read.visium(path, counts_file=counts_file, library_id=library_id, load_images=load_images, **kwargs)
    adata.var_names_make_unique()
    if adata.X.dtype != np.float32:
        adata.X = adata.X.astype(np.float32)
    adata.layers["counts"] = adata.X.copy()
    adata.obsm["spatial"] = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if "section" not in adata.obs:
        adata.obs["section"] = pd.Categorical([library_id] * adata.n_obs)
    return adata
