"""Gene selection that keeps each spot's whole library size."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from senca._utils import check_key_free


def select_genes(
    adata: AnnData,
    n_top_genes: int = 3000,
    layer: str | None = "counts",
    sample_key: str | None = None,
    library_key: str = "library_size",
    overwrite: bool = False,
) -> AnnData:
    """Keep the ``n_top_genes`` most variable genes, remembering each spot's total counts over all genes.

    Highly variable genes are chosen with scanpy's ``seurat_v3`` flavour on the raw counts (per sample
    when ``sample_key`` is given). Before subsetting, the total counts of every spot over *all* genes are
    stored in ``obs[library_key]``; pass it to ``SENCA.setup_anndata(..., library_key=library_key)`` so
    that expression is normalised by the whole library rather than by the selected genes.

    Parameters
    ----------
    adata
        Spots x genes with raw counts in ``adata.layers[layer]`` (or ``adata.X`` for ``layer=None``).
    n_top_genes
        Number of genes to keep; all genes are kept when there are fewer.
    layer
        Layer with the raw counts (``None``: ``adata.X``; falls back to ``X`` when the layer is absent).
    sample_key
        ``adata.obs`` column of the sample/section, used as scanpy's ``batch_key``.
    library_key
        ``adata.obs`` column written with the total counts per spot.
    overwrite
        Replace an existing ``adata.obs[library_key]`` in the result.

    Returns
    -------
    A new AnnData restricted to the selected genes, with ``obs[library_key]`` and
    ``var["highly_variable_rank"]``. ``adata`` itself is not modified.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=200, n_genes=300, seed=0)
    >>> hvg = senca.pp.select_genes(adata, n_top_genes=100)
    >>> hvg.shape, "library_size" in hvg.obs
    ((200, 100), True)
    """
    if layer is not None and layer not in adata.layers:
        layer = None
    counts = adata.layers[layer] if layer is not None else adata.X
    library = np.asarray(counts.sum(1)).ravel().astype(np.float64)
    if (library <= 0).any():
        raise ValueError(
            f"{int((library <= 0).sum())} spots have no counts at all; drop them first "
            "(e.g. sc.pp.filter_cells(adata, min_counts=1))."
        )
    check_key_free(adata.obs, library_key, "adata.obs", overwrite)
    if sample_key is not None and sample_key not in adata.obs:
        raise KeyError(f"adata.obs[{sample_key!r}] not found; pass an existing sample_key or None.")
    keep, rank = _highly_variable(adata, n_top_genes, layer, sample_key)
    out = adata[:, keep].copy()
    if rank is not None:
        out.var["highly_variable_rank"] = rank
    out.obs[library_key] = library
    return out


def _highly_variable(
    adata: AnnData, n_top_genes: int, layer: str | None, sample_key: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The detected genes, or their ``n_top_genes`` most variable when there are more.

    seurat_v3 on the counts, per sample when ``sample_key`` is given. Its variance trend is a loess fit (scikit-misc)
    that breaks down on shallow data (tens to hundreds of UMIs per spot: most genes seen a few times, many with the
    same mean and variance); there the genes are chosen by scanpy's ``seurat`` flavour (dispersion within mean bins
    of the log-normalised counts, no loess), with a warning. Returns the gene names and their ranks (``None`` when
    every detected gene is kept).
    """
    import scanpy as sc

    counts = adata.layers[layer] if layer is not None else adata.X
    detected = _detected(counts)
    work = adata[:, detected]
    if work.n_vars <= n_top_genes:
        return np.asarray(work.var_names), None
    try:
        hvg = sc.pp.highly_variable_genes(
            work, flavor="seurat_v3", n_top_genes=int(n_top_genes), layer=layer, batch_key=sample_key, inplace=False
        )
    except ValueError as err:  # skmisc's loess: "svddc failed in l2fit", "near singularities", "reciprocal condition"
        if not _raised_in_loess(err):
            raise
        depth = float(np.median(np.asarray(counts.sum(1)).ravel()))
        reason = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        warnings.warn(
            f"seurat_v3 gene selection failed in its loess fit ({reason!r}); these counts are shallow (median "
            f"{depth:.0f} UMIs per spot), where many genes share the same few counts. The {n_top_genes} genes "
            "were chosen with scanpy's flavor='seurat' instead (dispersion of the log-normalised counts, no loess "
            "fit). To choose them yourself, pass genes= to SENCA.setup_anndata (or n_top_genes=None to keep every "
            "gene).",
            UserWarning,
            stacklevel=3,
        )
        try:
            hvg = _dispersion_hvg(work, counts[:, detected], int(n_top_genes), sample_key)
        except ValueError as second:
            raise ValueError(
                f"Gene selection failed on these counts (median {depth:.0f} UMIs per spot): seurat_v3's loess fit "
                f"({reason!r}) and the dispersion fallback ({second}) both broke down. Pass the genes to model "
                "yourself (SENCA.setup_anndata(..., genes=[...])) or keep every gene (n_top_genes=None)."
            ) from second
    hvg.index = work.var_names
    keep = hvg.index[hvg["highly_variable"].to_numpy()]
    return np.asarray(keep), hvg.loc[keep, "highly_variable_rank"].to_numpy()


def _raised_in_loess(err: BaseException) -> bool:
    """Whether ``err`` comes from scikit-misc's loess (the variance trend of seurat_v3)."""
    tb = err.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("skmisc"):
            return True
        tb = tb.tb_next
    return False


def _detected(counts) -> np.ndarray:
    """Genes with at least one count."""
    if sp.isspmatrix_csr(counts) or isinstance(counts, sp.csr_array):
        return np.bincount(counts.indices[counts.data > 0], minlength=counts.shape[1]) > 0
    return np.asarray((counts > 0).sum(0)).ravel() > 0


def _dispersion_hvg(work: AnnData, counts, n_top_genes: int, sample_key: str | None) -> pd.DataFrame:
    """Highly variable genes by scanpy's ``seurat`` flavour (log-normalised counts), ranked as seurat_v3 ranks.

    Genes are ranked by how many samples call them variable, then by their normalised dispersion (median over
    samples), as scanpy ranks seurat_v3 across batches.
    """
    import scanpy as sc

    x = sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, dtype=np.float32)
    tmp = AnnData(X=x, obs=work.obs[[sample_key]] if sample_key is not None else None)
    tmp.var_names = work.var_names
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    with warnings.catch_warnings():
        # genes constant within a sample: the dispersion divides by a zero mean (NaN, ranked last)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        hvg = sc.pp.highly_variable_genes(
            tmp, flavor="seurat", n_top_genes=n_top_genes, batch_key=sample_key, inplace=False
        )
    hvg.index = work.var_names
    n_batches = hvg["highly_variable_nbatches"] if "highly_variable_nbatches" in hvg else hvg["highly_variable"]
    order = pd.DataFrame({"n": -np.asarray(n_batches, dtype=float), "d": -hvg["dispersions_norm"].fillna(-np.inf)})
    ranked = order.sort_values(["n", "d"], kind="stable").index[:n_top_genes]
    out = pd.DataFrame(index=hvg.index)
    out["highly_variable"] = out.index.isin(ranked)
    out["highly_variable_rank"] = np.nan
    out.loc[ranked, "highly_variable_rank"] = np.arange(len(ranked), dtype=float)
    return out
