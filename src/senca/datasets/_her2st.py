"""The her2st HER2-positive breast cancer dataset (legacy ST, 36 sections) read from its original files."""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._fetch import Lookup, fetch, find_local_glob, registry
from ._registry import HER2ST_COMMIT, HER2ST_FULLRES_DIMS

SECTIONS: tuple[str, ...] = tuple(HER2ST_FULLRES_DIMS)
"""All 36 her2st sections, ``A1`` ... ``H3``."""

_HIRES_WIDTH = 2000  # width of the "hires" image, like the her2st app PNGs
_SPOT_DIAMETER_UM = 100.0  # legacy ST: 100 um spots ...
_SPOT_PITCH_UM = 200.0  # ... 200 um centre to centre
_LABEL_CLASSES = (
    "invasive cancer",
    "cancer in situ",
    "connective tissue",
    "adipose tissue",
    "breast glands",
    "immune infiltrate",
    "undetermined",
)
_SPACRD_FILES = {"A1": "A", "B1": "B", "C1": "C", "D1": "D"}

_PathLike = str | os.PathLike


def _check_section(section: str) -> str:
    if not isinstance(section, str):
        raise TypeError(f"section must be a string such as 'A1', got {type(section).__name__}.")
    s = section.strip().upper()
    if s not in HER2ST_FULLRES_DIMS:
        raise ValueError(f"Unknown her2st section {section!r}. Valid sections: {', '.join(SECTIONS)}.")
    return s


def _corrupt(path: Path, e: Exception) -> ValueError:
    return ValueError(
        f"Could not parse {path}: {type(e).__name__}: {e}. The file is corrupt or truncated; "
        "delete it and copy or download it again."
    )


def _read_counts(path: Path) -> tuple[pd.Index, pd.Index, sp.csr_matrix]:
    """Spot ids, gene symbols and a float32 CSR count matrix from ``ST-cnts/{S}.tsv.gz``.

    Parsed with one ``np.fromstring`` call over all count fields (faster than a 15,000-column DataFrame).
    """
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
        header, _, body = raw.partition(b"\n")
        rows = [line.partition(b"\t") for line in body.split(b"\n") if line.strip()]
        genes = pd.Index(header.rstrip(b"\r").decode().split("\t")[1:])
        ids = pd.Index([r[0].decode() for r in rows])
        values = np.fromstring(b"\t".join(r[2] for r in rows).decode(), dtype=np.float32, sep="\t")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as e:
        raise _corrupt(path, e) from e
    if len(ids) == 0 or len(genes) == 0 or values.size != len(ids) * len(genes):
        raise _corrupt(path, ValueError(f"{values.size} count values for {len(ids)} spots x {len(genes)} genes"))
    x = values.reshape(len(ids), len(genes))
    if not np.isfinite(x).all() or (x < 0).any() or not np.array_equal(x, np.round(x)):
        raise _corrupt(path, ValueError("counts are not non-negative integers"))
    mask = x != 0
    rr, cc = np.nonzero(mask)
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return ids, genes, sp.csr_matrix((x[rr, cc], cc, indptr), shape=x.shape)


def _read_spots(path: Path) -> pd.DataFrame:
    """``ST-spotfiles/{S}_selection.tsv`` indexed by spot id ``"{x}x{y}"``."""
    try:
        df = pd.read_csv(path, sep="\t", engine="c")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise _corrupt(path, e) from e
    need = {"x", "y", "new_x", "new_y", "pixel_x", "pixel_y"}
    if not need <= set(df.columns):
        raise _corrupt(path, ValueError(f"missing columns {sorted(need - set(df.columns))}"))
    df.index = df["x"].astype(int).astype(str) + "x" + df["y"].astype(int).astype(str)
    return df[~df.index.duplicated()]


