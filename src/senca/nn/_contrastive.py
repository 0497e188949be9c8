"""Symmetric InfoNCE: the contrastive loss that aligns the gene and image embeddings of the same spot."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` and ``b`` (cosine similarity / temperature).

    Parameters
    ----------
    a, b
        ``(n, d)`` paired embeddings (row ``i`` of ``a`` matches row ``i`` of ``b``).
    temperature
        Softmax temperature.

    Returns
    -------
    ``0.5 * (CE(a -> b) + CE(b -> a))``, a scalar.

    Examples
    --------
    >>> import torch
    >>> from senca.nn import info_nce
    >>> x = torch.randn(8, 4)
    >>> bool(info_nce(x, x, 0.07) < info_nce(x, torch.randn(8, 4), 0.07))
    True
    """
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
