"""Small helpers shared across senca: seeding, safe writes into AnnData, input checks."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

import numpy as np


def set_seed(seed: int | None) -> None:
    """Seed every random source senca uses: Python, numpy, torch and scvi-tools/Lightning.

    ``None`` leaves the generators untouched.
    """
    if seed is None:
        return
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    torch.manual_seed(seed)
    try:  # scvi.settings.seed also seeds Lightning; only import scvi if it is already loaded
        import sys

        if "scvi" in sys.modules:
            with quiet_scvi():  # Lightning's "Seed set to" says nothing the caller did not ask for
                sys.modules["scvi"].settings.seed = seed
    except Exception:  # noqa: BLE001 - seeding must never fail because of a settings quirk
        pass


def layer_names(adata) -> list[str]:
    """The names of ``adata.layers``, for messages (anndata 0.13 also lists ``X`` there, under the key ``None``)."""
    return [key for key in adata.layers if key is not None]


def sample_groups(adata, sample_key: str | None) -> np.ndarray | None:
    """Each spot's sample as a string array (``None`` without a ``sample_key``); a clear error if the column is missing.

    Examples
    --------
    >>> import senca
    >>> from senca._utils import sample_groups
    >>> adata = senca.datasets.synthetic(n_spots=50, seed=0)
    >>> sample_groups(adata, None) is None
    True
    """
    if sample_key is None:
        return None
    if sample_key not in adata.obs:
        raise KeyError(f"adata.obs[{sample_key!r}] not found; pass an existing sample_key or None.")
    return adata.obs[sample_key].astype(str).to_numpy()


def check_key_free(mapping: MutableMapping, key: str, where: str, overwrite: bool) -> None:
    """Raise if ``key`` already exists in ``mapping`` (e.g. ``adata.obs``) and ``overwrite`` is False.

    Parameters
    ----------
    mapping
        ``adata.obs``, ``adata.obsm``, ``adata.uns`` ... anything with ``in``.
    key
        Key about to be written.
    where
        Human-readable location used in the message, e.g. ``"adata.obs"``.
    overwrite
        Whether replacing an existing key is allowed.
    """
    if not overwrite and key in mapping:
        raise ValueError(
            f"{where}[{key!r}] already exists. Pass overwrite=True to replace it, or choose another key_added."
        )


def set_owned(mapping: MutableMapping, key: str, value, where: str, overwrite: bool, alternative: str = "") -> None:
    """Write ``value`` (a key a setup owns) to ``mapping[key]``, refusing to replace other values without ``overwrite``.

    Writing the same values again (the same setup twice) is allowed: nothing changes.

    Parameters
    ----------
    mapping
        ``adata.obs`` or ``adata.obsm``.
    key
        Key written.
    value
        Array with one row per spot.
    where
        Human-readable location used in the message, e.g. ``"adata.obsm"``.
    overwrite
        Replace different existing values.
    alternative
        The other way out, for the message (e.g. ``", or pass neighbors_key= another key"``).
    """
    if key in mapping and not overwrite:
        old = np.asarray(mapping[key])
        new = np.asarray(value)
        if old.shape != new.shape or not np.array_equal(old, new):
            raise ValueError(
                f"{where}[{key!r}] already exists and holds other values (an earlier setup with other settings, data "
                f"subset since, or your own data under that name). Pass overwrite=True to replace it{alternative}."
            )
    mapping[key] = value


def get_rep(adata, use_rep: str) -> np.ndarray:
    """Return ``adata.obsm[use_rep]`` (or ``adata.X`` for ``"X"``) as a dense float array, with a clear error."""
    if use_rep == "X":
        x = adata.X
    elif use_rep in adata.obsm:
        x = adata.obsm[use_rep]
    else:
        raise KeyError(
            f"adata.obsm[{use_rep!r}] not found (available: {sorted(adata.obsm.keys())}). "
            "Compute the representation first, e.g. adata.obsm['X_senca'] = model.get_latent_representation()."
        )
    if hasattr(x, "toarray"):
        x = x.toarray()
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{use_rep!r} contains NaN or infinite values; remove or impute those spots first.")
    return x


def table_of(data, cls=None, table_key: str | None = None):
    """The AnnData to use: ``data`` itself, or a table of a SpatialData object.

    Parameters
    ----------
    data
        An AnnData, a SpatialData, or ``None`` (returned as is).
    cls
        A senca model class: a SpatialData's table registered with it (``setup_spatialdata``) is chosen.
    table_key
        Name of the table to use (overrides the search).

    Returns
    -------
    The AnnData (a table of ``data`` is returned by reference, so results written into it land in ``data``).
    """
    from anndata import AnnData

    if data is None or isinstance(data, AnnData):
        return data
    tables = getattr(data, "tables", None)
    if tables is None:
        raise TypeError(f"Expected an AnnData or a SpatialData object, got {type(data).__name__}.")
    name = "the model" if cls is None else cls.__name__
    if table_key is not None:
        if table_key not in tables:
            raise KeyError(f"sdata.tables[{table_key!r}] not found (tables: {list(tables)}); pass table_key=.")
        return tables[table_key]
    if cls is not None:
        for table in tables.values():
            if cls._get_most_recent_anndata_manager(table, required=False) is not None:
                return table
    if len(tables) == 1:
        return next(iter(tables.values()))
    raise ValueError(
        f"Cannot tell which table of this SpatialData to use ({list(tables)}); call "
        f"{name}.setup_spatialdata(sdata, table_key=...) first, or pass sdata.tables[table_key]."
    )


@contextmanager
def quiet_scvi() -> Iterator[None]:
    """Silence scvi-tools' and Lightning's INFO chatter inside the block.

    scvi-tools' "Generating sequential column names", Lightning's "Seed set to", "GPU available", "TPU available"
    and its logger tips say nothing about senca's data or results; warnings and errors still come through.
    """
    import logging

    loggers = [logging.getLogger(name) for name in ("scvi", "lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


#: Lightning's messages during senca's training that do not apply to it: in-memory minibatches need no loader
#: workers, a small section has fewer minibatches than Lightning's logging interval (the epoch's losses are still
#: logged), and two messages of its logger plumbing.
TRAINING_NOISE = (
    ".*does not have many workers.*",
    ".*smaller than the logging interval.*",
    ".*LeafSpec.*",
    ".*litlogger.*",
)


@contextmanager
def restore_torch_flags() -> Iterator[None]:
    """Put torch's global determinism flags back as they were (Lightning's ``deterministic=True`` sets them).

    Examples
    --------
    >>> import torch
    >>> from senca._utils import restore_torch_flags
    >>> with restore_torch_flags():
    ...     torch.use_deterministic_algorithms(True)
    >>> torch.are_deterministic_algorithms_enabled()
    False
    """
    import torch

    state = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(state[0], warn_only=state[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def spatialdata_table(sdata, table_key: str, spatial_key: str):
    """The table ``sdata.tables[table_key]`` for ``setup_spatialdata``, checked to hold the spot coordinates.

    Examples
    --------
    >>> spatialdata_table(sdata, "table", "spatial")  # doctest: +SKIP
    """
    if getattr(sdata, "tables", None) is None:
        raise TypeError(f"setup_spatialdata expects a SpatialData object, got {type(sdata).__name__}.")
    table = table_of(sdata, table_key=table_key)
    if spatial_key not in table.obsm:
        raise KeyError(
            f"sdata.tables[{table_key!r}].obsm[{spatial_key!r}] (spot coordinates) not found; store the spot "
            "centres there (senca.io.from_spatialdata does) or pass spatial_key=."
        )
    return table
