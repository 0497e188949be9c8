"""AnnData (scanpy/squidpy ``uns["spatial"]`` layout) <-> SpatialData (images, circle shapes, annotating table)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

if TYPE_CHECKING:
    from spatialdata import SpatialData

_REGION_KEY = "library_id"
_INSTANCE_KEY = "spot_id"


def _libraries(adata: AnnData, library_key: str | None) -> tuple[list[str], np.ndarray]:
    """Library ids and the library of every spot."""
    libs = [str(k) for k in adata.uns.get("spatial", {})]
    if library_key is not None:
        if library_key not in adata.obs:
            raise KeyError(f"adata.obs[{library_key!r}] not found; pass the obs column naming each spot's library.")
        per_spot = adata.obs[library_key].astype(str).to_numpy()
        return list(dict.fromkeys(per_spot)), per_spot
    if len(libs) <= 1:
        lib = libs[0] if libs else "library"
        return [lib], np.full(adata.n_obs, lib, dtype=object)
    for col in ("section", "library_id", "library", "sample"):
        if col in adata.obs and set(adata.obs[col].astype(str)) <= set(libs):
            return libs, adata.obs[col].astype(str).to_numpy()
    raise ValueError(
        f"adata.uns['spatial'] has {len(libs)} libraries ({libs}) but no obs column maps spots to them; "
        "pass library_key= (the obs column holding the library id of each spot)."
    )


def _spot_diameter(coords: np.ndarray, scalefactors: dict) -> float:
    if "spot_diameter_fullres" in scalefactors:
        return float(scalefactors["spot_diameter_fullres"])
    if len(coords) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(coords).query(coords, k=2)
    return 0.5 * float(np.median(d[:, 1]))  # no scale factor: half the spot spacing


def to_spatialdata(
    adata: AnnData,
    spatial_key: str = "spatial",
    library_key: str | None = None,
    table_key: str = "table",
    scale_factors: list[int] | None = None,
) -> SpatialData:
    """Convert an AnnData in the scanpy/squidpy spatial layout into a :class:`spatialdata.SpatialData`.

    For every library ``lib`` (a key of ``adata.uns["spatial"]``) it creates, like ``spatialdata_io.visium``:

    - a coordinate system ``lib`` in full-resolution pixels (the units of ``adata.obsm[spatial_key]``);
    - circles ``shapes[lib]``: one per spot at ``obsm[spatial_key]`` with radius ``spot_diameter_fullres / 2``
      (without one, the diameter is half the median nearest-neighbour distance), index ``0..n-1``;
    - ``images[f"{lib}_{key}_image"]`` for every ``uns["spatial"][lib]["images"][key]`` (``hires``, ``lowres``):
      an ``Image2DModel`` (c, y, x) with ``Scale(1 / tissue_{key}_scalef)`` to ``lib``;
    - ``tables[table_key]``: a copy of ``adata`` annotating the circles (``obs["library_id"]`` = region,
      ``obs["spot_id"]`` = instance); ``uns["spatial"]`` keeps scale factors and metadata but not the images.

    Parameters
    ----------
    adata
        AnnData with coordinates in ``obsm[spatial_key]`` (full-resolution pixels) and optionally images.
    spatial_key
        Key of the spot coordinates in ``adata.obsm``.
    library_key
        Column of ``adata.obs`` naming each spot's library. Only needed when ``uns["spatial"]`` has several
        libraries and no ``obs["section"]`` maps spots to them.
    table_key
        Name of the table.
    scale_factors
        Build multiscale images with these downscaling factors (e.g. ``[2, 4]`` for a full-resolution image).

    Returns
    -------
    A new SpatialData; ``adata`` is not modified. Counts, layers, obs, obsm and var travel in the table.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=100, image=True, seed=0)
    >>> sdata = senca.io.to_spatialdata(adata)
    >>> sorted(sdata.images), sorted(sdata.shapes), sorted(sdata.tables)
    (['synthetic_hires_image'], ['synthetic'], ['table'])
    """
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel, ShapesModel, TableModel
    from spatialdata.transformations import Identity, Scale

    if not isinstance(adata, AnnData):
        raise TypeError(f"to_spatialdata expects an AnnData, got {type(adata).__name__}.")
    if spatial_key not in adata.obsm:
        raise KeyError(f"adata.obsm[{spatial_key!r}] not found; pass spatial_key= with the spot coordinates.")
    coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)[:, :2]
    if not np.isfinite(coords).all():
        raise ValueError(f"adata.obsm[{spatial_key!r}] has NaN or infinite coordinates; drop those spots first.")
    for key in (_REGION_KEY, _INSTANCE_KEY):
        if key in adata.obs:
            raise ValueError(
                f"adata.obs[{key!r}] exists but to_spatialdata writes its own {key!r} column into the table; "
                f"rename or drop it first (adata.obs = adata.obs.drop(columns={key!r}))."
            )
    libs, per_spot = _libraries(adata, library_key)
    spatial = adata.uns.get("spatial", {})
    images, shapes = {}, {}
    instance = np.zeros(adata.n_obs, dtype=np.int64)
    for lib in libs:
        rows = np.flatnonzero(per_spot == lib)
        instance[rows] = np.arange(len(rows))
        entry = spatial.get(lib, {})
        sf = dict(entry.get("scalefactors", {}))
        radius = 0.5 * _spot_diameter(coords[rows], sf)
        shapes[lib] = ShapesModel.parse(
            coords[rows],
            geometry=0,
            radius=np.full(len(rows), radius),
            index=pd.Index(np.arange(len(rows)), name=_INSTANCE_KEY),
            transformations={lib: Identity()},
        )
        for res, img in entry.get("images", {}).items():
            scalef = sf.get(f"tissue_{res}_scalef")
            if scalef is None:
                raise KeyError(
                    f"adata.uns['spatial'][{lib!r}]['scalefactors'] has no 'tissue_{res}_scalef' for image {res!r}; "
                    "add it (image pixels per full-resolution pixel)."
                )
            arr = np.asarray(img)
            if arr.ndim == 2:
                arr = arr[..., None]
            if arr.ndim != 3:
                raise ValueError(f"Image {res!r} of library {lib!r} must be (y, x) or (y, x, c), got {arr.shape}.")
            c_coords = ["r", "g", "b", "a"][: arr.shape[2]] if arr.shape[2] in (3, 4) else None
            images[f"{lib}_{res}_image"] = Image2DModel.parse(
                np.moveaxis(arr, 2, 0),
                dims=("c", "y", "x"),
                c_coords=c_coords,
                transformations={lib: Scale([1.0 / scalef, 1.0 / scalef], axes=("y", "x"))},
                scale_factors=scale_factors,
            )
    uns = dict(adata.uns)
    if "spatial" in uns:  # images become image elements: keep scale factors and metadata only (and copy no image)
        uns["spatial"] = {lib: {k: v for k, v in dict(e).items() if k != "images"} for lib, e in uns["spatial"].items()}
    table = AnnData(
        X=adata.X,
        obs=adata.obs,
        var=adata.var,
        uns=uns,
        obsm=adata.obsm,
        varm=adata.varm,
        layers=adata.layers,
        obsp=adata.obsp,
        varp=adata.varp,
    ).copy()
    if adata.raw is not None:
        table.raw = adata.raw.to_adata()
    table.obs[_REGION_KEY] = pd.Categorical(per_spot, categories=libs)
    table.obs[_INSTANCE_KEY] = instance
    region = libs if len(libs) > 1 else libs[0]
    table = TableModel.parse(table, region=region, region_key=_REGION_KEY, instance_key=_INSTANCE_KEY)
    return SpatialData(images=images, shapes=shapes, tables={table_key: table})


def _affine(element, cs: str) -> np.ndarray:
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, to_coordinate_system=cs)
    return np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)


def _coordinate_system(element, name: str) -> str:
    from spatialdata.transformations import Identity, get_transformation

    systems = get_transformation(element, get_all=True)
    if name in systems:
        return name
    identity = [cs for cs, t in systems.items() if isinstance(t, Identity)]
    return identity[0] if identity else next(iter(systems))


def _image_array(element) -> np.ndarray:
    import xarray as xr

    if isinstance(element, xr.DataTree):  # multiscale image: take the full-resolution level
        level = next(iter(element.children.values()))
        element = next(iter(level.ds.data_vars.values()))
    return np.asarray(element.transpose("y", "x", "c").values)


def from_spatialdata(
    sdata: SpatialData,
    table_key: str = "table",
    spatial_key: str = "spatial",
    images: bool = True,
) -> AnnData:
    """Convert a SpatialData (spots as circles annotated by a table) into an AnnData in the squidpy layout.

    Inverse of :func:`to_spatialdata`; also reads ``spatialdata_io.visium`` output. For every circle element
    ``lib`` annotated by the table, coordinates come from the circle centres in the element's coordinate system
    (the one named ``lib``, else the one it maps to by identity), the spot diameter from the radius, and every
    image mapped to that coordinate system by a scale (no rotation or shift) goes into
    ``uns["spatial"][lib]["images"]`` (``*_hires_image`` -> ``"hires"``, ``*_lowres_image`` -> ``"lowres"``; a
    single other image -> ``"hires"``) with ``tissue_<key>_scalef`` from the transformation.

    Parameters
    ----------
    sdata
        The SpatialData.
    table_key
        Table holding the spots (``sdata.tables[table_key]``).
    spatial_key
        Key of ``obsm`` to write the coordinates to.
    images
        Also copy the images into ``uns["spatial"]`` (set ``False`` for large full-resolution images).

    Returns
    -------
    A new AnnData: the table (counts, layers, obs, obsm, var) with ``obsm[spatial_key]`` and ``uns["spatial"]``.
    The instance-key column is dropped, and so is the region-key column when there is a single region.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=100, image=True, seed=0)
    >>> back = senca.io.from_spatialdata(senca.io.to_spatialdata(adata))
    >>> bool((back.obsm["spatial"] == adata.obsm["spatial"]).all())
    True
    """
    if table_key not in sdata.tables:
        raise KeyError(f"sdata.tables has no {table_key!r}; available: {sorted(sdata.tables)}. Pass table_key=.")
    table = sdata.tables[table_key]
    attrs = table.uns.get("spatialdata_attrs")
    if not attrs or attrs.get("region") is None:
        raise ValueError(
            f"Table {table_key!r} annotates no element (uns['spatialdata_attrs'] missing); parse it with "
            "spatialdata.models.TableModel.parse(table, region=..., region_key=..., instance_key=...)."
        )
    region_key, instance_key = attrs["region_key"], attrs["instance_key"]
    regions = [attrs["region"]] if isinstance(attrs["region"], str) else list(attrs["region"])
    adata = table.copy()
    coords = np.full((adata.n_obs, 2), np.nan)
    old_spatial = dict(table.uns.get("spatial", {}))
    spatial = {}
    region_of = adata.obs[region_key].astype(str).to_numpy()
    for region in regions:
        if region not in sdata.shapes:
            raise ValueError(f"Table {table_key!r} annotates {region!r}, which is not a shapes element of sdata.")
        shp = sdata.shapes[region]
        if "radius" not in shp.columns:
            raise ValueError(f"Shapes {region!r} are not circles (no 'radius' column); only spots are supported.")
        cs = _coordinate_system(shp, region)
        m = _affine(shp, cs)
        xy = np.c_[shp.geometry.x.to_numpy(), shp.geometry.y.to_numpy(), np.ones(len(shp))] @ m.T
        pos = pd.Series(np.arange(len(shp)), index=shp.index)
        rows = np.flatnonzero(region_of == region)
        inst = adata.obs[instance_key].to_numpy()[rows]
        missing = ~pd.Index(inst).isin(shp.index)
        if missing.any():
            raise ValueError(f"{missing.sum()} table rows of region {region!r} have no matching shape in {region!r}.")
        coords[rows] = xy[pos.loc[inst].to_numpy(), :2]
        scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
        entry = dict(old_spatial.get(region, {}))
        sf = dict(entry.get("scalefactors", {}))
        sf["spot_diameter_fullres"] = float(2.0 * np.median(shp["radius"].to_numpy()) * scale)
        imgs = {}
        if images:
            names = [k for k in sdata.images if cs in _systems(sdata.images[k])]
            for name in names:
                mi = _affine(sdata.images[name], cs)
                if not (np.allclose(mi[0, 1], 0) and np.allclose(mi[1, 0], 0) and np.allclose(mi[:2, 2], 0)):
                    warnings.warn(
                        f"Image {name!r} maps to {cs!r} with a rotation or shift; the scanpy layout holds only a "
                        "scale, so it is left out of uns['spatial'].",
                        stacklevel=2,
                    )
                    continue
                key = _image_res_key(name, region, len(names))
                imgs[key] = _image_array(sdata.images[name])
                sf[f"tissue_{key}_scalef"] = float(1.0 / mi[0, 0])
        entry.update({"images": imgs, "scalefactors": sf})
        entry.setdefault("metadata", {})
        spatial[region] = entry
    if np.isnan(coords).any():
        raise ValueError(f"{np.isnan(coords).any(axis=1).sum()} table rows are not in any annotated region.")
    adata.obsm[spatial_key] = coords
    adata.uns["spatial"] = spatial
    adata.uns.pop("spatialdata_attrs", None)
    drop = [instance_key] + ([region_key] if len(regions) == 1 else [])
    adata.obs = adata.obs.drop(columns=[c for c in drop if c in adata.obs])
    return adata


def _systems(element) -> set[str]:
    from spatialdata.transformations import get_transformation

    return set(get_transformation(element, get_all=True))


def _image_res_key(name: str, region: str, n_images: int) -> str:
    for res in ("hires", "lowres", "fullres"):
        if name.endswith(f"_{res}_image") or name == res:
            return res
    if n_images == 1:
        return "hires"
    return name.removeprefix(f"{region}_")


def resolve_image_key(
    sdata: SpatialData,
    image_key: str | None,
    table_key: str = "table",
    spatial_key: str = "spatial",
    key_added: str = "X_histology",
) -> str | None:
    """The ``obsm`` key of the table's histology features for ``setup_spatialdata(sdata, image_key=...)``.

    ``image_key`` may name a key of the table's ``obsm`` (features computed before: used as they are) or an image
    element of ``sdata`` (e.g. ``"A1_hires_image"``): then the ``"stats"`` features of
    :func:`senca.im.extract_features` are computed from that element, with each spot cut at its true scale from the
    element's transformation to the spots' coordinate system, and stored in the table's ``obsm[key_added]``. Calling
    it again with the same element reuses them; features of another origin already under ``key_added`` are never
    overwritten.

    Parameters
    ----------
    sdata
        The SpatialData.
    image_key
        An ``obsm`` key of the table, an image element name, or ``None`` (no histology).
    table_key
        The table whose rows are the spots.
    spatial_key
        Key of the spot coordinates in the table's ``obsm``.
    key_added
        Where features computed from an image element are stored.

    Returns
    -------
    The ``obsm`` key to register (``None`` when ``image_key`` is ``None``).

    Examples
    --------
    >>> import senca
    >>> sdata = senca.io.to_spatialdata(senca.datasets.synthetic(n_spots=100, image=True, seed=0))
    >>> del sdata.tables["table"].obsm["X_histology"]
    >>> resolve_image_key(sdata, "synthetic_hires_image")
    'X_histology'
    >>> sdata.tables["table"].obsm["X_histology"].shape
    (100, 120)
    """
    if image_key is None:
        return None
    tables = getattr(sdata, "tables", None)
    if tables is None:
        raise TypeError(f"setup_spatialdata expects a SpatialData object, got {type(sdata).__name__}.")
    if table_key not in tables:
        raise KeyError(f"sdata.tables has no {table_key!r}; available: {sorted(tables)}. Pass table_key=.")
    table = tables[table_key]
    if image_key in table.obsm:
        return image_key
    if image_key not in sdata.images:
        raise KeyError(
            f"image_key={image_key!r} is neither a key of sdata.tables[{table_key!r}].obsm (available: "
            f"{sorted(table.obsm)}) nor an image element (available: {sorted(sdata.images)}); pass the name of the "
            "H&E image element or of precomputed features."
        )
    if key_added in table.obsm:
        done = table.uns.get("senca", {}).get("histology", {})
        if done.get("image_element") == image_key and done.get("key_added") == key_added:
            return key_added  # computed from this element by an earlier call
        raise ValueError(
            f"sdata.tables[{table_key!r}].obsm[{key_added!r}] already holds features that were not computed from "
            f"image element {image_key!r}; pass image_key={key_added!r} to use them, or delete them to compute "
            "new ones."
        )
    from senca.im import extract_features

    extract_features(
        sdata,
        method="stats",
        key_added=key_added,
        img_key=image_key,
        table_key=table_key,
        spatial_key=spatial_key,
        progress=False,
    )
    table.uns["senca"]["histology"]["image_element"] = image_key
    return key_added
