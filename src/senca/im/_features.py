"""Per-spot histology features (``obsm["X_histology"]``) from the H&E image of AnnData or SpatialData."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from senca._utils import check_key_free, set_seed

from ._image import is_spatialdata
from ._patches import _check_args, _iterate, resolve_images

_METHODS = ("stats", "cnn", "timm")
_DEFAULT_SIZE = {"stats": 32, "cnn": 32}


def extract_features(
    data: Any,
    method: str | Callable[[np.ndarray], np.ndarray] = "stats",
    key_added: str = "X_histology",
    context: float | Sequence[float] = (1.0, 2.0),
    size: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    copy: bool = False,
    *,
    standardize: bool | str = True,
    missing_image: str = "raise",
    library_id: str | None = None,
    library_key: str | None = None,
    img_key: str | None = None,
    spatial_key: str = "spatial",
    table_key: str = "table",
    chunk_size: int = 256,
    model_name: str = "resnet18",
    weights: str | None = None,
    pretrained: bool = True,
    device: str | None = None,
    method_kwargs: dict | None = None,
    progress: bool = True,
    **patch_kwargs,
):
    """Describe the H&E around every spot with one feature vector; writes ``obsm[key_added]``.

    Patches are cropped at the spot's true scale by :func:`senca.im.spot_patches` (one per ``context``
    multiplier of the spot diameter), turned into features by ``method`` and concatenated over contexts.

    The extractors:

    - ``"stats"`` (default, no deep learning): colour moments in RGB and in haematoxylin/eosin optical density
      (:func:`skimage.color.rgb2hed`), GLCM texture (vectorised, identical to :func:`skimage.feature.graycoprops`),
      uniform-LBP histograms (as :func:`skimage.feature.local_binary_pattern`), gradient, tissue fraction and a
      nuclear-density proxy (haematoxylin-rich pixel fraction, blob count and size): 60 features per context.
    - ``"cnn"``: a small plain-torch convolutional encoder trained self-supervised (SimCLR: invariance to flips,
      90-degree rotations, zoom-crops and colour/stain jitter) on the section's own patches, then applied to every
      spot; 64 features per context. ``method_kwargs`` go to :class:`senca.im.CNNExtractor` (``epochs``,
      ``width``, ``n_features``, ``lr``...; ``max_train_spots``, default 10,000: the encoder trains on a random
      subset of that many spots, then embeds all spots chunk by chunk).
    - ``"timm"``: a timm backbone (optional dependency) with its classifier removed: ``model_name`` (a timm name or
      a hub id such as ``"hf-hub:MahmoodLab/UNI"``), ``weights`` (a local weights file), batched on the best device.
    - a callable ``f(patches) -> features`` with ``patches`` of shape ``(n, size, size, 3)``, float32 RGB in
      ``[0, 1]``, returning ``(n, d)``.

    Parameters
    ----------
    data
        :class:`anndata.AnnData` (squidpy layout: ``obsm[spatial_key]`` in full-resolution pixels and
        ``uns["spatial"][library_id]`` with images and scale factors) or :class:`spatialdata.SpatialData` (image
        element, circles and the table ``table_key`` annotating them).
    method
        ``"stats"``, ``"cnn"``, ``"timm"`` or a callable (see above).
    key_added
        Key written in ``obsm`` (of the table, for SpatialData).
    context
        Patch side(s) in spot diameters; features of all contexts are concatenated.
    size
        Patch side in pixels (default 32 for ``"stats"``/``"cnn"``/callables, the model's input size for timm).
    seed
        Seeds every random source (CNN initialisation, shuffling and augmentation; ``"stats"`` is deterministic).
    overwrite
        Replace an existing ``obsm[key_added]``.
    copy
        Return a modified copy (AnnData, or a SpatialData sharing all elements but a copied table) instead of
        writing into ``data``.
    standardize
        ``True``: z-score every feature over all spots; ``"library"``: within each library; ``False``: raw values.
    missing_image
        Several libraries (``library_key``) of which some have no image, e.g. her2st B1 next to A1: ``"raise"``
        (default) or ``"nan"``, which gives their spots NaN rows (SpaCRD reads NaN rows as "no image for this spot";
        standardisation ignores them).
    library_id, library_key, img_key, spatial_key, table_key, chunk_size
        Where the image and spots are; see :func:`senca.im.spot_patches`.
    model_name, weights, pretrained, device
        ``method="timm"`` only: see :class:`senca.im.TimmExtractor`.
    method_kwargs
        Extra arguments of the ``"cnn"`` or ``"timm"`` extractor.
    progress
        Show a progress bar.
    **patch_kwargs
        Passed to :func:`senca.im.spot_patches` (``scale_factor``, ``spot_diameter``, ``value_range``,
        ``pad_mode``, ``pad_value``, ``coordinate_system``).

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes ``obsm[key_added]`` (``(n_obs, n_features)`` float32)
    and the parameters, feature names and timing in ``uns["senca"]["histology"]``.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=200, image=True, seed=0)
    >>> senca.im.extract_features(adata, method="stats", key_added="X_he", progress=False)
    >>> adata.obsm["X_he"].shape
    (200, 120)
    >>> adata.uns["senca"]["histology"]["method"]
    'stats'
    """
    t0 = time.perf_counter()
    if isinstance(method, str):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS} or a callable patches -> features, got {method!r}.")
        method_name = method
    elif callable(method):
        method_name = "callable:" + getattr(method, "__qualname__", type(method).__name__)
    else:
        raise TypeError(f"method must be a string {_METHODS} or a callable, got {type(method).__name__}.")
    if missing_image not in ("raise", "nan"):
        raise ValueError(f"missing_image must be 'raise' or 'nan', got {missing_image!r}.")
    if standardize not in (True, False, "library"):
        raise ValueError(f"standardize must be True, False or 'library', got {standardize!r}.")
    method_kwargs = dict(method_kwargs or {})

    sdata = data if is_spatialdata(data) else None
    if sdata is not None:
        if table_key not in sdata.tables:
            raise KeyError(
                f"Table {table_key!r} not in the SpatialData (tables: {list(sdata.tables)}); pass table_key=."
            )
        adata = sdata.tables[table_key]
        where = f"sdata.tables[{table_key!r}].obsm"
    else:
        if not (hasattr(data, "obsm") and hasattr(data, "uns")):
            raise TypeError(f"Expected an AnnData or a SpatialData, got {type(data).__name__}.")
        adata = data
        where = "adata.obsm"
    check_key_free(adata.obsm, key_added, where, overwrite)
    if method != "stats":  # "stats" is deterministic; seeding imports torch (seconds), so skip it there
        set_seed(seed)

    extractor = None
    if method == "timm":
        from ._timm import TimmExtractor

        extractor = TimmExtractor(model_name, weights=weights, pretrained=pretrained, device=device, **method_kwargs)
        size = extractor.input_size if size is None else size
    size = _DEFAULT_SIZE.get(method, 32) if size is None else size
    size, contexts, _, chunk_size = _check_args(
        size, context, chunk_size, patch_kwargs.get("pad_mode", "constant"), patch_kwargs.get("pad_value", 0.0)
    )
    pad_mode = patch_kwargs.pop("pad_mode", "constant")
    pad_value = patch_kwargs.pop("pad_value", 0.0)
    unknown = set(patch_kwargs) - {"scale_factor", "spot_diameter", "value_range", "coordinate_system"}
    if unknown:
        raise TypeError(f"extract_features got unexpected keyword arguments {sorted(unknown)}.")
    images = resolve_images(
        data,
        size=size,
        contexts=contexts,
        library_id=library_id,
        library_key=library_key,
        img_key=img_key,
        spatial_key=spatial_key,
        table_key=table_key,
        skip_missing=missing_image == "nan",
        **patch_kwargs,
    )
    n_obs = adata.n_obs
    n_spots = sum(len(si.rows) for si in images)
    if n_spots == 0:
        raise KeyError("No spot has an image: there is no H&E to extract features from.")
    if n_spots != n_obs and missing_image != "nan":
        raise ValueError(
            f"Only {n_spots} of {n_obs} spots have an image (library_id={library_id!r}); features must cover every "
            "spot. Pass library_key= so that every library is used, subset the data to the library first, or pass "
            "missing_image='nan' to give spots without an image NaN features."
        )

    def chunks():
        return _iterate(images, size, contexts, False, chunk_size, pad_mode, pad_value)

    bar = _progress(progress, n_obs, f"histology features ({method_name})")
    names: list[str]
    if method == "stats":
        from ._stats import stats_feature_names, stats_features

        def fn(p):
            return stats_features(p)

        names = stats_feature_names()
        feats = _run(chunks(), fn, n_obs, len(contexts), bar)
    elif method == "cnn":
        feats, names, extra = _run_cnn(chunks, images, contexts, n_obs, seed, method_kwargs, bar, progress)
        method_kwargs.update(extra)
    else:
        fn = extractor if extractor is not None else method
        feats = _run(chunks(), fn, n_obs, len(contexts), bar)
        names = [f"f{k}" for k in range(feats.shape[1] // len(contexts))]
    bar.close()
    covered = np.zeros(n_obs, dtype=bool)
    for si in images:
        covered[si.rows] = True
    if not np.isfinite(feats[covered]).all():
        raise ValueError(
            f"The {method_name} extractor returned NaN or infinite features for "
            f"{int((~np.isfinite(feats[covered]).all(1)).sum())} spots. Check the image for NaN pixels under those "
            "spots: fill them (e.g. np.nan_to_num(image, nan=1.0) for a white background) or drop the spots; a custom "
            "extractor must return finite numbers."
        )
    feats[~covered] = np.nan
    names = [f"{nm}_ctx{c:g}" for c in contexts for nm in names]
    if len(names) != feats.shape[1]:
        names = [f"f{k}" for k in range(feats.shape[1])]
    if standardize == "library":
        for si in images:
            feats[si.rows] = _zscore(feats[si.rows])
    elif standardize:
        feats[covered] = _zscore(feats[covered])
    seconds = time.perf_counter() - t0

    if copy:
        if sdata is not None:
            sdata = _shallow_copy_sdata(sdata, table_key)
            adata = sdata.tables[table_key]
        else:
            adata = adata.copy()
    adata.obsm[key_added] = feats.astype(np.float32)
    params = {
        "key_added": key_added,
        "method": method_name,
        "context": [float(c) for c in contexts],
        "size": int(size),
        "seed": int(seed),
        "standardize": str(standardize),
        "library_ids": [si.library_id for si in images],
        "n_spots_without_image": int((~covered).sum()),
        "spot_diameter_px": [float(si.diameter) for si in images],
        "feature_names": names,
        "n_features": int(feats.shape[1]),
        "seconds": float(seconds),
        "spots_per_second": float(n_obs / max(seconds, 1e-9)),
    }
    if method == "timm":
        params.update({"model_name": model_name, "weights": str(weights) if weights is not None else "hub"})
    params.update({f"method_{k}": v for k, v in method_kwargs.items() if isinstance(v, int | float | str | bool)})
    adata.uns.setdefault("senca", {})
    adata.uns["senca"]["histology"] = params
    if copy:
        return sdata if sdata is not None else adata
    return None


def _progress(enabled: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="spot", disable=not enabled, leave=False)


def _run(chunk_iter, fn, n_obs, n_ctx, bar) -> np.ndarray:
    out = None
    for rows, patches in chunk_iter:
        parts = []
        for c in range(n_ctx):
            f = np.asarray(fn(patches[:, c]))
            if f.ndim != 2 or f.shape[0] != len(rows):
                raise ValueError(
                    f"The feature extractor must return an array of shape (n_patches, n_features) = ({len(rows)}, d); "
                    f"got {f.shape}."
                )
            parts.append(f)
        f = np.concatenate(parts, axis=1).astype(np.float32)
        if out is None:
            out = np.empty((n_obs, f.shape[1]), dtype=np.float32)
        out[rows] = f
        bar.update(len(rows))
    return out


def _run_cnn(chunks, images, contexts, n_obs, seed, kwargs, bar, progress):
    from ._cnn import CNNExtractor

    max_train = int(kwargs.pop("max_train_spots", 10000))
    rng = np.random.default_rng(seed)
    train = np.zeros(n_obs, dtype=bool)
    train[rng.choice(n_obs, size=min(max_train, n_obs), replace=False)] = True
    keep_all = n_obs <= max_train
    kept_rows, kept = [], []
    for rows, patches in chunks():
        sel = train[rows]
        kept_rows.append(rows[sel])
        kept.append(patches[sel])
    kept_rows = np.concatenate(kept_rows)
    kept = np.concatenate(kept)  # (n_train, n_ctx, s, s, 3)
    model = CNNExtractor(seed=seed, **kwargs)
    epoch_bar = _progress(progress, model.epochs, "training patch encoder")
    model.fit(kept.reshape(-1, *kept.shape[2:]), progress=lambda: epoch_bar.update(1))
    epoch_bar.close()
    if keep_all:
        out = np.empty((n_obs, len(contexts) * model.n_features), dtype=np.float32)
        out[kept_rows] = np.concatenate([model.transform(kept[:, c]) for c in range(len(contexts))], axis=1)
        bar.update(n_obs)
    else:
        out = _run(chunks(), model.transform, n_obs, len(contexts), bar)
    names = [f"cnn{k}" for k in range(model.n_features)]
    extra = {"epochs": model.epochs, "final_loss": float(model.history_[-1]) if model.history_ else float("nan")}
    return out, names, extra


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(0)
    sd = x.std(0)
    sd[sd < 1e-8] = 1.0
    return ((x - mu) / sd).astype(np.float32)


def _shallow_copy_sdata(sdata, table_key):
    from spatialdata import SpatialData

    tables = dict(sdata.tables)
    tables[table_key] = tables[table_key].copy()
    return SpatialData(
        images=dict(sdata.images),
        labels=dict(sdata.labels),
        points=dict(sdata.points),
        shapes=dict(sdata.shapes),
        tables=tables,
    )
