"""Read a 10x Genomics Space Ranger Visium HD output folder at one bin size (through spatialdata-io)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from spatialdata import SpatialData


def read_visium_hd(
    path: str | os.PathLike,
    bin_size: int = 8,
    dataset_id: str | None = None,
    filtered: bool = True,
    **kwargs,
) -> SpatialData:
    """Read a Visium HD ``outs/`` folder at one bin size into a SpatialData that senca's models set up directly.

    The scverse reader :func:`spatialdata_io.visium_hd` does the reading; this function picks one bin size (8 µm by
    default: bins of about one to a few cells, the level at which Visium HD is usually analysed), checks the folder
    first so that a wrong path or bin size is named in the error, and leaves the table in the shape
    :meth:`senca.model.SENCA.setup_spatialdata` reads: raw counts in ``X`` (sparse float32), bin centres in
    ``obsm["spatial"]`` (full-resolution pixels, ``x, y``) and ``obs["section"]``.

    Parameters
    ----------
    path
        The Space Ranger ``outs/`` folder: ``feature_slice.h5`` (or ``<dataset_id>_feature_slice.h5``) and
        ``binned_outputs/square_008um/`` (``filtered_feature_bc_matrix.h5``, ``spatial/tissue_positions.parquet``,
        ``spatial/scalefactors_json.json``), with the tissue images where Space Ranger writes them.
    bin_size
        Bin size in µm (2, 8 or 16 in Space Ranger's output).
    dataset_id
        Prefix of the element names and value of ``obs["section"]``. Space Ranger names the files of a run after it
        (``<dataset_id>_feature_slice.h5``): then it is that name (the default); with unprefixed files, any name
        (default: the folder's).
    filtered
        Read the bins under tissue (``filtered_feature_bc_matrix.h5``) rather than every bin of the slide.
    **kwargs
        Passed to :func:`spatialdata_io.visium_hd` (e.g. ``fullres_image_file=``, or ``bins_as_squares=True`` for
        square shapes, which :mod:`senca.im` cannot cut patches around).

    Returns
    -------
    A :class:`spatialdata.SpatialData` with the table ``f"square_{bin_size:03d}um"`` (spots are the bins), the bins
    as circles as wide as a bin, ``f"{dataset_id}_square_{bin_size:03d}um"`` (so that an image element can be given
    as ``image_key`` to ``setup_spatialdata``: patches are cut around circles), and the tissue images
    (``f"{dataset_id}_hires_image"``, ``..._lowres_image``, and the full-resolution image where present).

    Examples
    --------
    >>> import senca
    >>> sdata = senca.io.read_visium_hd("outs/", bin_size=8)  # doctest: +SKIP
    >>> senca.model.SENCA.setup_spatialdata(sdata, table_key="square_008um")  # doctest: +SKIP
    >>> model = senca.model.SENCA(sdata)  # doctest: +SKIP
    """
    import spatialdata_io

    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; pass the Space Ranger Visium HD 'outs' folder.")
    bins = path / "binned_outputs"
    name = f"square_{int(bin_size):03d}um"
    available = sorted(p.name for p in bins.glob("square_*um") if p.is_dir()) if bins.is_dir() else []
    if name not in available:
        raise FileNotFoundError(
            f"No {name} bins in {path}: found {available or 'no binned_outputs/ folder'}. Pass the Visium HD 'outs' "
            f"folder and one of the bin sizes it has (bin_size=8 reads binned_outputs/square_008um/)."
        )
    counts = bins / name / ("filtered_feature_bc_matrix.h5" if filtered else "raw_feature_bc_matrix.h5")
    positions = bins / name / "spatial" / "tissue_positions.parquet"
    for needed in (counts, positions, bins / name / "spatial" / "scalefactors_json.json"):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: not a complete Space Ranger Visium HD output folder.")
    slices = sorted(p.name for p in path.glob("*feature_slice.h5"))
    if not slices:
        raise FileNotFoundError(
            f"No feature_slice.h5 in {path}: spatialdata-io reads the slide's layout from it. Pass the 'outs' folder "
            "that Space Ranger wrote."
        )
    if "feature_slice.h5" in slices:  # unprefixed files: any name will do
        dataset_id = path.name if dataset_id is None else str(dataset_id)
    else:
        prefix = slices[0].removesuffix("_feature_slice.h5")
        if dataset_id is not None and str(dataset_id) != prefix:
            raise ValueError(
                f"The files in {path} are named after dataset {prefix!r} ({slices[0]}): pass dataset_id={prefix!r} "
                "or leave it None."
            )
        dataset_id = prefix
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(full resolution image|load_segmentations_only).*")
        sdata = spatialdata_io.visium_hd(
            path,
            dataset_id=dataset_id,
            filtered_counts_file=filtered,
            bin_size=int(bin_size),
            load_segmentations_only=False,
            **{"bins_as_squares": False, **kwargs},
        )
    table = sdata.tables[name]
    if table.X.dtype != np.float32:
        table.X = table.X.astype(np.float32)
    table.obsm["spatial"] = np.asarray(table.obsm["spatial"], dtype=np.float64)
    table.obs["section"] = pd.Categorical([dataset_id] * table.n_obs)
    return sdata
