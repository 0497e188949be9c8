"""SpaCRD's input features: log-expression of the model's genes and histology, both standardised per section.

SpaCRD is transductive by design: every section (source or target) is scaled with its own statistics, computed
without labels, which removes per-section batch shifts. Its genes are highly variable across all source sections.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from senca.pp._genes import _detected
from senca.pp._normalise import log_normalise_counts


def _as_csr(counts) -> sp.csr_matrix:
    if sp.issparse(counts):
        return counts.tocsr()
    return sp.csr_matrix(np.asarray(counts))


def _library(counts: sp.csr_matrix) -> np.ndarray:
    """Each spot's total counts over all genes (1 for an empty spot), float64."""
    lib = np.asarray(counts.sum(1)).ravel().astype(np.float64)
    lib[lib <= 0] = 1.0
    return lib


def _standardise(
    x: np.ndarray, groups: np.ndarray, rows_ok: np.ndarray | None = None, method: str = "zscore"
) -> np.ndarray:
    """Scale every column within each group (fitted on ``rows_ok`` rows); constant columns -> 0.

    ``"zscore"``: (x - mean) / sd, clipped to +-10. ``"minmax"``: (x - min) / (max - min), the paper's choice; it
    does not move with the fraction of cancer spots in a section the way the mean does.
    """
    if method not in ("zscore", "minmax"):
        raise ValueError(f"gene_scaling must be 'zscore' or 'minmax', got {method!r}.")
    out = np.zeros_like(x, dtype=np.float32)
    for g in np.unique(groups):
        rows = groups == g
        fit = rows if rows_ok is None else rows & rows_ok
        if fit.sum() < 2:
            continue
        if method == "zscore":
            centre, spread = x[fit].mean(0), x[fit].std(0)
        else:
            centre = x[fit].min(0)
            spread = x[fit].max(0) - centre
        scale = np.where(spread > 1e-6, spread, np.inf)
        out[rows] = np.clip((x[rows] - centre) / scale, -10, 10)
    return out


class SectionGenes:
    """SpaCRD's gene features, ``(n_obs, n_genes)`` float32, computed row block by row block from the sparse counts.

    ``normalize_total(1e4) + log1p`` of ``genes`` (the library over all genes), standardised within each section by
    statistics fitted once on all its spots (:func:`gene_features`). Only the counts (by reference) and the
    per-section statistics are held, so a 500,000-spot section costs no dense ``spots x genes`` matrix; indexing with
    rows (an int, a slice, an index array of any shape) returns their dense rows, exactly as the dense matrix would
    hold them, and ``np.asarray`` gives the whole matrix.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, counts, columns, library, codes, centre, scale, fitted):
        self._counts, self._columns, self._library = counts, columns, library
        self._codes, self._centre, self._scale, self._fitted = codes, centre, scale, fitted
        self.shape = (counts.shape[0], len(columns))

    def __len__(self) -> int:
        return self.shape[0]

    def _log(self, rows: np.ndarray) -> np.ndarray:
        """Dense float64 log-normalised counts of ``rows`` (sorted, 1-D) in the model's gene order; absent genes 0.

        ``log1p(count * 1e4 / library)`` in float64 (normalize_total(1e4) + log1p, the library over all genes),
        computed on the stored counts only: the log of a zero is zero.
        """
        contiguous = len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1
        block = self._counts[int(rows[0]) : int(rows[-1]) + 1] if contiguous else self._counts[rows]
        present = self._columns >= 0
        if not (present.all() and np.array_equal(self._columns, np.arange(self._counts.shape[1]))):
            block = block[:, self._columns[present]]
        block = log_normalise_counts(block, self._library[rows], np.float64)
        if present.all():
            return block.toarray()
        out = np.zeros((len(rows), self.shape[1]))
        out[:, present] = block.toarray()
        return out

    def _standardised(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), self.shape[1]), dtype=np.float32)
        x = self._log(rows)
        codes = self._codes[rows]
        groups = np.unique(codes)
        for g in groups:
            if self._fitted[g]:
                take = slice(None) if len(groups) == 1 else codes == g
                z = x[take]
                np.subtract(z, self._centre[g], out=z)  # in place: the values of (x - centre) / scale, clipped
                np.divide(z, self._scale[g], out=z)
                out[take] = np.clip(z, -10, 10, out=z)
        return out

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, tuple):  # rows, then columns
            return self[index[0]][(slice(None), *index[1:])]
        rows = np.arange(self.shape[0])[index] if isinstance(index, slice) else np.asarray(index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        flat = rows.reshape(-1).astype(np.int64)
        uniq, inverse = np.unique(flat, return_inverse=True)
        block = np.empty((0, self.shape[1]), dtype=np.float32)
        if len(uniq):
            block = np.concatenate([self._standardised(uniq[s : s + _BLOCK]) for s in range(0, len(uniq), _BLOCK)])
        return block[inverse].reshape(*rows.shape, self.shape[1])

    def __array__(self, dtype=None, copy=None):
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)


_BLOCK = 8192  # rows densified at a time


def gene_features(
    counts, var_names: Sequence[str], genes: Sequence[str], groups: np.ndarray, method: str = "zscore"
) -> SectionGenes:
    """SpaCRD gene features: normalize_total(1e4) + log1p, restricted to ``genes``, scaled per section.

    ``method`` is ``"zscore"`` or ``"minmax"`` (see ``_standardise``). Genes absent from ``var_names`` are 0.
    Gene order of the input does not matter. Returns a :class:`SectionGenes`: the features are computed from the
    sparse counts when rows are read, and the per-section statistics are fitted here, block by block, with the
    arithmetic of the dense computation (the same values to the last bit).
    """
    if method not in ("zscore", "minmax"):
        raise ValueError(f"gene_scaling must be 'zscore' or 'minmax', got {method!r}.")
    counts = _as_csr(counts)
    columns = pd.Index(var_names).get_indexer(pd.Index(genes))
    library = _library(counts)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    codes = codes.ravel()
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    centre, scale = np.zeros((n_groups, len(columns))), np.ones((n_groups, len(columns)))
    fitted = np.zeros(n_groups, dtype=bool)
    features = SectionGenes(counts, columns, library, codes, centre, scale, fitted)
    for g in range(n_groups):
        rows = np.flatnonzero(codes == g)
        if len(rows) < 2:
            continue
        blocks = [rows[s : s + _BLOCK] for s in range(0, len(rows), _BLOCK)]
        if method == "zscore":  # numpy's mean and std of the dense rows: sequential sums over rows, two passes
            mean = _carry_reduce(np.add, (features._log(b) for b in blocks)) / len(rows)
            spread = np.sqrt(_carry_reduce(np.add, ((features._log(b) - mean) ** 2 for b in blocks)) / len(rows))
            centre[g] = mean
        else:
            centre[g] = _carry_reduce(np.minimum, (features._log(b) for b in blocks))
            spread = _carry_reduce(np.maximum, (features._log(b) for b in blocks)) - centre[g]
        scale[g] = np.where(spread > 1e-6, spread, np.inf)
        fitted[g] = True
    return features


def _carry_reduce(ufunc, blocks) -> np.ndarray:
    """``ufunc.reduce`` over the rows of all ``blocks`` stacked, in the order numpy reduces a dense matrix's rows."""
    acc = None
    for block in blocks:
        acc = ufunc.reduce(block, axis=0) if acc is None else ufunc.reduce(np.vstack([acc[None], block]), axis=0)
    return acc


