"""Input checks shared by the public entry points: fail early, name the problem and the fix.

Each check raises :class:`ValueError`, :class:`TypeError` or :class:`KeyError` with a message that says what is
wrong and what to do about it. None of them modifies its input. Kept free of scvi/lightning/torch imports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from senca._utils import layer_names, sample_groups

__all__ = [
    "check_counts",
    "check_features",
    "check_not_backed",
    "check_same_genes",
    "check_setup",
    "check_unique_obs_names",
]


def check_not_backed(adata: Any, layer: str | None, who: str) -> None:
    """Raise a clear error when the counts to read are an on-disk (backed) ``X``.

    anndata keeps only ``X`` on disk in backed mode (layers and obsm are loaded), so ``layer=...`` works on a
    backed AnnData; ``X`` itself cannot be validated or gathered by row efficiently.

    Parameters
    ----------
    adata
        The AnnData.
    layer
        Layer holding the counts; ``None`` means ``X``.
    who
        Caller name used in the message, e.g. ``"SENCA.setup_anndata"``.

    Examples
    --------
    >>> import senca
    >>> from senca._validate import check_not_backed
    >>> check_not_backed(senca.datasets.synthetic(n_spots=50), None, "SENCA.setup_anndata")
    """
    if layer is None and getattr(adata, "isbacked", False):
        raise ValueError(
            f"{who}: adata is backed (on disk) and the counts are in adata.X, which stays on disk. Load it with "
            "adata = adata.to_memory(), or keep the counts in a layer (layers are loaded) and pass layer=."
        )


def check_unique_obs_names(adata: Any, who: str) -> None:
    """Raise a clear error when ``adata.obs_names`` repeat.

    Results go back by spot name (SpatialData tables, label joins, user merges of the outputs), so a repeated
    name could put one spot's result on another. Sections concatenated by hand are the usual cause.

    Parameters
    ----------
    adata
        The AnnData.
    who
        Caller name used in the message, e.g. ``"SENCA.setup_anndata"``.

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> from senca._validate import check_unique_obs_names
    >>> a = ad.AnnData(np.zeros((3, 1)))
    >>> a.obs_names = ["s1", "s2", "s1"]
    >>> check_unique_obs_names(a, "SENCA.setup_anndata")
    Traceback (most recent call last):
    ...
    ValueError: SENCA.setup_anndata: 1 of the 3 spot names (adata.obs_names) are repeated (e.g. ['s1']); results are written back and joined by name and could land on the wrong spot. Make them unique first: adata.obs_names_make_unique() (or prefix each section's names, as senca.pp.concat_sections does).
    """  # noqa: E501
    names = adata.obs_names
    if names.is_unique:
        return
    dup = names[names.duplicated()]
    raise ValueError(
        f"{who}: {len(dup)} of the {len(names)} spot names (adata.obs_names) are repeated (e.g. "
        f"{list(dup.unique()[:3])}); results are written back and joined by name and could land on the wrong spot. "
        "Make them unique first: adata.obs_names_make_unique() (or prefix each section's names, as "
        "senca.pp.concat_sections does)."
    )


def _values(x: Any, where: str) -> np.ndarray:
    if sp.issparse(x):
        data = x.data
    elif hasattr(x, "dtype") and hasattr(x, "shape") and not isinstance(x, np.ndarray) and hasattr(x, "to_memory"):
        raise ValueError(f"{where} is an on-disk array; load the AnnData with adata.to_memory() first.")
    else:
        data = np.asarray(x)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise TypeError(f"{where} must be numeric, got dtype {data.dtype}; store numbers (e.g. float32) there.")
    return data


def check_counts(x: Any, where: str, who: str = "senca") -> None:
    """Raise unless ``x`` holds raw counts: finite, non-negative, integer-valued (dense or sparse).

    Parameters
    ----------
    x
        Dense array or scipy sparse matrix, e.g. ``adata.layers["counts"]``.
    where
        Where ``x`` comes from, used in the message (e.g. ``"adata.layers['counts']"``).
    who
        Method name used in the message.

    Examples
    --------
    >>> import numpy as np
    >>> from senca._validate import check_counts
    >>> check_counts(np.array([[0, 3], [1, 2]]), "adata.X")
    >>> check_counts(np.array([[0.5, 3]]), "adata.X")
    Traceback (most recent call last):
    ...
    ValueError: adata.X is not integer counts (normalised or log data?); senca models raw counts: pass the layer that holds them, e.g. layer='counts'.
    """  # noqa: E501
    data = _values(x, where)
    if data.size == 0:
        return
    if not np.isfinite(data).all():
        raise ValueError(f"{where} contains NaN or infinite values; remove or impute those spots first.")
    if data.min() < 0:
        raise ValueError(f"{where} has negative values; {who} needs raw counts (pass layer='counts').")
    if not np.array_equal(data, np.round(data)):
        raise ValueError(
            f"{where} is not integer counts (normalised or log data?); {who} models raw counts: pass the layer that "
            "holds them, e.g. layer='counts'."
        )


def check_features(x: Any, where: str, allow_nan: bool = False) -> None:
    """Raise unless ``x`` is a finite 2-D numeric feature matrix.

    Parameters
    ----------
    x
        ``(n_obs, n_features)`` array, e.g. ``adata.obsm["X_histology"]``.
    where
        Where ``x`` comes from, used in the message.
    allow_nan
        Accept NaN (SpaCRD: a row with NaN is a spot without an image); infinities are still errors.

    Examples
    --------
    >>> import numpy as np
    >>> from senca._validate import check_features
    >>> check_features(np.zeros((3, 2)), "adata.obsm['X_histology']")
    """
    if np.ndim(x) != 2:
        raise ValueError(f"{where} must be 2-D (n_obs, n_features), got shape {np.shape(x)}.")
    if sp.issparse(x):
        x = x.toarray()
    data = _values(x, where)
    if allow_nan:
        if np.isinf(data).any():
            raise ValueError(
                f"{where} contains infinite values; replace them (NaN marks a spot without an image) or drop those "
                "spots."
            )
        return
    if not np.isfinite(data).all():
        raise ValueError(f"{where} contains NaN or infinite values; remove or impute those spots first.")


def check_same_genes(query_genes, model_genes, who: str = "model") -> None:
    """Raise unless the query has exactly the model's genes in the model's order (positional models).

    Parameters
    ----------
    query_genes, model_genes
        ``var_names`` of the query and of the training data.
    who
        Name used in the message.

    Examples
    --------
    >>> from senca._validate import check_same_genes
    >>> check_same_genes(["a", "b"], ["a", "b"])
    >>> check_same_genes(["b", "a"], ["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: The query has the model's genes in another order; reorder it: adata = adata[:, genes].copy() with genes = the training data's var_names (2 genes).
    """  # noqa: E501
    import pandas as pd

    q, m = pd.Index(query_genes), pd.Index(model_genes)
    if q.equals(m):
        return
    missing = m.difference(q)
    fix = f"adata = adata[:, genes].copy() with genes = the training data's var_names ({len(m)} genes)"
    if len(missing) == 0 and len(q) == len(m):
        raise ValueError(f"The query has the {who}'s genes in another order; reorder it: {fix}.")
    if len(missing) == len(m):
        raise ValueError(
            f"The query shares none of the {who}'s {len(m)} genes (query: {list(q[:3])}..., {who}: {list(m[:3])}...). "
            "Use the same gene identifiers (symbols vs Ensembl ids)."
        )
    raise ValueError(
        f"The query lacks {len(missing)} of the {who}'s {len(m)} genes (e.g. {list(missing[:5])}) or has extra ones; "
        f"subset it to the training genes, adding missing ones as zero counts: {fix}."
    )


def check_setup(
    adata: Any,
    who: str,
    layer: str | None,
    spatial_key: str,
    sample_key: str | None = None,
    features: dict[str, str | None] | None = None,
    allow_nan: bool = False,
) -> Any:
    """The checks every entry point that reads a section's counts runs first; returns the counts and the samples.

    The keys must exist (layer, coordinates, sample column, feature ``obsm`` keys), the counts must be in memory and
    be counts (:func:`check_counts`), spot names must be unique (:func:`check_unique_obs_names`) and the features
    finite (:func:`check_features`).

    Parameters
    ----------
    adata
        The AnnData.
    who
        Caller name used in the messages, e.g. ``"SENCA.setup_anndata"``; its part before the dot names the model.
    layer
        Layer holding the counts; ``None`` means ``X``.
    spatial_key
        ``adata.obsm`` key of the spot coordinates.
    sample_key
        ``adata.obs`` column naming the sections, or ``None``.
    features
        Argument name -> ``adata.obsm`` key of per-spot features (``None`` values are skipped), e.g.
        ``{"image_key": "X_histology"}``.
    allow_nan
        Whether feature rows may be all NaN (spots without an image).

    Returns
    -------
    ``(counts, groups)``: ``adata.X`` or ``adata.layers[layer]``, and each spot's sample as strings
    (:func:`senca._utils.sample_groups`; ``None`` without a ``sample_key``).

    Examples
    --------
    >>> import senca
    >>> from senca._validate import check_setup
    >>> adata = senca.datasets.synthetic(n_spots=50, seed=0)
    >>> counts, groups = check_setup(adata, "SENCA.setup_anndata", "counts", "spatial")
    >>> counts.shape, groups
    ((50, 200), None)
    >>> check_setup(adata, "SENCA.setup_anndata", "raw", "spatial")
    Traceback (most recent call last):
    ...
    KeyError: "adata.layers['raw'] not found (layers: ['counts']); pass layer=None for X."
    """
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"adata.layers[{layer!r}] not found (layers: {layer_names(adata)}); pass layer=None for X.")
    if spatial_key not in adata.obsm:
        raise KeyError(
            f"adata.obsm[{spatial_key!r}] (spot coordinates) not found (available: {sorted(adata.obsm)}); "
            "pass spatial_key=."
        )
    groups = sample_groups(adata, sample_key)
    for what, key in (features or {}).items():
        if key is None:
            continue
        if key not in adata.obsm:
            raise KeyError(
                f"{what}={key!r} is not in adata.obsm (available: {sorted(adata.obsm)}); compute it first "
                "(e.g. senca.im.extract_features) or pass None."
            )
        check_features(adata.obsm[key], f"adata.obsm[{key!r}]", allow_nan=allow_nan)
    check_not_backed(adata, layer, who)
    check_unique_obs_names(adata, who)
    counts = adata.X if layer is None else adata.layers[layer]
    check_counts(counts, "adata.X" if layer is None else f"adata.layers[{layer!r}]", who.split(".")[0])
    return counts, groups
