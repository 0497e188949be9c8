"""Gene selection that keeps each spot's whole library size."""

from __future__ import annotations

import numpy as np
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

    seurat_v3 on the counts, per sample when ``sample_key`` is given. Returns the gene names and their ranks
    (``None`` when every detected gene is kept).
    """
    import scanpy as sc

    counts = adata.layers[layer] if layer is not None else adata.X
    detected = np.asarray((counts > 0).sum(0)).ravel() > 0
    work = adata[:, detected]
    if work.n_vars <= n_top_genes:
        return np.asarray(work.var_names), None
    hvg = sc.pp.highly_variable_genes(
        work, flavor="seurat_v3", n_top_genes=int(n_top_genes), layer=layer, batch_key=sample_key, inplace=False
    )
    hvg.index = work.var_names
    keep = hvg.index[hvg["highly_variable"].to_numpy()]
    return np.asarray(keep), hvg.loc[keep, "highly_variable_rank"].to_numpy()