def image_features(h, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histology features standardised per section over the spots that have them; ``(features, mask)``.

    A spot whose row contains NaN (no image) gets zeros and mask 0.
    """
    h = np.asarray(h.to_numpy() if hasattr(h, "to_numpy") else h, dtype=np.float64)
    h = h.reshape(h.shape[0], -1)
    ok = np.isfinite(h).all(1)
    filled = np.where(ok[:, None], h, 0.0)
    out = _standardise(filled, np.asarray(groups), rows_ok=ok)
    # sections with fewer than 2 imaged spots cannot be standardised: treat them as expression-only
    for g in np.unique(groups):
        rows = groups == g
        if (rows & ok).sum() < 2:
            ok = ok & ~rows
    out[~ok] = 0.0
    return out.astype(np.float32), ok.astype(np.float32)


def section_hvgs(counts, var_names: Sequence[str], groups: np.ndarray, n_top_genes: int) -> list[str]:
    """Highly variable genes selected across all sections (scanpy ``flavor="seurat"`` with ``batch_key``).

    Dispersion-based selection on log-normalised data (the flavour's expected input), ranked first by the number
    of sections in which a gene is variable, so no single section decides. Genes never detected are dropped.
    Returns all detected genes when there are at most ``n_top_genes`` of them.
    """
    import scanpy as sc

    counts = _as_csr(counts)
    var_names = pd.Index(var_names)
    detected = np.flatnonzero(_detected(counts))
    if len(detected) <= n_top_genes:
        return list(var_names[detected])
    # sparse log-normalised counts (the dense computation's values, its zeros left out): memory O(nnz)
    x = log_normalise_counts(counts[:, detected], _library(counts), np.float64).astype(np.float32)
    sections = pd.Categorical(np.asarray(groups).astype(str))
    tmp = AnnData(X=x, obs=pd.DataFrame({"section": sections}, index=np.arange(x.shape[0]).astype(str)))
    tmp.var_names = var_names[detected]
    n_sections = tmp.obs["section"].nunique()
    with warnings.catch_warnings():
        # genes constant within a section: seurat's dispersion divides by a zero mean (NaN, ranked last)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)  # pandas deprecations inside scanpy
        sc.pp.highly_variable_genes(
            tmp,
            flavor="seurat",
            n_top_genes=int(n_top_genes),
            batch_key="section" if n_sections > 1 else None,
        )
    hv = tmp.var["highly_variable"].to_numpy()
    return list(tmp.var_names[hv])
