"""Multi-head attention of one spot over its spatial neighbourhood."""

from __future__ import annotations

import math

import torch
from torch import nn


class NeighborhoodCrossAttention(nn.Module):
    """Multi-head attention of each spot's query token over the tokens of its ``k`` neighbours.

    Queries and keys are projected per head; with ``project_values=False`` the values are the raw
    value tokens (head ``h`` reads its slice of the channels) and no output projection is applied, so
    the result is exactly ``sum_j a_ij v_j`` per head: used for SENCA's functional contrast.

    Parameters
    ----------
    d_model
        Token width; must be divisible by ``n_heads``.
    n_heads
        Number of heads.
    dropout
        Dropout on the attention weights (training only).
    project_values
        Project values and outputs (standard attention) or attend over the raw value tokens.

    Examples
    --------
    >>> import torch
    >>> from senca.nn import NeighborhoodCrossAttention
    >>> att = NeighborhoodCrossAttention(16, n_heads=4)
    >>> out, weights = att(torch.zeros(5, 16), torch.zeros(5, 6, 16))
    >>> out.shape, weights.shape
    (torch.Size([5, 16]), torch.Size([5, 6]))
    """

    def __init__(self, d_model: int, n_heads: int = 4, dropout: float = 0.0, project_values: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}.")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model) if project_values else nn.Identity()
        self.out = nn.Linear(d_model, d_model) if project_values else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Parameters
        ----------
        query
            ``(B, d)`` query token of each spot.
        keys
            ``(B, k, d)`` key tokens of its neighbours.
        values
            ``(B, k, d)`` value tokens (default: ``keys``).
        mask
            Optional ``(B, k)`` or ``(k,)`` boolean, ``True`` where a neighbour must be ignored.

        Returns
        -------
        ``(B, d)`` attended tokens and ``(B, k)`` attention weights averaged over heads.
        """
        values = keys if values is None else values
        b, k, d = keys.shape
        q = self.q(query).view(b, self.n_heads, 1, self.d_head)
        kk = self.k(keys).view(b, k, self.n_heads, self.d_head).transpose(1, 2)
        v = self.v(values).view(b, k, self.n_heads, self.d_head).transpose(1, 2)
        scores = (q @ kk.transpose(-1, -2)) / math.sqrt(self.d_head)  # (B, H, 1, k)
        if mask is not None:
            m = mask.view(1, 1, 1, k) if mask.dim() == 1 else mask.view(b, 1, 1, k)
            scores = scores.masked_fill(m, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = (self.dropout(weights) @ v).reshape(b, d)
        return self.out(out), weights.mean(dim=1).squeeze(1)


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
