"""What SENCA's constructor fits once on its training data: the network's initial state, the estimator.

The heads' principal axes, the kernel statistics and the Harmony reference (no gradient involved).

Counts are read the way the model reads them everywhere: the registered counts of the model's genes
(:func:`registered_counts`), normalised by :func:`senca.data._loader.registered_library` with
:func:`senca.module._senca.log_normalise`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from senca.data import REGISTRY_KEYS
from senca.data._loader import model_gene_positions, registered_library
from senca.module._senca import SENCAModule

#: Histology tokens: principal axes of the standardised histology features kept by the image head.
N_KEYS = 10


def registered_counts(manager) -> sp.csr_matrix:
    """The registered counts of the model's genes, as a CSR matrix (float32), rows in registry order."""
    counts = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
    counts = sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else sp.csr_matrix(np.asarray(counts))
    pos = model_gene_positions(manager)
    return counts if pos is None else counts[:, pos]


def registered_index(manager) -> torch.Tensor:
    """The registered ``(n_obs, k)`` neighbour index as int64, the spot itself in column 0."""
    return torch.as_tensor(np.asarray(manager.get_from_registry(REGISTRY_KEYS.NEIGHBOR_KEY)), dtype=torch.long)


def registered_image(manager) -> np.ndarray | None:
    """The registered histology features (float32), or ``None`` without an image."""
    if REGISTRY_KEYS.IMAGE_KEY not in manager.data_registry:
        return None
    return np.asarray(manager.get_from_registry(REGISTRY_KEYS.IMAGE_KEY), dtype=np.float32)


@torch.inference_mode()
def expression_tokens(
    module: SENCAModule, counts: sp.csr_matrix, library: np.ndarray | None, rows_per_chunk: int = 4096
) -> torch.Tensor:
    """The gene head's expression tokens ``(n, n_latent)`` of count rows (library: all genes, ``None``: their sum)."""
    device = module.kernel_bandwidth.device
    parts = []
    for start in range(0, counts.shape[0], rows_per_chunk):
        block = torch.as_tensor(counts[start : start + rows_per_chunk].toarray(), dtype=torch.float32, device=device)
        lib = None
        if library is not None:
            lib = torch.as_tensor(library[start : start + rows_per_chunk], dtype=torch.float32, device=device)
        parts.append(module.expression(block, lib))
    if not parts:
        return torch.zeros((0, module.n_latent), device=device)
    return torch.cat(parts)


def read_expression(manager, module: SENCAModule) -> torch.Tensor:
    """The gene head's expression tokens ``(n_obs, n_latent)`` of every registered spot, on the module's device."""
    return expression_tokens(module, registered_counts(manager), registered_library(manager))


def fit_pca(manager, n_pcs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene means, ``(n_genes, n_pcs)`` principal axes and component variances of the log-normalised counts.

    Sparse counts stay sparse.
    """
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
    return np.asarray(pca.mean_).ravel(), pca.components_.T.copy(), np.asarray(pca.explained_variance_)


def image_statistics(h: np.ndarray, n_keys: int = N_KEYS) -> dict:
    """Per-feature mean and std of the histology features and the principal axes of the standardised features."""
    from sklearn.decomposition import PCA

    h = np.asarray(h, dtype=np.float64)
    mean, std = h.mean(0), h.std(0)
    hs = (h - mean) / np.maximum(std, 1e-6)
    n_keys = min(n_keys, hs.shape[1])
    axes = np.zeros((hs.shape[1], n_keys))
    n_fit = min(n_keys, hs.shape[0] - 1)
    if n_fit > 0:
        axes[:, :n_fit] = PCA(n_components=n_fit, svd_solver="full", random_state=0).fit(hs).components_.T
    return {"image_mean": mean, "image_std": std, "image_axes": axes, "n_keys": n_keys}


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


@torch.inference_mode()
def fit_statistics(manager, module_kwargs: dict, samples: np.ndarray | None, n_integration_clusters: int) -> dict:
    """Everything SENCA fits once on its training data, as module arguments: the network's initial state.

    The gene head's principal axes (:func:`fit_pca`), the image head's standardisation and axes
    (:func:`image_statistics`); then, through the network itself at its initial state, the kernel bandwidth (median
    squared distance between neighbouring histology tokens), the scale that gives the histology block the expression
    block's spread and, given the ``samples`` of a cohort, the Harmony reference (:func:`harmony_reference`).
    """
    from senca.module._kernel_attention import median_bandwidth

    out: dict = {}
    out["pca_mean"], out["pca_components"], out["pca_variance"] = fit_pca(manager, int(module_kwargs["n_latent"]))
    h = registered_image(manager)
    if h is not None:
        out.update(image_statistics(h))
    module = SENCAModule(**{**module_kwargs, **out})
    expression = read_expression(manager, module)
    index = registered_index(manager)
    if h is not None:
        keys = module.image_tokens(torch.as_tensor(h))
        out["kernel_bandwidth"] = median_bandwidth(keys, index) if index.shape[1] > 1 else 1.0
        module.set_bandwidth(out["kernel_bandwidth"])
        weights = module.attentions(keys, expression, index, module.initial_passes, initial=True)
        zp, zh = module.smooth(expression, index, weights), module.smooth(keys, index, weights)
        # the histology block gets `image_block_weight` times the spread of the expression block, whatever the scale
        out["image_block_scale"] = float(zp.var(0).sum().sqrt() / zh.var(0).sum().sqrt().clamp_min(1e-8))
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
