"""Mapping sections onto a Harmony reference (tensors only): SENCA's cohort integration.

Harmony (Korsunsky et al. 2019, via ``harmonypy``) corrects the principal components of a cohort's spots for
their section: spots are soft-clustered on the unit sphere and each cluster's per-section offset is removed. The
model keeps Harmony's summary of the training cohort, its cluster centroids with the weight and the summed
corrected coordinates of each cluster, and maps any section onto it with Symphony's query mapping (Kang et al.
2021), iterated so that the soft clusters are read from the corrected coordinates: the same code embeds the training
sections and sections the model has never seen.
"""

from __future__ import annotations

import torch


def harmony_map(
    z: torch.Tensor,
    centroids: torch.Tensor,
    weight: torch.Tensor,
    total: torch.Tensor,
    sigma: float = 0.1,
    ridge: float = 1.0,
    n_iter: int = 10,
) -> torch.Tensor:
    """Correct the principal components ``z`` of one section onto a Harmony reference.

    Parameters
    ----------
    z
        ``(n, d)`` principal components of the spots of *one* section.
    centroids
        ``(K, d)`` reference cluster centroids (unit length).
    weight
        ``(K,)`` reference spots per cluster (sum of their soft assignments).
    total
        ``(K, d)`` sum of the reference's corrected coordinates in each cluster, weighted by assignment.
    sigma
        Soft-clustering bandwidth on the unit sphere (Harmony's default 0.1).
    ridge
        Ridge penalty of the section's offset in each cluster.
    n_iter
        Rounds of soft assignment and correction.

    Returns
    -------
    ``(n, d)`` corrected coordinates.

    Examples
    --------
    >>> import torch
    >>> c = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    >>> out = harmony_map(torch.randn(10, 4) + 2.0, c, torch.full((3,), 50.0), 50.0 * c)
    >>> out.shape
    torch.Size([10, 4])
    """
    corrected = z
    for _ in range(int(n_iter)):
        unit = torch.nn.functional.normalize(corrected, dim=1)
        r = torch.softmax(-2.0 * (1.0 - unit @ centroids.T) / sigma, dim=1)  # (n, K)
        mass = r.sum(0)  # (K,)
        query_sum = r.T @ z  # (K, d)
        # per cluster: [intercept, section] ridge regression of z against the reference's compressed statistics
        a11, a12, a22 = weight + mass, mass, mass + ridge
        det = (a11 * a22 - a12 * a12).clamp_min(1e-12)
        offset = ((-a12)[:, None] * (total + query_sum) + a11[:, None] * query_sum) / det[:, None]  # (K, d)
        corrected = z - r @ offset
    return corrected
