"""Statistics of SENCA's kernel attention fitted on the data: the bandwidth and the spatial signal of components.

The bandwidth is the median squared distance between neighbouring histology tokens, so that the kernel's weights do
not depend on the scale of the features and cannot collapse onto one neighbour.
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


def attend(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """``passes`` attention passes with the same weights (:func:`senca.nn.mix`); uniform weights: a smoothed mean."""
    from senca.nn import mix

    for _ in range(int(passes)):
        values = mix(values, index, weights)
    return values


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
