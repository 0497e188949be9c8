"""Square spot-centred patches at the right scale, streamed in memory-bounded chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from ._image import SpotImage, from_anndata, from_spatialdata, is_spatialdata

_PAD_MODES = ("constant", "edge", "reflect")


class PatchChunk(NamedTuple):
    """One chunk of patches yielded by :func:`spot_patches`.

    Attributes
    ----------
    rows
        ``(n,)`` int64 positions of the chunk's spots in ``adata.obs`` (or the SpatialData table).
    patches
        float32 RGB in ``[0, 1]``: ``(n, size, size, 3)`` for a scalar ``context``, ``(n, n_context, size, size, 3)``
        for a sequence of context multipliers.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=50, image=True, seed=0)
    >>> rows, patches = next(senca.im.spot_patches(adata, size=8))
    >>> rows[:3].tolist(), patches.shape
    ([0, 1, 2], (50, 8, 8, 3))
    """

    rows: np.ndarray
    patches: np.ndarray


def spot_patches(
    data: Any,
    size: int = 32,
    context: float | Sequence[float] = 1.0,
    library_id: str | None = None,
    img_key: str | None = None,
    spatial_key: str = "spatial",
    chunk_size: int = 256,
    *,
    library_key: str | None = None,
    table_key: str = "table",
    coordinate_system: str | None = None,
    scale_factor: float | None = None,
    spot_diameter: float | None = None,
    value_range: float | None = None,
    pad_mode: str = "constant",
    pad_value: float = 0.0,
) -> Iterator[PatchChunk]:
    """Crop a square around each spot, at the spot's true scale, resampled to ``size`` x ``size`` pixels.

    The side of the square is ``context`` times the spot diameter, so ``context=1`` covers the spot and
    ``context=(1, 2, 4)`` adds two wider views of its surroundings. Spot centres are mapped onto the image with the
    scale factors of ``adata.uns["spatial"]`` (AnnData, squidpy layout) or with the element transformations
    (SpatialData). Crops are sliced from the image array (no full-image copy or conversion), down-sampled by exact
    area averaging (up-sampled bilinearly) with sub-pixel centring, and padded where they cross the image border.

    Any input image works: ``(H, W)`` grayscale, ``(H, W, 1|2|3|4)`` gray/gray+alpha/RGB/RGBA (alpha composited over
    white), ``uint8``, ``uint16`` or float in ``[0, 1]`` or ``[0, 255]``. Patches are always float32 RGB in ``[0, 1]``.

    Parameters
    ----------
    data
        :class:`anndata.AnnData` with ``obsm[spatial_key]`` (full-resolution pixels) and ``uns["spatial"]``, or a
        :class:`spatialdata.SpatialData` whose table ``table_key`` annotates circles.
    size
        Side of the returned patches in pixels.
    context
        Patch side in spot diameters; a sequence gives one patch per multiplier.
    library_id
        AnnData: the ``uns["spatial"]`` library (default: the only one). SpatialData: ignored (see
        ``coordinate_system``).
    img_key
        AnnData: key in ``uns["spatial"][library_id]["images"]`` (default: ``"fullres"``, else ``"hires"``, else
        ``"lowres"``). SpatialData: name of the image element (default: the only one sharing a coordinate system with
        the spots).
    spatial_key
        Key of the spot coordinates in ``adata.obsm`` (AnnData only).
    chunk_size
        Spots per yielded chunk; memory is about ``chunk_size * n_context * size**2 * 12`` bytes plus one crop.
    library_key
        AnnData with several libraries: column of ``obs`` naming each spot's library (e.g. ``"section"``).
    table_key
        SpatialData: the table whose rows are the spots.
    coordinate_system
        SpatialData: coordinate system shared by image and circles (default: the first shared one).
    scale_factor
        Override the image scale factor (image pixels per unit of ``obsm[spatial_key]``).
    spot_diameter
        Override the spot diameter (in units of ``obsm[spatial_key]``, or of the circles for SpatialData).
    value_range
        Override the value of "full intensity" (e.g. ``4095`` for a 12-bit image stored as uint16).
    pad_mode
        ``"constant"`` (fill with ``pad_value``), ``"edge"`` or ``"reflect"`` for crops that cross the image border.
    pad_value
        Fill value in ``[0, 1]`` for ``pad_mode="constant"``.

    Yields
    ------
    :class:`PatchChunk` ``(rows, patches)``, in ``obs`` order within each library (tile by tile for a lazily
    loaded, dask-backed SpatialData image, which is then never read whole).

    Raises
    ------
    ValueError
        If spots fall outside the image (coordinates in another frame than the image), or bad arguments.
    KeyError
        If there is no image, scale factor or spot diameter.

    Examples
    --------
    >>> import numpy as np
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=100, image=True, seed=0)
    >>> chunks = list(senca.im.spot_patches(adata, size=16, context=(1, 2), chunk_size=64))
    >>> rows = np.concatenate([c.rows for c in chunks])
    >>> patches = np.concatenate([c.patches for c in chunks])
    >>> patches.shape, patches.dtype
    ((100, 2, 16, 16, 3), dtype('float32'))
    """
    size, contexts, scalar, chunk_size = _check_args(size, context, chunk_size, pad_mode, pad_value)
    images = resolve_images(
        data,
        size=size,
        contexts=contexts,
        library_id=library_id,
        library_key=library_key,
        img_key=img_key,
        spatial_key=spatial_key,
        table_key=table_key,
        coordinate_system=coordinate_system,
        scale_factor=scale_factor,
        spot_diameter=spot_diameter,
        value_range=value_range,
    )
    return _iterate(images, size, contexts, scalar, chunk_size, pad_mode, pad_value)


def _check_args(size, context, chunk_size, pad_mode, pad_value):
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}.")
    scalar = np.ndim(context) == 0
    contexts = [float(context)] if scalar else [float(c) for c in context]
    if not contexts or min(contexts) <= 0:
        raise ValueError(f"context must be positive spot-diameter multipliers, got {context!r}.")
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}.")
    if not 0.0 <= float(pad_value) <= 1.0:
        raise ValueError(f"pad_value must be in [0, 1] (patches are scaled to [0, 1]), got {pad_value}.")
    return size, contexts, scalar, chunk_size


def resolve_images(
    data,
    size,
    contexts,
    library_id=None,
    library_key=None,
    img_key=None,
    spatial_key="spatial",
    table_key="table",
    coordinate_system=None,
    scale_factor=None,
    spot_diameter=None,
    value_range=None,
    skip_missing=False,
) -> list[SpotImage]:
    """Dispatch on the data type; returns one :class:`SpotImage` per library (with an image, if ``skip_missing``)."""
    if is_spatialdata(data):
        return from_spatialdata(
            data,
            table_key=table_key,
            img_key=img_key,
            coordinate_system=coordinate_system,
            spot_diameter=spot_diameter,
            value_range=value_range,
            min_pixels=size / min(contexts),
            skip_missing=skip_missing,
        )
    if hasattr(data, "obsm") and hasattr(data, "uns"):
        return from_anndata(
            data,
            library_id=library_id,
            library_key=library_key,
            img_key=img_key,
            spatial_key=spatial_key,
            scale_factor=scale_factor,
            spot_diameter=spot_diameter,
            value_range=value_range,
            skip_missing=skip_missing,
        )
    raise TypeError(f"Expected an AnnData or a SpatialData, got {type(data).__name__}.")


_TILE = 4096  # px; lazily loaded images are read one tile of spots at a time


def _iterate(images, size, contexts, scalar, chunk_size, pad_mode, pad_value) -> Iterator[PatchChunk]:
    for si in images:
        for rows, sub in _chunks(si, contexts, chunk_size):
            per_ctx = [crop_resample(sub, sub.centres, c * sub.diameter, size, pad_mode, pad_value) for c in contexts]
            patches = per_ctx[0] if scalar else np.stack(per_ctx, axis=1)
            yield PatchChunk(rows, patches)


def _chunks(si: SpotImage, contexts, chunk_size):
    """(rows, SpotImage) per chunk; in-memory images in obs order, lazy (dask) images tile by tile."""
    n = len(si.rows)
    if isinstance(si.image, np.ndarray):
        for start in range(0, n, chunk_size):
            sel = slice(start, min(start + chunk_size, n))
            yield si.rows[sel], replace(si, centres=si.centres[sel], rows=si.rows[sel])
        return
    h, w = si.image.shape[0], si.image.shape[1]
    margin = max(contexts) * si.diameter / 2.0 + 8
    tile = np.floor(si.centres[:, ::-1] / _TILE).astype(np.int64)  # (ty, tx)
    order = np.lexsort((si.centres[:, 0], tile[:, 1], tile[:, 0]))
    keys = tile[order, 0] * (w // _TILE + 2) + tile[order, 1]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for group in np.split(order, bounds):
        for start in range(0, len(group), chunk_size):
            idx = group[start : start + chunk_size]
            c = si.centres[idx]
            y0 = max(0, int(np.floor(c[:, 1].min() - margin)))
            x0 = max(0, int(np.floor(c[:, 0].min() - margin)))
            y1 = min(h, int(np.ceil(c[:, 1].max() + margin)) + 1)
            x1 = min(w, int(np.ceil(c[:, 0].max() + margin)) + 1)
            region = np.asarray(si.image[y0:y1, x0:x1])
            # a crop padded at a region edge that is not an image edge would be wrong: the margin prevents it
            yield si.rows[idx], replace(si, image=region, centres=c - [x0, y0], rows=si.rows[idx])


def _to_rgb(crop: np.ndarray, value_scale: float) -> np.ndarray:
    """Native (h, w[, c]) crop -> float32 (h, w, 3) RGB in [0, 1]; alpha composited over white."""
    x = crop.astype(np.float32)
    if value_scale != 1.0:
        x *= np.float32(value_scale)
    if x.ndim == 2:
        x = x[..., None]
    c = x.shape[-1]
    if c in (2, 4):
        alpha = np.clip(x[..., -1:], 0.0, 1.0)
        x = x[..., :-1] * alpha + (1.0 - alpha)
        c -= 1
    if c == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x, 0.0, 1.0, out=x)


def _tent_weights(centres: np.ndarray, grid: np.ndarray, width: float) -> np.ndarray:
    """(n, size, m) normalised triangle-filter weights of grid points ``grid`` (n, m) for samples ``centres``."""
    w = 1.0 - np.abs(grid[:, None, :] - centres[:, :, None]) / width
    np.maximum(w, 0.0, out=w)
    s = w.sum(-1, keepdims=True)
    s[s == 0] = 1.0
    return (w / s).astype(np.float32)


def _crop(si: SpotImage, y0: int, x0: int, length: int, pad_mode: str, pad_value: float) -> np.ndarray:
    """``length`` x ``length`` float32 RGB crop with top-left pixel (y0, x0), padded outside the image."""
    image = si.image
    h, w = image.shape[0], image.shape[1]
    y1, x1 = y0 + length, x0 + length
    crop = _to_rgb(image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)], si.value_scale)
    pads = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w)), (0, 0))
    if pads[0] == (0, 0) and pads[1] == (0, 0):
        return crop
    if pad_mode == "constant":
        return np.pad(crop, pads, mode="constant", constant_values=pad_value)
    if pad_mode == "edge" or min(crop.shape[:2]) < 2:
        return np.pad(crop, pads, mode="edge")
    return _pad_reflect(crop, pads)


def _area_1d(x: np.ndarray, edges: np.ndarray, r: float, axis: int) -> np.ndarray:
    """Exact box (area) average of ``x`` between consecutive ``edges`` along ``axis``.

    Pixel ``k`` covers ``[k - 0.5, k + 0.5)``, so the integral of ``x`` is piecewise linear and the mean over any
    interval is exact: whole pixels are summed with one ``reduceat`` pass (no cumulative copy of the crop) and the
    fractional pixels at both ends are added. ``edges`` has ``size + 1`` increasing entries, in pixel coordinates of
    ``x``, at least one pixel apart (``r >= 1``).
    """
    n = x.shape[axis]
    t = np.clip(np.asarray(edges, dtype=np.float64) + 0.5, 0.0, n - 1e-9)
    i = t.astype(np.int64)
    shape = [1] * x.ndim
    shape[axis] = -1
    frac = (t - i).reshape(shape)
    if len(i) > 1 and np.all(np.diff(i) > 0):
        whole = np.add.reduceat(x, i, axis=axis, dtype=np.float64)
        whole = np.take(whole, np.arange(len(i) - 1), axis=axis)  # sums of x[i_j : i_j+1]
    else:  # pragma: no cover - edges closer than one pixel (not produced by crop_resample)
        c = np.cumsum(x, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        whole = np.diff(np.take(c, i, axis=axis), axis=axis)
    part = np.take(x, i, axis=axis) * frac
    lo = np.take(part, np.arange(len(i) - 1), axis=axis)
    hi = np.take(part, np.arange(1, len(i)), axis=axis)
    return (whole + hi - lo) / r


def crop_resample(
    si: SpotImage, centres: np.ndarray, side: float, size: int, pad_mode: str = "constant", pad_value: float = 0.0
) -> np.ndarray:
    """Patches of side ``side`` image pixels around ``centres`` (n, 2 as x, y), resampled to ``size`` pixels.

    Geometry is exact to sub-pixel precision: output pixel ``j`` covers image positions
    ``centre - side / 2 + [j, j + 1) * side / size`` (a pixel's centre sits at integer coordinates). Down-sampling
    (``side >= size``) averages the exact area under each output pixel (box filter, like ``cv2.INTER_AREA``);
    up-sampling interpolates bilinearly.
    """
    n = len(centres)
    r = side / size  # image px per output px
    out = np.empty((n, size, size, 3), dtype=np.float32)
    if n == 0:
        return out
    if r >= 1.0:
        length = int(np.ceil(side)) + 4
        steps = np.arange(size + 1) * r
        image = si.image
        h, w = image.shape[0], image.shape[1]
        # native RGB without alpha: integrate the raw values and scale the small result (no float copy of the crop)
        native_ok = image.ndim == 3 and image.shape[2] == 3 and image.dtype != np.bool_
        for k in range(n):
            cx, cy = centres[k]
            x0 = int(np.floor(cx - side / 2.0)) - 1
            y0 = int(np.floor(cy - side / 2.0)) - 1
            if native_ok and y0 >= 0 and x0 >= 0 and y0 + length <= h and x0 + length <= w:
                crop, scale = image[y0 : y0 + length, x0 : x0 + length], si.value_scale
            else:
                crop, scale = _crop(si, y0, x0, length, pad_mode, pad_value), 1.0
            # rows first (contiguous, shrinks the data most), then columns of the small intermediate
            tmp = _area_1d(crop, cy - side / 2.0 + steps - y0, r, axis=0)  # (size, length, 3)
            res = _area_1d(tmp, cx - side / 2.0 + steps - x0, r, axis=1)
            out[k] = res * scale if scale != 1.0 else res
        return np.clip(out, 0.0, 1.0, out=out)
    # up-sampling: bilinear (tent of width one image pixel), batched separable matmuls
    offs = (np.arange(size) + 0.5 - size / 2.0) * r
    out_x = centres[:, 0:1] + offs
    out_y = centres[:, 1:2] + offs
    x0 = np.floor(out_x[:, 0]).astype(np.int64) - 1
    y0 = np.floor(out_y[:, 0]).astype(np.int64) - 1
    length = int(np.ceil(side)) + 4
    grid = np.broadcast_to(np.arange(length, dtype=np.float64), (n, length))
    wx = _tent_weights(out_x - x0[:, None], grid, 1.0)
    wy = _tent_weights(out_y - y0[:, None], grid, 1.0)
    crops = np.stack([_crop(si, int(y0[k]), int(x0[k]), length, pad_mode, pad_value) for k in range(n)])
    tmp = np.matmul(wy, crops.reshape(n, length, length * 3)).reshape(n, size, length, 3)
    out = np.matmul(wx[:, None, :, :], tmp)
    return np.clip(out, 0.0, 1.0, out=out)


def _pad_reflect(crop: np.ndarray, pads) -> np.ndarray:
    # np.pad's reflect cannot pad more than the array size at once: repeat until done
    while any(p for pair in pads[:2] for p in pair):
        step = tuple((min(a, crop.shape[k] - 1), min(b, crop.shape[k] - 1)) for k, (a, b) in enumerate(pads[:2]))
        crop = np.pad(crop, (*step, (0, 0)), mode="reflect")
        pads = tuple((a - sa, b - sb) for (a, b), (sa, sb) in zip(pads[:2], step, strict=True))
    return crop
