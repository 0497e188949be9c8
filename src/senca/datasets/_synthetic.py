"""A synthetic Visium-like tissue: hex grid, spatial regions, negative-binomial counts, histology."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

# H&E-like base colours (RGB, 0-255) for histology programmes: eosin-rich stroma, dense nuclei, fat, ...
_HE_COLOURS = np.array(
    [[230, 160, 200], [120, 70, 160], [245, 235, 240], [200, 110, 170], [160, 90, 190], [215, 190, 215]],
    dtype=np.float64,
)


def synthetic(
    n_spots: int = 1000,
    n_genes: int = 200,
    n_regions: int = 4,
    n_histology: int = 32,
    expression_map: Sequence[int] | None = None,
    histology_map: Sequence[int] | None = None,
    layout: str = "voronoi",
    fold_change: float = 3.0,
    frac_marker_genes: float = 0.1,
    histology_effect: float = 1.5,
    dispersion: float = 5.0,
    mean_library_size: float = 2000.0,
    image: bool = False,
    hires_scalef: float = 0.25,
    library_id: str = "synthetic",
    seed: int = 0,
    programme_seed: int | None = None,
) -> AnnData:
    """Simulate one Visium-like section with known regions.

    Spots sit on a hexagonal grid (100 px centre to centre, 55 px spot diameter, in full-resolution
    pixels). The tissue is cut into ``n_regions`` spatial regions; each region has an *expression
    programme* (which marker genes are up) and a *histology programme* (the mean of its histology
    features and the colour/texture of its image). By default region ``r`` uses programme ``r`` for
    both; ``expression_map``/``histology_map`` decouple them, e.g. ``expression_map=[0, 1, 2, 2]``
    with ``histology_map=[0, 0, 1, 2]`` gives two regions that look alike but express differently and
    two that express alike but look different. Counts are drawn in chunks of spots into a sparse matrix, so memory
    follows the non-zero counts (a 500,000 × 2,000 section of 500 UMIs per spot, ``X`` and its copy in
    ``layers["counts"]``, peaks at 3.4 GB).

    Parameters
    ----------
    n_spots
        Approximate number of spots (the grid is the nearest square-ish hex grid).
    n_genes
        Number of genes.
    n_regions
        Number of spatial regions.
    n_histology
        Dimension of ``obsm["X_histology"]``.
    expression_map
        Expression programme of each region (length ``n_regions``); default ``range(n_regions)``.
    histology_map
        Histology programme of each region; default ``range(n_regions)``.
    layout
        ``"voronoi"`` (regions around random centres), ``"stripes"`` (vertical bands) or ``"quadrants"``
        (four regions only).
    fold_change
        Up-regulation of a programme's marker genes.
    frac_marker_genes
        Fraction of genes that are markers of each programme.
    histology_effect
        Distance between histology programme means, in units of the per-spot noise.
    dispersion
        Negative-binomial inverse dispersion ``theta``.
    mean_library_size
        Mean total counts per spot.
    image
        Also paint an H&E-like RGB image (``uns["spatial"][library_id]["images"]["hires"]``) whose colour and
        texture follow the histology programmes.
    hires_scalef
        Scale of that image relative to full-resolution pixels.
    library_id
        Key in ``uns["spatial"]`` and value of ``obs["section"]``.
    seed
        Random seed.
    programme_seed
        Seed of the programmes alone (the marker genes and baseline of each expression programme, the centre of
        each histology programme). Sections simulated with different ``seed`` and the same ``programme_seed`` differ
        in layout, depth and noise but share their programmes, as sections of one tissue type do: a model trained on
        some of them can be scored on another. ``None``: drawn from ``seed`` (each section its own programmes).

    Returns
    -------
    AnnData with raw counts in ``X`` and ``layers["counts"]`` (sparse CSR, int), ``obs["region"]``,
    ``obs["expression_program"]``, ``obs["histology_program"]``, ``obs["section"]``,
    ``obsm["spatial"]`` (full-resolution pixels, x/y), ``obsm["X_histology"]`` and, with ``image=True``,
    ``uns["spatial"]`` in the squidpy layout.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=500, n_regions=4, seed=0)
    >>> adata.shape
    (500, 200)
    """
    for name, value, low in (("n_spots", n_spots, 1), ("n_genes", n_genes, 1), ("n_regions", n_regions, 1)):
        if int(value) < low:
            raise ValueError(f"{name} must be >= {low}, got {value}.")
    if int(n_regions) > int(n_spots):
        raise ValueError(f"n_regions={n_regions} exceeds n_spots={n_spots}; ask for fewer regions or more spots.")
    if int(n_histology) < 0 or not (dispersion > 0 and mean_library_size > 0 and fold_change > 0):
        raise ValueError("n_histology must be >= 0 and dispersion, mean_library_size and fold_change must be > 0.")
    if not 0 <= frac_marker_genes <= 1:
        raise ValueError(f"frac_marker_genes must be in [0, 1], got {frac_marker_genes}.")
    rng = np.random.default_rng(seed)
    expression_map = np.arange(n_regions) if expression_map is None else np.asarray(expression_map)
    histology_map = np.arange(n_regions) if histology_map is None else np.asarray(histology_map)
    if len(expression_map) != n_regions or len(histology_map) != n_regions:
        raise ValueError("expression_map and histology_map need one entry per region (length n_regions).")

    n_cols = max(2, int(np.ceil(np.sqrt(n_spots * 2 / np.sqrt(3)))))
    n_rows = int(np.ceil(n_spots / n_cols))
    rows, cols = np.divmod(np.arange(n_spots), n_cols)
    pitch = 100.0
    x = (cols + 0.5 * (rows % 2)) * pitch + 200.0
    y = rows * pitch * np.sqrt(3) / 2 + 200.0
    coords = np.column_stack([x, y])

    width, height = (n_cols + 1) * pitch + 400.0, (n_rows + 1) * pitch * np.sqrt(3) / 2 + 400.0
    region = _assign_regions(coords, n_regions, layout, width, height, rng)

    # expression
    prog_rng = rng if programme_seed is None else np.random.default_rng(programme_seed)
    n_prog_e = int(expression_map.max()) + 1
    base = prog_rng.lognormal(mean=0.0, sigma=1.0, size=n_genes)
    base /= base.sum()
    log_fc = np.zeros((n_prog_e, n_genes))
    n_markers = max(1, int(frac_marker_genes * n_genes))
    for p in range(n_prog_e):
        log_fc[p, prog_rng.choice(n_genes, n_markers, replace=False)] = np.log(fold_change)
    prog_e = expression_map[region]
    # one expression profile per programme (not per spot): the spots' means are built chunk by chunk below
    profile = base * np.exp(log_fc)
    profile /= profile.sum(1, keepdims=True)
    library = rng.lognormal(np.log(mean_library_size), 0.3, size=n_spots)
    counts = _negative_binomial_counts(profile, prog_e, library, dispersion, rng)

    # histology features
    n_prog_h = int(histology_map.max()) + 1
    prog_h = histology_map[region]
    centres = prog_rng.normal(size=(n_prog_h, n_histology))
    centres *= histology_effect * np.sqrt(2.0) / np.sqrt(max(n_histology, 1)) * 2.0
    hist = centres[prog_h] + rng.normal(size=(n_spots, n_histology))

    obs = pd.DataFrame(
        {
            "array_row": rows,
            "array_col": cols,
            "region": pd.Categorical([f"R{r + 1}" for r in region], categories=[f"R{r + 1}" for r in range(n_regions)]),
            "expression_program": pd.Categorical(prog_e),
            "histology_program": pd.Categorical(prog_h),
            "section": pd.Categorical([library_id] * n_spots),
        },
        index=[f"{library_id}_spot{i}" for i in range(n_spots)],
    )
    X = counts
    adata = AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"gene{g}" for g in range(n_genes)]))
    adata.layers["counts"] = X.copy()
    adata.obsm["spatial"] = coords
    adata.obsm["X_histology"] = hist.astype(np.float32)
    if image:
        img = _paint_image(coords, prog_h, width, height, hires_scalef, rng)
        adata.uns["spatial"] = {
            library_id: {
                "images": {"hires": img},
                "scalefactors": {
                    "tissue_hires_scalef": float(hires_scalef),
                    "spot_diameter_fullres": 55.0,
                },
                "metadata": {"source": "senca.datasets.synthetic"},
            }
        }
    return adata


def _negative_binomial_counts(profile, programme, library, dispersion, rng, chunk_draws: int = 2**24) -> sp.csr_matrix:
    """Sparse float32 counts ``NB(mean = profile[programme] * library, theta = dispersion)``, built in row chunks.

    Only one chunk of the dense means and draws (``chunk_draws`` values) exists at a time, so memory is that of the
    sparse result. The generator draws element by element in row-major order, so the counts are those of a single
    dense draw whatever the chunking.
    """
    n_spots, n_genes = len(programme), profile.shape[1]
    chunk_size = max(1, int(chunk_draws) // max(n_genes, 1))  # rows per chunk
    parts = []
    for start in range(0, n_spots, chunk_size):
        rows = slice(start, start + chunk_size)
        mu = profile[programme[rows]] * library[rows, None]
        draws = rng.negative_binomial(dispersion, dispersion / (dispersion + mu))
        parts.append(sp.csr_matrix(draws.astype(np.float32)))
    # one CSR from the chunks, each freed once copied (sp.vstack would hold every chunk and the result at once)
    nnz = sum(p.nnz for p in parts)
    index_dtype = np.int32 if nnz < np.iinfo(np.int32).max else np.int64
    data, indices = np.empty(nnz, np.float32), np.empty(nnz, index_dtype)
    indptr = np.zeros(n_spots + 1, dtype=index_dtype)
    at, row = 0, 0
    parts.reverse()  # popped from the end: first chunk first
    while parts:
        part = parts.pop()
        data[at : at + part.nnz] = part.data
        indices[at : at + part.nnz] = part.indices
        indptr[row + 1 : row + part.shape[0] + 1] = part.indptr[1:] + at
        at, row = at + part.nnz, row + part.shape[0]
    return sp.csr_matrix((data, indices, indptr), shape=(n_spots, n_genes))


def _assign_regions(coords, n_regions, layout, width, height, rng) -> np.ndarray:
    x, y = coords[:, 0], coords[:, 1]
    if layout == "stripes":
        edges = np.linspace(x.min(), x.max() + 1e-9, n_regions + 1)
        return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_regions - 1)
    if layout == "quadrants":
        if n_regions != 4:
            raise ValueError("layout='quadrants' needs n_regions=4.")
        return (x > np.median(x)).astype(int) + 2 * (y > np.median(y)).astype(int)
    if layout != "voronoi":
        raise ValueError(f"layout must be 'voronoi', 'stripes' or 'quadrants', got {layout!r}.")
    # farthest-point centres give regions of comparable size
    idx = [int(rng.integers(len(coords)))]
    d = np.linalg.norm(coords - coords[idx[0]], axis=1)
    for _ in range(n_regions - 1):
        idx.append(int(np.argmax(d)))
        d = np.minimum(d, np.linalg.norm(coords - coords[idx[-1]], axis=1))
    centres = coords[idx]
    return np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)


def _paint_image(coords, prog_h, width, height, scalef, rng) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    w, h = int(np.ceil(width * scalef)), int(np.ceil(height * scalef))
    yy, xx = np.mgrid[0:h, 0:w]
    pix = np.column_stack([xx.ravel(), yy.ravel()]) / scalef
    nn = NearestNeighbors(n_neighbors=1).fit(coords)
    dist, nearest = nn.kneighbors(pix)
    prog = prog_h[nearest[:, 0]].reshape(h, w)
    colours = _HE_COLOURS[np.arange(prog.max() + 1) % len(_HE_COLOURS)]
    img = colours[prog] + rng.normal(0, 12, size=(h, w, 3))
    # nuclei: dark purple dots whose density depends on the programme
    density = 0.002 + 0.01 * (np.arange(prog.max() + 1) % 3)
    nuclei = rng.random((h, w)) < density[prog]
    img[nuclei] = [70, 40, 120]
    background = (dist[:, 0] > 150).reshape(h, w)
    img[background] = [250, 250, 250]
    return np.clip(img, 0, 255).astype(np.uint8)
