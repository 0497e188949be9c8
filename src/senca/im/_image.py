"""Find the H&E image, the spot centres in its pixel frame and the spot diameter, for AnnData or SpatialData."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# preferred order when ``img_key`` is not given: the sharpest image first
_IMG_KEY_ORDER = ("fullres", "hires", "lowres")


@dataclass
class SpotImage:
    """One image and the spots that lie on it, all in that image's pixel frame.

    Attributes
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` array in its native dtype (never converted as a whole).
    centres
        ``(n, 2)`` float64 spot centres as ``(x, y)`` = (column, row) pixel positions of the image; a pixel's
        centre sits at integer coordinates.
    diameter
        Spot diameter in image pixels.
    rows
        ``(n,)`` int64 positions of these spots in the table / ``obs``.
    library_id
        Name of the library (AnnData) or coordinate system (SpatialData).
    value_scale
        Multiplier that maps the native values to ``[0, 1]``.
    """

    image: np.ndarray
    centres: np.ndarray
    diameter: float
    rows: np.ndarray
    library_id: str
    value_scale: float


def is_spatialdata(data: Any) -> bool:
    """Whether ``data`` is a :class:`spatialdata.SpatialData` (without importing spatialdata)."""
    return type(data).__name__ == "SpatialData" and hasattr(data, "tables") and hasattr(data, "images")


def value_scale_of(image: np.ndarray, value_range: float | None = None) -> float:
    """Multiplier mapping ``image`` values to ``[0, 1]``: uint8 /255, uint16 /65535, float [0,1] or [0,255]."""
    if value_range is not None:
        if value_range <= 0:
            raise ValueError(f"value_range must be > 0, got {value_range}.")
        return 1.0 / float(value_range)
    dt = image.dtype
    if dt == np.bool_:
        return 1.0
    if dt == np.uint8:
        return 1.0 / 255.0
    if dt == np.uint16:
        return 1.0 / 65535.0
    if np.issubdtype(dt, np.integer):
        vmax = int(_compute(image.max())) if image.size else 0
        return 1.0 / 255.0 if vmax <= 255 else 1.0 / 65535.0
    if np.issubdtype(dt, np.floating):
        vmax = float(_compute(np.nanmax(image))) if image.size else 0.0
        if not np.isfinite(vmax):
            raise ValueError("The image contains infinite values; clean it (np.nan_to_num) before extracting patches.")
        return 1.0 if vmax <= 1.0 + 1e-6 else 1.0 / 255.0
    raise TypeError(f"Unsupported image dtype {dt}; use uint8, uint16 or float images.")


def _compute(x):
    return x.compute() if hasattr(x, "compute") else x


def check_channels(image: np.ndarray, where: str) -> None:
    """Raise a clear error unless ``image`` is ``(H, W)`` or ``(H, W, C)`` with C in 1..4."""
    if image.ndim == 2:
        return
    if image.ndim != 3:
        raise ValueError(f"{where} must be (height, width) or (height, width, channels); got shape {image.shape}.")
    if image.shape[-1] not in (1, 2, 3, 4):
        hint = ""
        if image.shape[0] in (1, 2, 3, 4):
            hint = " It looks channels-first: store np.moveaxis(image, 0, -1) instead."
        raise ValueError(
            f"{where} has {image.shape[-1]} channels in its last axis; expected grayscale, gray+alpha, RGB or RGBA "
            f"(1-4 channels, channels last).{hint}"
        )


def check_inside(centres: np.ndarray, shape: tuple[int, ...], what: str, hint: str) -> None:
    """Raise if a spot centre lies outside the image (the usual sign of coordinates in the wrong frame)."""
    h, w = shape[0], shape[1]
    x, y = centres[:, 0], centres[:, 1]
    bad = ~np.isfinite(centres).all(1) | (x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} of {len(centres)} spots fall outside {what} (width {w}, height {h} px); e.g. spot "
            f"{i} at x={centres[i, 0]:.1f}, y={centres[i, 1]:.1f} px. The coordinates are probably in another frame "
            f"than the image: {hint}"
        )


def check_spacing(centres: np.ndarray, diameter: float, what: str, spatial_key: str, key: str) -> None:
    """Raise if spots sit much closer than their diameter: the coordinates were scaled twice or are in another frame.

    Spots of every platform are at least one diameter apart (Visium 100/55 um, legacy ST 200/100 um, Visium HD bins
    touch). A median nearest-neighbour distance below 0.75 diameters means the spots would overlap heavily.
    """
    if len(centres) < 3:
        return
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(centres).query(centres, k=2)
    nn = float(np.median(dist[:, 1]))
    if nn > 0 and nn < 0.75 * diameter:
        raise ValueError(
            f"Spots on {what} are {nn:.1f} px apart (median nearest neighbour) but {diameter:.1f} px wide, so they "
            "would overlap: the coordinates are probably in another frame than the image. obsm[{sk!r}] must be "
            "full-resolution pixels (not already multiplied by tissue_{k}_scalef) and spot_diameter_fullres must be "
            "in full-resolution pixels too. If the spots really overlap, pass spot_diameter= explicitly.".format(
                sk=spatial_key, k=key
            )
        )


# ----------------------------------------------------------------------------------------------------------------
# AnnData (squidpy layout)


def from_anndata(
    adata,
    library_id: str | None = None,
    library_key: str | None = None,
    img_key: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float | None = None,
    spot_diameter: float | None = None,
    value_range: float | None = None,
    skip_missing: bool = False,
) -> list[SpotImage]:
    """Resolve the image(s) of an AnnData in the squidpy layout (``uns["spatial"][library_id]``).

    ``skip_missing``: libraries without an image are left out instead of raising (their spots get no patches).
    """
    if spatial_key not in adata.obsm:
        raise KeyError(
            f"adata.obsm[{spatial_key!r}] not found (available: {sorted(adata.obsm.keys())}); pass spatial_key= "
            "with the full-resolution spot coordinates (x, y)."
        )
    coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"adata.obsm[{spatial_key!r}] must be (n_obs, 2) x/y coordinates; got {coords.shape}.")
    coords = coords[:, :2]
    spatial = adata.uns.get("spatial")
    if not isinstance(spatial, dict) or not spatial:
        raise KeyError(
            "adata.uns['spatial'] is missing: there is no image to crop. Load the data with its H&E image (e.g. "
            "senca.datasets.her2st(section, image='hires')) or use the squidpy layout "
            "uns['spatial'][library_id] = {'images': {'hires': array}, 'scalefactors': {...}}."
        )
    if library_id is None:
        if library_key is not None:
            libs = _libraries_from_key(adata, library_key, spatial, skip_missing)
        elif len(spatial) == 1:
            libs = [next(iter(spatial))]
        else:
            raise ValueError(
                f"adata.uns['spatial'] holds {len(spatial)} libraries {sorted(spatial)}; pass library_id= for one, or "
                "library_key= (the obs column naming each spot's library, e.g. 'section') to use all."
            )
    else:
        if library_id not in spatial:
            raise KeyError(f"library_id {library_id!r} not in adata.uns['spatial'] (available: {sorted(spatial)}).")
        libs = [library_id]

    out = []
    for lib in libs:
        if library_key is not None:
            if library_key not in adata.obs:
                raise KeyError(f"adata.obs[{library_key!r}] not found; pass the obs column naming each spot's library.")
            rows = np.flatnonzero(adata.obs[library_key].astype(str).to_numpy() == str(lib))
        else:
            rows = np.arange(adata.n_obs)
        entry = spatial[lib]
        images = entry.get("images", {}) if isinstance(entry, dict) else {}
        if not images:
            if skip_missing:
                continue
            raise KeyError(
                f"adata.uns['spatial'][{lib!r}]['images'] is empty: no image to crop for this library. Load it with "
                "its image, or pass missing_image='nan' to give its spots NaN features."
            )
        key = img_key
        if key is None:
            key = next((k for k in _IMG_KEY_ORDER if k in images), next(iter(images)))
        elif key not in images:
            raise KeyError(
                f"img_key {key!r} not in adata.uns['spatial'][{lib!r}]['images'] (available: {list(images)})."
            )
        image = images[key]
        if not isinstance(image, np.ndarray):
            image = np.asarray(image)
        check_channels(image, f"adata.uns['spatial'][{lib!r}]['images'][{key!r}]")
        sf = entry.get("scalefactors", {}) or {}
        if scale_factor is not None:
            scalef = float(scale_factor)
        elif f"tissue_{key}_scalef" in sf:
            scalef = float(sf[f"tissue_{key}_scalef"])
        elif key == "fullres":
            scalef = 1.0
        else:
            raise KeyError(
                f"No scale factor for image {key!r} of library {lib!r}: adata.uns['spatial'][{lib!r}]['scalefactors']"
                f"[{f'tissue_{key}_scalef'!r}] is missing (found {sorted(sf)}). Without it the spot coordinates cannot "
                f"be placed on the image; pass scale_factor= (image pixels per unit of obsm[{spatial_key!r}])."
            )
        if spot_diameter is not None:
            diam_full = float(spot_diameter)
        elif "spot_diameter_fullres" in sf:
            diam_full = float(sf["spot_diameter_fullres"])
        else:
            raise KeyError(
                f"adata.uns['spatial'][{lib!r}]['scalefactors']['spot_diameter_fullres'] is missing; pass "
                f"spot_diameter= (in the units of obsm[{spatial_key!r}])."
            )
        if not (scalef > 0 and diam_full > 0):
            raise ValueError(f"Scale factor ({scalef}) and spot diameter ({diam_full}) must be positive.")
        centres = coords[rows] * scalef
        check_inside(
            centres,
            image.shape,
            f"image {key!r} of library {lib!r}",
            f"obsm[{spatial_key!r}] must be full-resolution pixels and tissue_{key}_scalef={scalef:g} must map them "
            "onto this image (squidpy layout).",
        )
        if spot_diameter is None:
            check_spacing(centres, diam_full * scalef, f"image {key!r} of library {lib!r}", spatial_key, key)
        out.append(
            SpotImage(
                image=image,
                centres=centres,
                diameter=diam_full * scalef,
                rows=rows.astype(np.int64),
                library_id=str(lib),
                value_scale=value_scale_of(image, value_range),
            )
        )
    return out


def _libraries_from_key(adata, library_key, spatial, skip_missing=False) -> list[str]:
    if library_key not in adata.obs:
        raise KeyError(f"adata.obs[{library_key!r}] not found; pass the obs column naming each spot's library.")
    present = list(dict.fromkeys(adata.obs[library_key].astype(str)))
    missing = [lib for lib in present if lib not in spatial]
    if missing and skip_missing:
        return [lib for lib in present if lib in spatial]
    if missing:
        raise KeyError(
            f"Libraries {missing} of adata.obs[{library_key!r}] have no entry in adata.uns['spatial'] "
            f"(available: {sorted(spatial)})."
        )
    return present


# ----------------------------------------------------------------------------------------------------------------
# SpatialData


def from_spatialdata(
    sdata,
    table_key: str = "table",
    img_key: str | dict | None = None,
    coordinate_system: str | None = None,
    spot_diameter: float | None = None,
    value_range: float | None = None,
    min_pixels: float | None = None,
    skip_missing: bool = False,
) -> list[SpotImage]:
    """Resolve images, circles and table of a SpatialData: spots are the table rows, placed by their circles.

    One :class:`SpotImage` per region (shapes element) annotated by the table. ``img_key`` names the image element
    (a dict ``{region: image}`` for several regions); by default the sharpest image sharing a coordinate system
    with the region's circles is used. ``min_pixels``: with a multiscale image, use the coarsest level on which a
    spot still spans at least this many pixels (``None``: full resolution).
    """
    from spatialdata.models import get_table_keys

    if table_key not in sdata.tables:
        raise KeyError(f"Table {table_key!r} not in the SpatialData (tables: {list(sdata.tables)}); pass table_key=.")
    table = sdata.tables[table_key]
    try:
        region, region_key, instance_key = get_table_keys(table)
    except Exception as err:  # turn spatialdata's error into a clear one
        raise ValueError(
            f"Table {table_key!r} does not annotate a shapes element (no spatialdata_attrs): parse it with "
            "spatialdata.models.TableModel.parse(table, region=..., region_key=..., instance_key=...)."
        ) from err
    regions = [region] if isinstance(region, str) else list(region)
    if len(sdata.images) == 0:
        raise KeyError("The SpatialData has no image element: there is no H&E to crop.")
    region_of_row = table.obs[region_key].astype(str).to_numpy()
    out = []
    for reg in regions:
        rows = np.flatnonzero(region_of_row == str(reg))
        if len(rows) == 0:
            continue
        key = img_key.get(reg) if isinstance(img_key, dict) else img_key
        if skip_missing and key is None and not _has_image_for(sdata, reg):
            continue
        out.append(
            _region_image(
                sdata, table, reg, rows, instance_key, key, coordinate_system, spot_diameter, value_range, min_pixels
            )
        )
    return out


def _has_image_for(sdata, region) -> bool:
    from spatialdata.transformations import get_transformation

    if region not in sdata.shapes:
        return False
    shape_cs = set(get_transformation(sdata.shapes[region], get_all=True))
    return any(shape_cs & set(get_transformation(sdata.images[k], get_all=True)) for k in sdata.images)


def _region_image(sdata, table, region, rows, instance_key, img_key, cs, spot_diameter, value_range, min_pixels):
    from spatialdata.transformations import get_transformation

    if region not in sdata.shapes:
        raise KeyError(f"Region {region!r} annotated by the table is not a shapes element of the SpatialData.")
    shapes = sdata.shapes[region]
    shape_cs = set(get_transformation(shapes, get_all=True))
    if img_key is None:
        candidates = [k for k in sdata.images if shape_cs & set(get_transformation(sdata.images[k], get_all=True))]
        if not candidates:
            raise ValueError(
                f"No image element shares a coordinate system with the circles {region!r} "
                f"(images: {list(sdata.images)}); pass img_key= or add a transformation."
            )
        # prefer images in the region's own coordinate system, then the sharpest (most pixels per unit)
        img_key = min(candidates, key=lambda k: _image_rank(sdata.images[k], shapes, region, shape_cs))
    elif img_key not in sdata.images:
        raise KeyError(f"Image element {img_key!r} not in the SpatialData (images: {list(sdata.images)}).")
    element = sdata.images[img_key]
    common = sorted(shape_cs & set(get_transformation(element, get_all=True)))
    if cs is None:
        if not common:
            raise ValueError(
                f"Image {img_key!r} and circles {region!r} share no coordinate system: the spots cannot be placed on "
                "the image. Add a transformation to a common coordinate system."
            )
        cs = region if region in common else common[0]
    elif cs not in common:
        raise ValueError(
            f"Coordinate system {cs!r} is not shared by image {img_key!r} and circles {region!r} ({common})."
        )

    geom = shapes.geometry
    if not (geom.geom_type == "Point").all():
        raise ValueError(
            f"Shapes {region!r} must be circles (points with a 'radius' column); polygons are not supported."
        )
    xy = np.column_stack([geom.x.to_numpy(), geom.y.to_numpy()]).astype(np.float64)
    pos = shapes.index.get_indexer(table.obs[instance_key].to_numpy()[rows])
    if (pos < 0).any():
        raise KeyError(
            f"{int((pos < 0).sum())} table rows have an {instance_key!r} that is not in the index of shapes {region!r}."
        )
    xy = xy[pos]
    if spot_diameter is not None:
        diam = float(spot_diameter)
    elif "radius" in shapes.columns:
        diam = 2.0 * float(np.median(shapes["radius"].to_numpy(dtype=np.float64)[pos]))
    else:
        raise KeyError(f"Shapes {region!r} have no 'radius' column; pass spot_diameter= (in the shapes' units).")

    to_px = np.linalg.inv(_affine(get_transformation(element, to_coordinate_system=cs))) @ _affine(
        get_transformation(shapes, to_coordinate_system=cs)
    )
    centres = xy @ to_px[:2, :2].T + to_px[:2, 2]
    diam_px = diam * float(np.sqrt(abs(np.linalg.det(to_px[:2, :2]))))
    image, level_scale = _read_image(element, img_key, diam_px, min_pixels)
    centres = centres / level_scale
    diam_px = diam_px / level_scale
    check_inside(
        centres,
        image.shape,
        f"image element {img_key!r}",
        f"check the transformations of {img_key!r} and {region!r} to coordinate system {cs!r}.",
    )
    return SpotImage(
        image=image,
        centres=centres,
        diameter=diam_px,
        rows=rows.astype(np.int64),
        library_id=str(region),
        value_scale=value_scale_of(image, value_range),
    )


def _image_rank(element, shapes, region, shape_cs) -> tuple[int, float]:
    from spatialdata.transformations import get_transformation

    img_cs = get_transformation(element, get_all=True)
    common = sorted(shape_cs & set(img_cs))
    cs = region if region in common else common[0]
    units_per_px = abs(np.linalg.det(_affine(img_cs[cs])[:2, :2]))
    return (0 if region in common else 1, units_per_px)


def _affine(transformation) -> np.ndarray:
    return np.asarray(transformation.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)


def _read_image(element, name: str, diam_px: float, min_pixels: float | None) -> tuple[Any, float]:
    """One level of an image element as a (H, W, C) array in its native dtype; returns (array, level scale).

    A dask-backed element stays lazy: :func:`senca.im.spot_patches` then reads it tile by tile.
    """
    if hasattr(element, "children"):  # multiscale DataTree (a DataArray has no children)
        levels = sorted(element.children)
        full = next(iter(element[levels[0]].ds.data_vars.values()))
        chosen, scale = full, 1.0
        if min_pixels is not None:
            for lev in levels[1:]:
                arr = next(iter(element[lev].ds.data_vars.values()))
                s = full.sizes["x"] / arr.sizes["x"]
                if diam_px / s >= min_pixels:
                    chosen, scale = arr, s
        arr = chosen
    else:
        arr, scale = element, 1.0
    data = arr.transpose("y", "x").data if "c" not in arr.dims else arr.transpose("y", "x", "c").data
    if not hasattr(data, "compute"):
        data = np.asarray(data)
    check_channels(data, f"image element {name!r}")
    return data, float(scale)
