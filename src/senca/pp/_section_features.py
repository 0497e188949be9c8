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


def _as_csr(counts) -> sp.csr_matrix:
    if sp.issparse(counts):
        return counts.tocsr()
    return sp.csr_matrix(np.asarray(counts))


def _lognorm(counts: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """``log1p(1e4 * x / library)`` of the selected columns, the library taken over all genes."""
    lib = np.asarray(counts.sum(1)).ravel().astype(np.float64)
    lib[lib <= 0] = 1.0
    sub = counts[:, cols]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    return np.log1p(sub.astype(np.float64) * (1e4 / lib)[:, None])


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


def gene_features(
    counts, var_names: Sequence[str], genes: Sequence[str], groups: np.ndarray, method: str = "zscore"
) -> np.ndarray:
    """SpaCRD gene features: normalize_total(1e4) + log1p, restricted to ``genes``, scaled per section.

    ``method`` is ``"zscore"`` or ``"minmax"`` (see ``_standardise``). Genes absent from ``var_names`` are 0.
    Gene order of the input does not matter.
    """
    counts = _as_csr(counts)
    pos = pd.Index(var_names).get_indexer(pd.Index(genes))
    present = pos >= 0
    out = np.zeros((counts.shape[0], len(genes)), dtype=np.float64)
    if present.any():
        out[:, present] = _lognorm(counts, pos[present])
    return _standardise(out, np.asarray(groups), method=method)


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
    detected = np.flatnonzero(np.asarray((counts > 0).sum(0)).ravel() > 0)
    if len(detected) <= n_top_genes:
        return list(var_names[detected])
    x = _lognorm(counts, detected).astype(np.float32)
    tmp = AnnData(X=x, obs=pd.DataFrame({"section": pd.Categorical(np.asarray(groups).astype(str))}))
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
