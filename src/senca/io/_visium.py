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
        Load the hires and lowres images, those of the two that are present (AnnData only).
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
    ``obs["in_tissue"]``, ``obs["array_row"]``, ``obs["array_col"]`` and ``obs["section"]`` = ``library_id``
    (categorical). ``uns["spatial"][library_id]`` holds ``images`` (``hires`` and ``lowres``, those present:
    published copies often have the low-res image only) and ``scalefactors``. Or the SpatialData with
    ``spatialdata=True``.

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

    # squidpy reads the positions only together with both images: published copies often ship the low-res image
    # alone, and load_images=False would lose the coordinates, so the spatial part is read here
    adata = sq.read.visium(path, counts_file=counts_file, library_id=library_id, load_images=False, **kwargs)
    _add_spatial(adata, path / "spatial", library_id, load_images)
    adata.var_names_make_unique()
    if adata.X.dtype != np.float32:
        adata.X = adata.X.astype(np.float32)
    adata.layers["counts"] = adata.X.copy()
    adata.obsm["spatial"] = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if "section" not in adata.obs:
        adata.obs["section"] = pd.Categorical([library_id] * adata.n_obs)
    return adata


def _add_spatial(adata: AnnData, spatial: Path, library_id: str, load_images: bool) -> None:
    """Positions, scale factors and the images present in a Space Ranger ``spatial/`` folder, as squidpy lays them out.

    Positions: ``tissue_positions.csv`` (Space Ranger 2+, with a header) or ``tissue_positions_list.csv`` (1.x, no
    header): barcode, in_tissue, array_row, array_col, pxl_row_in_fullres, pxl_col_in_fullres.
    """
    import json

    from PIL import Image

    pos_file = next(
        (spatial / n for n in ("tissue_positions.csv", "tissue_positions_list.csv") if (spatial / n).is_file()), None
    )
    if pos_file is None:
        raise FileNotFoundError(
            f"No spot positions in {spatial}: expected tissue_positions.csv or tissue_positions_list.csv (Space "
            "Ranger)."
        )
    with open(pos_file) as fh:
        has_header = fh.readline().split(",")[0].strip().lower() == "barcode"
    pos = pd.read_csv(pos_file, header=0 if has_header else None, index_col=0)
    if pos.shape[1] != 5:
        raise ValueError(
            f"{pos_file} has {pos.shape[1] + 1} columns, expected 6 (barcode, in_tissue, array_row, array_col, "
            "pxl_row_in_fullres, pxl_col_in_fullres)."
        )
    pos.columns = ["in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
    pos.index = pos.index.astype(str)
    missing = adata.obs_names.difference(pos.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} barcodes of the count matrix (e.g. {list(missing[:3])}) are not in {pos_file.name}; the "
            "count file and the spatial/ folder are from different runs."
        )
    pos = pos.loc[adata.obs_names]
    for col in ("in_tissue", "array_row", "array_col"):
        adata.obs[col] = pos[col].to_numpy()
    adata.obsm["spatial"] = pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=np.float64)
    lib = adata.uns.setdefault("spatial", {}).setdefault(library_id, {})
    lib.setdefault("metadata", {})
    sf = spatial / "scalefactors_json.json"
    if sf.is_file():
        lib["scalefactors"] = json.loads(sf.read_bytes())
    if load_images:
        lib["images"] = {
            res: np.asarray(Image.open(spatial / f"tissue_{res}_image.png"))
            for res in ("hires", "lowres")
            if (spatial / f"tissue_{res}_image.png").is_file()
        }
