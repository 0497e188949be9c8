"""Input/output of the command line: read ``.h5ad``/``.zarr``, validate paths, write outputs atomically.

Nothing heavy is imported at module level: anndata and spatialdata are imported inside the functions, so that
``senca --help`` stays fast.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUFFIXES = (".h5ad", ".zarr")


class CLIError(Exception):
    """An error caused by the user's input: printed as one line, exit code 1 (never a traceback)."""


@dataclass
class Loaded:
    """An input read by :func:`read_input`: the AnnData to work on and, for ``.zarr``, its SpatialData."""

    path: Path
    adata: Any
    sdata: Any = None
    table_key: str = "table"
    obs_before: set = field(default_factory=set)
    obsm_before: set = field(default_factory=set)


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def check_input(path: str | os.PathLike) -> Path:
    """Check that ``path`` exists and has a supported extension; return it as a :class:`~pathlib.Path`."""
    p = Path(path)
    if _suffix(p) not in SUFFIXES:
        raise CLIError(f"unsupported input {str(p)!r}: expected a .h5ad file or a SpatialData .zarr directory")
    if not p.exists():
        raise CLIError(f"input not found: {str(p)!r}")
    if _suffix(p) == ".h5ad" and not p.is_file():
        raise CLIError(f"input {str(p)!r} is not a file")
    if _suffix(p) == ".zarr" and not p.is_dir():
        raise CLIError(f"input {str(p)!r} is not a SpatialData .zarr directory")
    return p


def check_output(path: str | os.PathLike, inputs: Iterable[Path] = (), overwrite: bool = False) -> Path:
    """Check an output path before any work is done.

    The extension must be ``.h5ad`` or ``.zarr``; an existing output, or an output that is one of the inputs, is
    refused unless ``overwrite``. The parent directory is created if needed.
    """
    p = Path(path)
    if _suffix(p) not in SUFFIXES:
        raise CLIError(f"unsupported output {str(p)!r}: the name must end in .h5ad or .zarr")
    resolved = p.resolve()
    for inp in inputs:
        if Path(inp).resolve() == resolved and not overwrite:
            raise CLIError(f"output {str(p)!r} is also an input; choose another output or pass --overwrite")
    if p.exists() and not overwrite:
        raise CLIError(f"output {str(p)!r} already exists; pass --overwrite to replace it")
    if p.exists() and (_suffix(p) == ".h5ad") != p.is_file():
        raise CLIError(f"output {str(p)!r} exists and is not a {'file' if _suffix(p) == '.h5ad' else 'directory'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output directory {str(p.parent)!r}: {e.strerror or e}") from None
    return p


def read_input(path: str | os.PathLike, table_key: str = "table") -> Loaded:
    """Read a ``.h5ad`` file or a SpatialData ``.zarr`` store (its table ``table_key``); refuse repeated spot names."""
    p = check_input(path)
    if _suffix(p) == ".h5ad":
        import anndata as ad

        try:
            adata = ad.read_h5ad(p)
        except Exception as e:  # noqa: BLE001 - any reader failure is a bad input, reported in one line
            raise CLIError(f"cannot read {str(p)!r} as AnnData: {_first_line(e)}") from None
        loaded = Loaded(path=p, adata=adata)
    else:
        import spatialdata as sd

        from senca.io import from_spatialdata

        try:
            sdata = sd.read_zarr(p)
        except Exception as e:  # noqa: BLE001
            raise CLIError(f"cannot read {str(p)!r} as SpatialData: {_first_line(e)}") from None
        if table_key not in sdata.tables:
            raise CLIError(
                f"{str(p)!r} has no table {table_key!r} (tables: {sorted(sdata.tables.keys())}); pass --table-key"
            )
        adata = from_spatialdata(sdata, table_key=table_key)
        loaded = Loaded(path=p, adata=adata, sdata=sdata, table_key=table_key)
    from senca._validate import check_unique_obs_names

    check_unique_obs_names(loaded.adata, f"{str(p)!r}")
    loaded.obs_before = set(loaded.adata.obs.columns)
    loaded.obsm_before = set(loaded.adata.obsm.keys())
    return loaded


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def replace_atomically(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path`` with :func:`os.replace`; an existing directory is swapped out first."""
    if path.is_dir() and not path.is_symlink():
        old = _tmp_sibling(path)
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        _remove(old)
    else:
        os.replace(tmp, path)


def write_output(loaded: Loaded | None, adata: Any, path: Path, keys: Sequence[str] = ()) -> None:
    """Write ``adata`` to ``path`` (``.h5ad``, or ``.zarr`` as SpatialData) through a temporary sibling.

    For a ``.zarr`` output from a ``.zarr`` input, the new ``obs``/``obsm`` entries of ``adata`` are copied into
    the input's table and the whole SpatialData is written; from a ``.h5ad`` input, the AnnData is converted with
    :func:`senca.io.to_spatialdata`. A failure leaves no partial output behind.
    """
    tmp = _tmp_sibling(path)
    try:
        if _suffix(path) == ".h5ad":
            adata.write_h5ad(tmp)
        else:
            if loaded is not None and loaded.sdata is not None:
                sdata = loaded.sdata
                table = sdata.tables[loaded.table_key]
                for key in adata.obs.columns:
                    if key not in loaded.obs_before or key in keys:
                        table.obs[key] = adata.obs[key].values  # positional: the table and adata share rows
                for key in adata.obsm.keys():
                    if key not in loaded.obsm_before or key in keys:
                        table.obsm[key] = adata.obsm[key]
            else:
                from senca.io import to_spatialdata

                sdata = to_spatialdata(adata)
            sdata.write(tmp)
        replace_atomically(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_savefig(fig: Any, path: Path, **kwargs: Any) -> None:
    """Save a matplotlib figure to ``path`` through a temporary sibling."""
    tmp = _tmp_sibling(path)
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _first_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = " ".join(str(msg).split())
    return msg or type(e).__name__


def one_line(e: BaseException) -> str:
    """The message of an exception on one line (KeyError without its quotes)."""
    return _first_line(e)
