"""Parameter-free neighbourhood cross-attention: H&E similarity as keys, expression as values.

This is the part of SENCA that produces the embedding used for region calling. Its attention weights
come from a Gaussian kernel on the histology tokens, with a bandwidth set to the median squared distance
between neighbours (so the weights do not depend on the scale of the features and cannot collapse onto
one neighbour). Learned attention trained by reconstruction did collapse and lowered ARI on her2st
(benchmarks/RESULTS.md, "Experiments behind the defaults"), which is why the weights here are not trained.
"""

from __future__ import annotations

import torch


def _neighbour_sq_dist(keys: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(n, k-1)`` between each spot and its neighbours (column 0 of ``index`` is the spot)."""
    return ((keys[:, None, :] - keys[index[:, 1:]]) ** 2).sum(-1)


def median_bandwidth(keys: torch.Tensor, index: torch.Tensor) -> float:
    """Median squared distance between spots and their neighbours: the kernel's scale-free bandwidth."""
    d2 = _neighbour_sq_dist(keys, index)
    med = float(d2.median()) if d2.numel() else 1.0
    return med if med > 0 else 1.0


def kernel_attention(
    keys: torch.Tensor | None, index: torch.Tensor, bandwidth: float = 1.0, scale: float = 1.0
) -> torch.Tensor:
    """Attention of each spot over its ``k - 1`` neighbours, ``softmax_j(-|h_i - h_j|^2 / (2 scale^2 bandwidth))``.

    Parameters
    ----------
    keys
        ``(n, d)`` histology tokens, or ``None`` for uniform weights (no image).
    index
        ``(n, k)`` neighbour index, the spot itself in column 0.
    bandwidth
        Squared-distance scale, usually :func:`median_bandwidth` of the training data.
    scale
        Kernel width in units of the bandwidth (smaller: attend to look-alike neighbours only).

    Returns
    -------
    ``(n, k - 1)`` weights summing to one over the neighbours.
    """
    n, k = index.shape
    if keys is None or k < 2:
        return torch.full((n, max(k - 1, 0)), 1.0 / max(k - 1, 1), dtype=torch.float32, device=index.device)
    logits = -_neighbour_sq_dist(keys, index) / (2.0 * scale**2 * bandwidth)
    return torch.softmax(logits, dim=-1)


def attend(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """Mix each spot's values with its neighbours': ``z <- z / k + (1 - 1/k) sum_j a_ij z_j``, ``passes`` times.

    With uniform weights this is the spatially smoothed representation (mean over the k nearest spots,
    applied twice), the strongest simple baseline on her2st; H&E-keyed weights sharpen it at boundaries
    that are visible on the slide.
    """
    k = index.shape[1]
    z = values
    if k < 2:
        return z
    for _ in range(int(passes)):
        z = z / k + (1.0 - 1.0 / k) * torch.einsum("nk,nkd->nd", weights, z[index[:, 1:]])
    return z


def contrast(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Functional contrast ``delta_i = v_i - sum_j a_ij v_j``: how a spot differs from neighbours that look alike."""
    if index.shape[1] < 2:
        return torch.zeros_like(values)
    return values - torch.einsum("nk,nkd->nd", weights, values[index[:, 1:]])


def spatial_signal_weights(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-column weight ``max(0, corr(v_c, mean of v_c over each spot's neighbours))``.

    Spatially structured components (tissue programmes) correlate with their neighbourhood mean; pure
    measurement noise does not. Weighting the contrast by it keeps region borders and drops noise: on the
    synthetic tissue, the border-to-inside ratio of ``|delta|`` rises from about 1.0 (all 50 components
    weighted equally) to about 2.2.
    """
    if index.shape[1] < 2 or values.shape[0] < 3:
        return torch.ones(values.shape[1], dtype=values.dtype, device=values.device)
    nbr = values[index[:, 1:]].mean(1)
    a = values - values.mean(0)
    b = nbr - nbr.mean(0)
    denom = torch.sqrt((a**2).sum(0) * (b**2).sum(0))
    corr = torch.where(denom > 0, (a * b).sum(0) / denom.clamp_min(1e-12), torch.zeros_like(denom))
    return corr.clamp_min(0.0)
