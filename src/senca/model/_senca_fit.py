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
from senca.data._loader import model_gene_positions, model_rows, registered_library
from senca.module._senca import SENCAModule
from senca.pp._normalise import log_normalise_counts

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


def read_image_tokens(manager, module: SENCAModule) -> torch.Tensor | None:
    """The image head's histology tokens ``(n_obs, n_keys)`` of every registered spot (``None`` without an image)."""
    h = registered_image(manager)
    return None if h is None else module.image_tokens(torch.as_tensor(h, device=module.kernel_bandwidth.device))


def fit_pca(manager, n_pcs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene means, ``(n_genes, n_pcs)`` principal axes and component variances of the log-normalised counts.

    Exact PCA, the counts read block by block (:func:`senca.data._loader.model_rows`) and sparse blocks log-normalised
    while sparse. With more spots than genes, from the genes x genes covariance, accumulated block by block around a
    provisional centre (the first block's mean, so that no precision is lost to cancellation) in float32 products
    summed in float64: memory is one dense block plus the covariance, never a spots x genes matrix, and the cost is
    linear in the spots. With fewer spots than genes (a legacy-ST section), from the float64 SVD of the centred
    spots x genes matrix. Axes are signed as scikit-learn signs them (the largest loading of each positive);
    variances are scikit-learn's ``explained_variance_`` (``n - 1`` in the denominator).
    """
    from scipy.linalg import eigh, svd

    pos = model_gene_positions(manager)
    n_obs, n_genes = manager.adata.n_obs, manager.adata.n_vars if pos is None else len(pos)
    small = n_obs <= n_genes
    dtype = np.float64 if small else np.float32
    logged = (log_normalise_counts(x, lib, dtype) for x, lib in model_rows(manager, dense=False))
    blocks = (x.toarray() if sp.issparse(x) else x for x in logged)
    if small:
        x = np.concatenate(list(blocks))
        mean = x.mean(0)
        _, s, vt = svd(x - mean, full_matrices=False)
        variance, axes = s[:n_pcs] ** 2 / max(n_obs - 1, 1), vt[:n_pcs].T
    else:
        centre, total, second = None, np.zeros(n_genes), np.zeros((n_genes, n_genes))
        for x in blocks:
            centre = x.mean(0) if centre is None else centre
            total += x.sum(0, dtype=np.float64)
            xc = x - centre
            second += xc.T @ xc
        mean = total / n_obs
        shift = mean - centre
        cov = (second - n_obs * np.outer(shift, shift)) / (n_obs - 1)
        values, vectors = eigh(cov, subset_by_index=[n_genes - n_pcs, n_genes - 1])
        variance, axes = values[::-1], vectors[:, ::-1]  # decreasing variance
    signs = np.sign(axes[np.abs(axes).argmax(0), np.arange(n_pcs)])
    return mean, np.ascontiguousarray(axes * np.where(signs == 0, 1.0, signs)), np.asarray(variance)


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