def _read_labels(path: Path) -> tuple[pd.Series, dict[str, int]]:
    """Pathologist labels indexed by spot id (label-file ``x, y`` rounded), in label-file order, and skipped rows.

    Real label files have rows that name no spot: coordinates written ``NA`` (E1-H1 of the original repository),
    no label, or a spot id that is already labelled. Those rows are skipped and counted (``{reason: n}``) for
    the caller's one warning. Whitespace around fields and Windows line endings are tolerated.
    """
    try:
        df = pd.read_csv(path, sep="\t", engine="c", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise _corrupt(path, e) from e
    df.columns = [str(c).strip() for c in df.columns]
    if not {"x", "y", "label"} <= set(df.columns):
        raise _corrupt(path, ValueError("expected columns x, y, label"))
    x, y = (pd.to_numeric(df[c].str.strip(), errors="coerce") for c in ("x", "y"))
    labels = df["label"].str.strip()
    no_xy = ~(np.isfinite(x) & np.isfinite(y))
    no_label = ~no_xy & labels.str.upper().isin(["", "NA", "NAN"])
    keep = ~(no_xy | no_label)
    ids = x[keep].round().astype(int).astype(str) + "x" + y[keep].round().astype(int).astype(str)
    s = pd.Series(labels[keep].to_numpy(), index=pd.Index(ids.to_numpy(), name="spot"), name="pathologist")
    dup = s.index.duplicated()
    s = s[~dup]
    skipped = {
        "no coordinates (NA)": int(no_xy.sum()),
        "no label": int(no_label.sum()),
        "a repeated spot": int(dup.sum()),
    }
    cats = [c for c in _LABEL_CLASSES if c in set(s)] + sorted(set(s) - set(_LABEL_CLASSES))
    return s.astype(pd.CategoricalDtype(cats)), skipped


def _warn_skipped(path: Path, n_rows: int, skipped: dict[str, int]) -> None:
    """One warning for all label rows that could not be matched to a spot (nothing when none)."""
    reasons = [f"{n} with {why}" for why, n in skipped.items() if n]
    if reasons:
        warnings.warn(
            f"{sum(skipped.values())} of the {n_rows} rows of {path.name} could not be matched to a spot and were "
            f"skipped ({', '.join(reasons)}); the other labels are used.",
            UserWarning,
            stacklevel=3,
        )


def _px_per_um(coords: np.ndarray) -> float:
    """Full-resolution pixels per micrometre from the median nearest-neighbour spot distance (200 um pitch)."""
    from scipy.spatial import cKDTree

    if len(coords) < 2:
        raise ValueError("Need at least two spots to estimate the spot spacing.")
    d, _ = cKDTree(coords).query(coords, k=2)
    return float(np.median(d[:, 1])) / _SPOT_PITCH_UM


def _image_sources(section: str) -> tuple[str, str]:
    patient = section[0]
    png = f"her2st/app/www/imgs/{section}_HE_image_dark.png"
    jpgs = [p for p in registry() if p.startswith(f"her2st/ST-imgs/{patient}/{section}/")]
    return png, (jpgs[0] if jpgs else "")


def _open_image(path: Path):
    from PIL import Image

    try:
        with warnings.catch_warnings():  # the full-res JPEGs (~92 Mpx) exceed PIL's decompression-bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
            im.size  # noqa: B018 - force header parsing
        return im
    except Exception as e:
        raise _corrupt(path, e) from e


def _load_image(path: Path, section: str, resolution: str) -> tuple[np.ndarray, float]:
    """Read an H&E image; return ``(uint8 RGB array, scale relative to the spot-file pixels)``."""
    from PIL import Image

    full_w, full_h, _ = HER2ST_FULLRES_DIMS[section]
    im = _open_image(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            w, h = im.size
            if path.suffix.lower() == ".png":  # an app PNG: already downscaled from the full-res frame
                return np.asarray(im if im.mode == "RGB" else im.convert("RGB")), w / full_w
            if (w, h) != (full_w, full_h):
                raise ValueError(
                    f"{path} is {w} x {h} px but the full-resolution image of {section} is {full_w} x {full_h} px "
                    "(app/data/dims.list); spot coordinates would not match. Use the original JPEG."
                )
            if resolution == "fullres":
                return np.asarray(im if im.mode == "RGB" else im.convert("RGB")), 1.0
            # decode at a JPEG-native reduction (1/2, 1/4, 1/8) >= the target size, then resample exactly
            im.draft("RGB", (_HIRES_WIDTH, round(h * _HIRES_WIDTH / w)))
            out_h = round(h * _HIRES_WIDTH / w)
            small = im.convert("RGB").resize((_HIRES_WIDTH, out_h), Image.Resampling.LANCZOS)
            return np.asarray(small), _HIRES_WIDTH / w
    except ValueError:
        raise
    except Exception as e:
        raise _corrupt(path, e) from e
    finally:
        im.close()


def _find_image(section: str, resolution: str, data_dir, download) -> Path:
    lookup = Lookup(f"H&E image of her2st section {section} (image={resolution!r})")
    png, jpg = _image_sources(section)
    if resolution == "hires":
        lookup.places.append(f"[app PNG {png.removeprefix('her2st/')}]")
        found = fetch(png, data_dir, download, lookup=lookup, raise_missing=False)
        if found is not None:
            return found
    if jpg:
        lookup.places.append(f"[full-resolution JPEG {jpg.removeprefix('her2st/')}]")
        found = fetch(jpg, data_dir, download, lookup=lookup, raise_missing=False)
    else:
        pattern = f"ST-imgs/{section[0]}/{section}/*.jpg"
        lookup.places.append(f"[full-resolution JPEG {pattern}; no verified download is registered]")
        found = find_local_glob("her2st", pattern, data_dir, lookup)
        if found is not None:
            size = HER2ST_FULLRES_DIMS[section][2]
            if found.stat().st_size != size:
                raise ValueError(
                    f"{found} has {found.stat().st_size} bytes but the original full-resolution JPEG of {section} "
                    f"has {size} (app/data/dims.list): corrupt or a different file. Replace it with the original."
                )
    if found is not None:
        return found
    have = ", ".join(
        s for s in SECTIONS if _image_sources(s)[1] or (resolution == "hires" and _image_sources(s)[0] in registry())
    )
    raise lookup.error(
        f"Sections with a registered {resolution} image: {have}. Pass image=None to load {section} without its "
        "image, or put the original her2st image under <data_dir>/her2st/ (the repository layout)."
    )


def her2st(
    section: str,
    image: str | None = "hires",
    data_dir: _PathLike | None = None,
    download: bool | None = None,
) -> AnnData:
    """Load one section of the her2st HER2-positive breast cancer dataset (legacy ST) from its original files.

    Andersson et al., Nat Commun 12, 6012 (2021); files of ``github.com/almaan/her2st`` at commit ``85df741``:
    counts ``ST-cnts/{S}.tsv.gz``, spots ``ST-spotfiles/{S}_selection.tsv``, pathologist labels
    ``ST-pat/lbl/{S}_labeled_coordinates.tsv`` (A1, B1, C1, D1, E1, F1, G2, H1) and the H&E image.

    Files are looked up in ``data_dir``, then ``$SENCA_DATA_DIR`` (each the folder holding ``her2st/``, laid out
    like the repository with ``data/`` removed), then the cache (``$SENCA_CACHE_DIR`` or ``pooch.os_cache("senca")``),
    and otherwise downloaded from the repository into the cache. Every file with a known sha256 (all counts, spot
    files, the label files, the A1/A2 app PNGs and the B4, C2-C6 JPEGs) is verified wherever it is found. A
    section whose registered label file is neither found nor downloadable loads without labels, with a warning.
    Label rows that match no spot (coordinates ``NA``, no label, a spot labelled twice, a spot with no count row:
    2 rows of A1, 1 of C1, 3 of D1) are skipped with one warning giving their number.

    Parameters
    ----------
    section
        Section name, ``"A1"`` ... ``"H3"`` (see :func:`her2st_sections`).
    image
        ``"hires"``: an image about 2,000 px wide, the her2st app PNG where there is one (A1, A2; background
        masked), else the full-resolution JPEG downscaled on load to 2,000 px wide (B4, C2-C6).
        ``"fullres"``: the original JPEG at scale 1.0 (B4, C2-C6; 9,300 x 9,900 px, ~280 MB in memory).
        ``None``: no image. Either image is stored under ``images["hires"]`` (see Returns).
    data_dir
        Folder containing ``her2st/`` (or the ``her2st`` folder itself).
    download
        Allow downloading missing files. ``None`` reads ``$SENCA_DOWNLOAD`` (``0`` disables; default allowed).

    Returns
    -------
    AnnData with one row per spot of the count file (count-file order) and one column per gene:

    - ``X`` and ``layers["counts"]``: raw UMI counts, CSR ``float32`` holding integers (exact below 2^24; float so
      that scanpy's in-place normalisation and log1p work; ``layers["counts"]`` is a separate copy).
    - ``obs`` index: spot id ``"{x}x{y}"``; ``array_col`` / ``array_row`` (integer ST array ``x`` / ``y``),
      ``array_col_adjusted`` / ``array_row_adjusted`` (the spot file's ``new_x`` / ``new_y``), ``section`` and
      ``patient`` (categorical), and ``pathologist`` (categorical, NaN-free on A1, B1, C1, D1; absent where there
      is no label file; labels matched by rounding the label file's ``x, y``).
    - ``obsm["spatial"]``: ``(x, y)`` in full-resolution H&E pixels (``pixel_x``, ``pixel_y`` of the spot file).
    - ``uns["spatial"][section]`` in the scanpy/squidpy layout: ``images`` = ``{"hires": uint8 (H, W, 3)}`` (empty
      with ``image=None``); ``scalefactors`` = ``{"tissue_hires_scalef": image px per full-res px,
      "spot_diameter_fullres": 100 um in full-res px}`` (the pixel size comes from the median nearest-neighbour
      spot distance = 200 um); ``metadata`` with ``image_file``, ``image_resolution`` (``"hires"`` or
      ``"fullres"``; a full-resolution image is stored under the ``"hires"`` key with ``tissue_hires_scalef=1`` so
      that ``squidpy.pl.spatial_scatter`` and ``scanpy.pl.spatial`` draw it with their defaults), ``px_per_um`` and
      ``source``. A hires pixel is ``obsm["spatial"] * tissue_hires_scalef``.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.her2st("A1")  # doctest: +SKIP
    >>> adata.shape  # doctest: +SKIP
    (346, 15045)
    >>> adata.obs["pathologist"].value_counts().iloc[0]  # doctest: +SKIP
    284
    >>> b1 = senca.datasets.her2st("B1", image=None)  # no H&E image is published with B1's labels  # doctest: +SKIP
    """
    section = _check_section(section)
    if image not in ("hires", "fullres", None):
        raise ValueError(f"image must be 'hires', 'fullres' or None, got {image!r}.")
    counts_path = fetch(f"her2st/ST-cnts/{section}.tsv.gz", data_dir, download)
    spots_path = fetch(f"her2st/ST-spotfiles/{section}_selection.tsv", data_dir, download)
    lookup = Lookup(f"Pathologist labels of her2st section {section}")
    labels_path = _labels_path(section, data_dir, download, lookup)
    if labels_path is None and f"her2st/ST-pat/lbl/{section}_labeled_coordinates.tsv" in registry():
        places = "; ".join(lookup.places)
        warnings.warn(
            f"{lookup.what} are published but were not found or could not be downloaded ({places}); {section} is "
            "loaded without obs['pathologist']. Put the file under $SENCA_DATA_DIR/her2st/ST-pat/lbl/ or allow "
            "downloads (download=True) to get them.",
            UserWarning,
            stacklevel=2,
        )
    image_path = _find_image(section, image, data_dir, download) if image is not None else None

    ids, genes, x = _read_counts(counts_path)
    if not genes.is_unique:
        raise ValueError(f"{counts_path} has duplicated gene names; the file is not the original her2st file.")
    spots = _read_spots(spots_path)
    missing = ids.difference(spots.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} spots of {counts_path.name} (e.g. {list(missing[:3])}) are not in {spots_path.name}; "
            "the files do not belong together."
        )
    spots = spots.loc[ids]
    obs = pd.DataFrame(
        {
            "array_row": spots["y"].astype(np.int64).to_numpy(),
            "array_col": spots["x"].astype(np.int64).to_numpy(),
            "array_row_adjusted": spots["new_y"].astype(np.float64).to_numpy(),
            "array_col_adjusted": spots["new_x"].astype(np.float64).to_numpy(),
            "section": pd.Categorical([section] * len(ids)),
            "patient": pd.Categorical([section[0]] * len(ids)),
        },
        index=pd.Index(ids, name=None),
    )
    if labels_path is not None:
        labels, skipped = _read_labels(labels_path)
        n_rows = sum(skipped.values()) + len(labels)
        skipped["no count row"] = len(labels.index.difference(ids))
        _warn_skipped(labels_path, n_rows, skipped)
        obs["pathologist"] = labels.reindex(ids).to_numpy()
        obs["pathologist"] = obs["pathologist"].astype(labels.dtype)
    coords = spots[["pixel_x", "pixel_y"]].to_numpy(dtype=np.float64)
    px_per_um = _px_per_um(coords)
    scalefactors: dict[str, float] = {"spot_diameter_fullres": _SPOT_DIAMETER_UM * px_per_um}
    images: dict[str, np.ndarray] = {}
    metadata = {
        "source": f"github.com/almaan/her2st@{HER2ST_COMMIT}",
        "px_per_um": px_per_um,
        "image_resolution": "none" if image is None else image,
    }
    if image_path is not None:
        arr, scale = _load_image(image_path, section, image)
        images["hires"] = arr
        scalefactors = {"tissue_hires_scalef": scale, **scalefactors}
        metadata["image_file"] = image_path.name

    adata = AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["counts"] = x.copy()
    adata.obsm["spatial"] = coords
    adata.uns["spatial"] = {section: {"images": images, "scalefactors": scalefactors, "metadata": metadata}}
    return adata


def _labels_path(section: str, data_dir, download, lookup: Lookup | None = None) -> Path | None:
    """The label file of ``section``, or ``None`` where there is none locally and none can be downloaded."""
    path = f"her2st/ST-pat/lbl/{section}_labeled_coordinates.tsv"
    if path not in registry():  # unregistered: use a local copy if present
        download = False
    return fetch(path, data_dir, download, lookup=lookup, raise_missing=False)


def her2st_labels(section: str, data_dir: _PathLike | None = None, download: bool | None = None) -> pd.Series:
    """Pathologist region labels of a her2st section, indexed by spot id ``"{x}x{y}"``.

    Labels are published for A1, B1, C1, D1, E1, F1, G2 and H1 (``ST-pat/lbl/{S}_labeled_coordinates.tsv``); the
    spot id comes from rounding the file's adjusted ``x, y``. A few labelled spots have no count row. Rows without
    coordinates (``NA``) or label, and repeats of a spot, are skipped with one warning giving their number. Seven
    classes: invasive cancer, cancer in situ, connective tissue, adipose tissue, breast glands, immune infiltrate,
    undetermined.

    Parameters
    ----------
    section
        A section with labels (see ``her2st_sections("labels")``).
    data_dir, download
        As in :func:`her2st`.

    Returns
    -------
    Categorical ``pd.Series`` named ``"pathologist"``, in label-file order.

    Examples
    --------
    >>> import senca
    >>> labels = senca.datasets.her2st_labels("B1")  # doctest: +SKIP
    >>> labels.value_counts()["breast glands"]  # doctest: +SKIP
    41
    """
    section = _check_section(section)
    lookup = Lookup(f"Pathologist labels of her2st section {section}")
    path = _labels_path(section, data_dir, download, lookup)
    if path is None:
        raise lookup.error(
            f"Sections with labels: {', '.join(her2st_sections('labels', data_dir=data_dir))} (registered for "
            "download or found locally). Put the file under $SENCA_DATA_DIR/her2st/ST-pat/lbl/, or allow downloads."
        )
    labels, skipped = _read_labels(path)
    _warn_skipped(path, sum(skipped.values()) + len(labels), skipped)
    return labels


def her2st_sections(kind: str = "all", data_dir: _PathLike | None = None, local_only: bool = False) -> list[str]:
    """List the her2st sections that can be loaded.

    Parameters
    ----------
    kind
        ``"all"`` (counts and spot file), ``"labels"`` (also pathologist labels) or ``"image"`` (also an H&E
        image, as used by ``her2st(section, image="hires")``).
    data_dir
        As in :func:`her2st`.
    local_only
        Only sections whose files are already on disk (``data_dir``, ``$SENCA_DATA_DIR``, cache). Otherwise a
        section also counts when its missing files have a verified download registered (none is fetched here).

    Returns
    -------
    Section names in dataset order (``A1``, ``A2``, ... ``H3``).

    Examples
    --------
    >>> import senca
    >>> senca.datasets.her2st_sections("labels")
    ['A1', 'B1', 'C1', 'D1', 'E1', 'F1', 'G2', 'H1']
    >>> senca.datasets.her2st_sections("image")
    ['A1', 'A2', 'B4', 'C2', 'C3', 'C4', 'C5', 'C6']
    """
    if kind not in ("all", "labels", "image"):
        raise ValueError(f"kind must be 'all', 'labels' or 'image', got {kind!r}.")
    from ._fetch import search_roots

    roots = [r for _, r in search_roots("her2st", data_dir) if r is not None]
    reg = registry()

    def available(rel: str) -> bool:
        if not local_only and f"her2st/{rel}" in reg:
            return True
        return any((r / rel).is_file() for r in roots)

    def has_image(s: str) -> bool:
        png, jpg = _image_sources(s)
        if available(png.removeprefix("her2st/")) or (jpg and available(jpg.removeprefix("her2st/"))):
            return True
        return any(any(r.glob(f"ST-imgs/{s[0]}/{s}/*.jpg")) for r in roots)

    out = []
    for s in SECTIONS:
        if not (available(f"ST-cnts/{s}.tsv.gz") and available(f"ST-spotfiles/{s}_selection.tsv")):
            continue
        if kind == "labels" and not available(f"ST-pat/lbl/{s}_labeled_coordinates.tsv"):
            continue
        if kind == "image" and not has_image(s):
            continue
        out.append(s)
    return out


def spacrd_labels(section: str, data_dir: _PathLike | None = None, download: bool | None = None) -> pd.Series:
    """SpaCRD's binary cancer-region labels (1 = cancer) of her2st A1, B1, C1 or D1, indexed by spot id.

    The files (``spacrd_labels/data/{A,B,C,D}_label.txt`` of ``github.com/wenwenmin/SpaCRD`` at commit
    ``91eebc1``) carry no spot ids: values follow the row order of the her2st count file, which is read to index
    them. They are close to, but not identical with, cancer = {invasive cancer, cancer in situ} of the
    pathologist labels (agreement 94-99 %).

    Parameters
    ----------
    section
        ``"A1"``, ``"B1"``, ``"C1"`` or ``"D1"``.
    data_dir, download
        As in :func:`her2st` (the folder holding ``spacrd_labels/`` and ``her2st/``).

    Returns
    -------
    ``pd.Series`` of ``int8`` 0/1 named ``"spacrd_cancer"``, in count-file order.

    Examples
    --------
    >>> import senca
    >>> y = senca.datasets.spacrd_labels("A1")  # doctest: +SKIP
    >>> int(y.sum()), len(y)  # doctest: +SKIP
    (311, 346)
    """
    section = _check_section(section)
    if section not in _SPACRD_FILES:
        raise ValueError(f"SpaCRD labels exist for {', '.join(_SPACRD_FILES)} only, not {section}.")
    path = fetch(f"spacrd_labels/data/{_SPACRD_FILES[section]}_label.txt", data_dir, download)
    try:
        values = np.array(path.read_text().split(), dtype=np.int8)
    except (ValueError, UnicodeDecodeError) as e:
        raise _corrupt(path, e) from e
    counts_path = fetch(f"her2st/ST-cnts/{section}.tsv.gz", data_dir, download)
    try:
        ids = pd.read_csv(counts_path, sep="\t", usecols=[0], engine="c").iloc[:, 0].astype(str)
    except (OSError, EOFError, zlib.error, pd.errors.ParserError) as e:
        raise _corrupt(counts_path, e) from e
    if len(values) != len(ids) or not np.isin(values, (0, 1)).all():
        raise ValueError(
            f"{path} has {len(values)} values (expected {len(ids)} zeros and ones, one per row of "
            f"{counts_path.name}); the file is corrupt or from another version."
        )
    return pd.Series(values, index=pd.Index(ids.to_numpy(), name="spot"), name="spacrd_cancer")
