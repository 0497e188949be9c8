"""Find a dataset file locally or download it with pooch, verifying it against the registry.

Search order for a file ``<dataset>/<path>`` (e.g. ``her2st/ST-cnts/A1.tsv.gz``):

1. the ``data_dir`` argument (the folder holding ``her2st/``, or the ``her2st`` folder itself);
2. ``$SENCA_DATA_DIR`` (same layout);
3. the user cache, ``$SENCA_CACHE_DIR`` or ``pooch.os_cache("senca")``;
4. a download into that cache from the original repository at a pinned commit, only for files whose sha256 is in
   ``registry.txt`` and only when downloads are allowed (``download=True``, or ``download=None`` and
   ``$SENCA_DOWNLOAD`` is not ``0``).

Every file with a registered hash is checked (size and sha256) wherever it was found.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path

from ._registry import BASE_URLS

_DOWNLOAD_ENV = "SENCA_DOWNLOAD"
_DATA_ENV = "SENCA_DATA_DIR"
_CACHE_ENV = "SENCA_CACHE_DIR"


@cache
def registry() -> dict[str, tuple[str, int]]:
    """``{local path: (sha256, size in bytes)}`` of every file senca can verify and download."""
    out = {}
    for line in files("senca.datasets").joinpath("registry.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path, sha, size = line.split()
        out[path] = (sha, int(size))
    return out


def cache_dir() -> Path:
    """The download cache: ``$SENCA_CACHE_DIR`` if set, else ``pooch.os_cache("senca")``."""
    env = os.environ.get(_CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("senca"))


def download_allowed(download: bool | None) -> bool:
    """Resolve the ``download`` argument: ``None`` means ``$SENCA_DOWNLOAD`` (default allowed)."""
    if download is None:
        return os.environ.get(_DOWNLOAD_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
    return bool(download)


def remote_url(path: str) -> str | None:
    """URL of a local-layout path in its original repository at the pinned commit (``None`` if unknown)."""
    dataset, _, rel = path.partition("/")
    base = BASE_URLS.get(dataset)
    if base is None:
        return None
    if dataset == "her2st" and rel.startswith("ST-"):
        rel = f"data/{rel}"  # her2st: ST-* folders live under data/ in the repository; app/ and res/ do not
    return base + rel


def data_env_dir() -> Path | None:
    """``$SENCA_DATA_DIR`` as an absolute path (``None`` when unset).

    A relative value (the README's ``SENCA_DATA_DIR=../shared/data``) is resolved here, against the working folder
    of the process that reads it, so that paths handed on (error messages, child processes that start in another
    folder) still point at the same data.
    """
    env = os.environ.get(_DATA_ENV)
    return Path(env).expanduser().resolve() if env else None


def search_roots(dataset: str, data_dir: str | os.PathLike | None) -> list[tuple[str, Path | None]]:
    """``[(label, dataset folder or None)]`` in search order: ``data_dir``, ``$SENCA_DATA_DIR``, cache."""
    roots: list[tuple[str, Path | None]] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser().resolve()
        # accept the parent of the dataset folder or the dataset folder itself
        roots.append(("data_dir", d if d.name == dataset and not (d / dataset).is_dir() else d / dataset))
    env = data_env_dir()
    roots.append((f"${_DATA_ENV}", env / dataset if env else None))
    roots.append(("cache", cache_dir() / dataset))
    return roots


@dataclass
class Lookup:
    """Where a file was searched, for one clear error message."""

    what: str
    places: list[str] = field(default_factory=list)

    def error(self, hint: str = "") -> FileNotFoundError:
        lines = "\n".join(f"  - {p}" for p in self.places)
        msg = f"{self.what} not found. Looked in:\n{lines}"
        if hint:
            msg += f"\n{hint}"
        return FileNotFoundError(msg)


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(local: Path, path: str) -> None:
    """Raise ``ValueError`` if ``local`` does not match the registered size and sha256 of ``path``."""
    entry = registry().get(path)
    if entry is None:
        return
    sha, size = entry
    actual_size = local.stat().st_size
    if actual_size != size:
        raise ValueError(
            f"{local} is corrupt or a different version: {actual_size} bytes, expected {size} "
            f"(the file {path!r} at the pinned commit). Delete it and copy or download it again."
        )
    actual = sha256sum(local)
    if actual != sha:
        raise ValueError(
            f"{local} is corrupt or a different version: sha256 {actual}, expected {sha}. "
            "Delete it and copy or download it again."
        )


def fetch(
    path: str,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    lookup: Lookup | None = None,
    raise_missing: bool = True,
) -> Path | None:
    """Return a verified local copy of ``path`` (local layout, e.g. ``"her2st/ST-cnts/A1.tsv.gz"``).

    Places searched are appended to ``lookup``; when nothing is found, raise its error (or return ``None`` with
    ``raise_missing=False``).
    """
    dataset, _, rel = path.partition("/")
    lookup = lookup if lookup is not None else Lookup(f"{dataset} file {rel!r}")
    for label, root in search_roots(dataset, data_dir):
        if root is None:
            lookup.places.append(f"{label}: (not set)")
            continue
        candidate = root / rel
        if candidate.is_file():
            verify(candidate, path)
            return candidate
        lookup.places.append(f"{label}: {candidate} (missing)")
    url = remote_url(path)
    entry = registry().get(path)
    if url is None or entry is None:
        lookup.places.append("download: no verified download is registered for this file")
    elif not download_allowed(download):
        lookup.places.append(f"download: {url} (downloads disabled: download=False or ${_DOWNLOAD_ENV}=0)")
    else:
        target = cache_dir() / path
        try:
            import pooch

            got = pooch.retrieve(
                url,
                known_hash=f"sha256:{entry[0]}",
                fname=target.name,
                path=target.parent,
                downloader=pooch.HTTPDownloader(timeout=60, progressbar=False),
            )
            return Path(got)
        except ValueError as e:  # pooch: the downloaded file does not match the registered hash (and is removed)
            if "hash" not in str(e).lower():
                raise
            raise ValueError(
                f"Downloaded {url} does not match its registered sha256 {entry[0]} (corrupt transfer or changed "
                f"file); nothing was kept in the cache. Retry, or place a verified copy under $SENCA_DATA_DIR/{path}. "
                f"Details: {e}"
            ) from e
        except Exception as e:  # noqa: BLE001 - reported in the error below, with every other place looked
            lookup.places.append(f"download: {url} (failed: {type(e).__name__}: {e})")
    if raise_missing:
        raise lookup.error(
            f"Fix: set ${_DATA_ENV} (or pass data_dir=) to a folder containing {dataset}/ with the original "
            "repository layout, or allow downloads (download=True, network access needed)."
        )
    return None


def find_local_glob(
    dataset: str, pattern: str, data_dir: str | os.PathLike | None, lookup: Lookup | None = None
) -> Path | None:
    """First local file matching ``pattern`` (relative to the dataset folder) in the search roots, or ``None``."""
    for label, root in search_roots(dataset, data_dir):
        if root is None:
            continue
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
        if lookup is not None:
            lookup.places.append(f"{label}: {root / pattern} (no match)")
    return None
