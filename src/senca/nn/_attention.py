"""Multi-head attention of a centre spot over its spatial neighbourhood (SpaCRD)."""

from __future__ import annotations

import torch
from torch import nn


class CentreCrossAttention(nn.Module):
    """Multi-head attention of the centre token of one modality over the neighbourhood of the other (SpaCRD).

    As in SpaCRD: Q/K/V projections, softmax, dropout, output projection, LayerNorm (no residual). Only the
    centre query is computed: the read-out of SpaCRD is the centre token, and attention rows are independent.

    Parameters
    ----------
    d
        Token width; must be divisible by ``n_heads``.
    n_heads
        Number of heads.
    dropout
        Dropout on the attention weights (training only).

    Examples
    --------
    >>> import torch
    >>> from senca.nn import CentreCrossAttention
    >>> out, weights = CentreCrossAttention(16, 4, 0.0)(torch.zeros(5, 16), torch.zeros(5, 7, 16))
    >>> out.shape, weights.shape
    (torch.Size([5, 16]), torch.Size([5, 7]))
    """

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` ``(B, d)`` over ``keys`` ``(B, k, d)``; returns ``(B, d)`` and weights ``(B, k)``."""
        out, w = self.attn(query[:, None, :], keys, keys, need_weights=True, average_attn_weights=True)
        return self.norm(out[:, 0]), w[:, 0]
