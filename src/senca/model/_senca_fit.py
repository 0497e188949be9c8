"""What SENCA fits once on its training data: expression principal axes, kernel statistics, Harmony reference.

Counts are read the way the model reads them everywhere, through the neighbourhood loader of the registry with the
library of :func:`senca.data._loader.registered_library` and :func:`senca.module._senca.log_normalise`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from senca.data import REGISTRY_KEYS, NeighborhoodDataLoader, neighbor_key
from senca.data._loader import model_gene_positions, registered_library
from senca.module._senca import log_normalise


def read_expression(
    manager, components: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], batch_size: int = 1024
) -> torch.Tensor:
    """``components(counts, library)`` of every registered spot, in row order, read through the loader.

    ``counts`` are the model's genes of each spot and ``library`` its normalising library (``None``: their sum).
    """
    loader = NeighborhoodDataLoader(
        manager,
        batch_size=batch_size,
        gather_keys=(REGISTRY_KEYS.X_KEY, REGISTRY_KEYS.LIBRARY_KEY),
        data_and_attributes=[REGISTRY_KEYS.NEIGHBOR_KEY],
    )
    parts = []
    for batch in loader:  # column 0 of a neighbourhood is the spot itself
        library = batch.get(neighbor_key(REGISTRY_KEYS.LIBRARY_KEY))
        parts.append(
            components(batch[neighbor_key(REGISTRY_KEYS.X_KEY)][:, 0], None if library is None else library[:, 0])
        )
    return torch.cat(parts)


def projection(mean, axes) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """Counts -> coordinates of their log-normalised values on principal ``axes`` ``(n_genes, n_pcs)``."""
    mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
    axes = torch.as_tensor(np.asarray(axes), dtype=torch.float32)
    offset = mean @ axes
    return lambda counts, library: log_normalise(counts, library) @ axes - offset


def fit_pca(manager, n_pcs: int) -> tuple[np.ndarray, np.ndarray]:
    """Gene means and ``(n_genes, n_pcs)`` principal axes of the log-normalised counts; sparse stays sparse."""
    from sklearn.decomposition import PCA

    counts = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
    pos = model_gene_positions(manager)
    counts = counts if pos is None else counts[:, pos]
    library = registered_library(manager)
    # log_normalise on a sparse matrix, in float64: PCA's centring would densify the log of every zero otherwise
    if sp.issparse(counts):
        x = sp.csr_matrix(counts, dtype=np.float64)
        lib = np.asarray(x.sum(1)).ravel() if library is None else library
        x = sp.diags(1e4 / np.maximum(lib, 1.0)) @ x
        x.data = np.log1p(x.data)
    else:
        x = np.asarray(counts, dtype=np.float64)
        lib = x.sum(1) if library is None else library
        x = np.log1p(1e4 * x / np.maximum(lib[:, None], 1.0))
    pca = PCA(n_components=n_pcs, svd_solver="arpack", random_state=0).fit(x)
    return np.asarray(pca.mean_).ravel(), pca.components_.T.copy()


def kernel_statistics(manager, expression: torch.Tensor, image_mean, image_std, weight: float) -> dict:
    """Histology principal axes, kernel bandwidth and block scale of the attention embedding (training data)."""
    from sklearn.decomposition import PCA

    from senca.module._kernel_attention import attend, kernel_attention, median_bandwidth

    h = np.asarray(manager.get_from_registry(REGISTRY_KEYS.IMAGE_KEY), dtype=np.float64)
    hs = (h - image_mean) / np.maximum(image_std, 1e-6)
    n_axes = min(10, hs.shape[1])
    axes = np.zeros((hs.shape[1], n_axes))
    n_fit = min(n_axes, hs.shape[0] - 1)
    if n_fit > 0:
        axes[:, :n_fit] = PCA(n_components=n_fit, svd_solver="full", random_state=0).fit(hs).components_.T
    keys = torch.as_tensor(hs @ axes, dtype=torch.float32)
    index = torch.as_tensor(np.asarray(manager.get_from_registry(REGISTRY_KEYS.NEIGHBOR_KEY)), dtype=torch.long)
    bandwidth = median_bandwidth(keys, index) if index.shape[1] > 1 else 1.0
    a = kernel_attention(keys, index, bandwidth)
    zp = attend(expression, index, a)
    zh = attend(keys, index, a)
    # the histology block gets `weight` times the spread of the expression block, whatever the feature scale
    scale = float(zp.var(0).sum().sqrt() / zh.var(0).sum().sqrt().clamp_min(1e-8))
    return {"image_axes": axes, "kernel_bandwidth": bandwidth, "image_block_scale": scale}


def sample_codes(adata, sample_key: str | None) -> np.ndarray | None:
    """Integer code of each spot's sample (``None`` without a sample key, or when ``adata`` lacks the column)."""
    if sample_key is None or adata is None or sample_key not in adata.obs:
        return None
    return pd.factorize(adata.obs[sample_key].astype(str).to_numpy())[0].astype(np.int64)


def harmony_reference(expression: np.ndarray, samples: np.ndarray, n_clusters: int) -> dict:
    """Harmony over the samples of the training cohort, summarised for query mapping (centroids, weights, sums)."""
    import harmonypy

    meta = pd.DataFrame({"sample": samples.astype(str)})
    ho = harmonypy.run_harmony(
        np.asarray(expression, dtype=np.float64), meta, "sample", nclust=n_clusters, random_state=0, verbose=False
    )
    r = np.asarray(ho.R, dtype=np.float64)  # (n, K)
    z = np.asarray(ho.Z_corr, dtype=np.float64)  # (n, d)
    y = np.asarray(ho.Y, dtype=np.float64).T  # (K, d)
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return {"integration_centroids": y, "integration_weight": r.sum(0), "integration_total": r.T @ z}


def fit_statistics(
    manager, n_pcs: int, image_block_weight: float, samples: np.ndarray | None, n_integration_clusters: int | None
) -> dict:
    """Everything SENCA fits once on its training data, as module arguments (no gradient involved).

    Histology feature means and spreads; with ``n_pcs > 0`` the expression principal axes, the kernel statistics of the
    attention embedding (:func:`kernel_statistics`) and, given the ``samples`` of a cohort, the Harmony reference
    (:func:`harmony_reference`).
    """
    import warnings

    out: dict = {}
    has_image = REGISTRY_KEYS.IMAGE_KEY in manager.data_registry
    if has_image:
        h = np.asarray(manager.get_from_registry(REGISTRY_KEYS.IMAGE_KEY), dtype=np.float64)
        out["image_mean"], out["image_std"] = h.mean(0), h.std(0)
    if n_pcs == 0:
        return out
    out["pca_mean"], out["pca_components"] = fit_pca(manager, n_pcs)
    expression = read_expression(manager, projection(out["pca_mean"], out["pca_components"]))
    if has_image:
        out.update(kernel_statistics(manager, expression, out["image_mean"], out["image_std"], image_block_weight))
    if samples is not None and int(samples.max()) >= 1:
        out.update(harmony_reference(expression.numpy(), samples, int(n_integration_clusters)))
    elif samples is not None:
        warnings.warn(
            "integrate=True but the training data has fewer than two samples (sample_key): nothing to integrate, "
            "the embedding is not corrected.",
            UserWarning,
            stacklevel=3,
        )
    return out
