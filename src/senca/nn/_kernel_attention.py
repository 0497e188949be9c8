"""SENCA's attention layer: a Gaussian kernel on H&E tokens written as dot-product attention, plus learnable paths."""

from __future__ import annotations

import math

import torch
from torch import nn


class NeighborhoodKernelAttention(nn.Module):
    """Attention of each spot over its ``k - 1`` neighbours, started as a Gaussian kernel on the histology tokens.

    For spot ``i`` and neighbour ``j`` (column ``j`` of a neighbour index whose column 0 is the spot itself)::

        logit_ij = (q_i . k_j - |k_j|^2 / 2) / tau  +  g_i^T M g_j,    q = h + Q h,  k = h + K h

    with ``h`` the histology tokens, ``g`` the first ``n_gene_keys`` expression components divided by ``gene_scale``
    (their spread on the training data, so that the term's weights are scale-free) and ``tau`` the temperature.
    At its initial state (``Q = K = M = 0``) the first term is the Gaussian kernel ``-|h_i - h_j|^2 / (2 tau)`` up to
    a constant per row, which the softmax removes: the parameter-free estimator. ``Q``, ``K`` (H&E similarity) and
    ``M`` (expression similarity) start at zero, so training can open them; ``tau`` starts at the fitted bandwidth.
    Without histology tokens only the expression term is left (uniform weights at the initial state).

    Parameters
    ----------
    n_keys
        Width of the histology tokens (0: no histology).
    n_gene_keys
        Number of expression components read by the expression-similarity term.
    log_temperature
        Initial ``log(tau)``.
    gene_scale
        ``(n_gene_keys,)`` spread of the expression components (default: 1).

    Examples
    --------
    >>> import torch
    >>> from senca.nn import NeighborhoodKernelAttention
    >>> layer = NeighborhoodKernelAttention(n_keys=3, n_gene_keys=2, log_temperature=0.0)
    >>> index = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 1, 0]])
    >>> a = layer(torch.randn(3, 3), torch.randn(3, 4), index)
    >>> a.shape, bool(torch.allclose(a.sum(1), torch.ones(3)))
    (torch.Size([3, 2]), True)
    """

    def __init__(
        self, n_keys: int, n_gene_keys: int, log_temperature: float = 0.0, gene_scale: torch.Tensor | None = None
    ):
        super().__init__()
        self.n_keys, self.n_gene_keys = int(n_keys), int(n_gene_keys)
        scale = torch.ones(self.n_gene_keys) if gene_scale is None else torch.as_tensor(gene_scale, dtype=torch.float32)
        self.register_buffer("gene_scale", scale.clamp_min(1e-6))
        self.log_temperature = nn.Parameter(torch.tensor(float(log_temperature)), requires_grad=self.n_keys > 0)
        self.register_buffer("initial_log_temperature", torch.tensor(float(log_temperature)))
        if self.n_keys > 0:
            self.query = nn.Linear(self.n_keys, self.n_keys, bias=False)
            self.key = nn.Linear(self.n_keys, self.n_keys, bias=False)
            nn.init.zeros_(self.query.weight)
            nn.init.zeros_(self.key.weight)
        self.gene_bilinear = nn.Parameter(torch.zeros(self.n_gene_keys, self.n_gene_keys))

    def reset_temperature(self, log_temperature: float) -> None:
        """Set the temperature and its initial value (the fitted bandwidth), leaving the other weights alone."""
        with torch.no_grad():
            self.log_temperature.fill_(float(log_temperature))
            self.initial_log_temperature.fill_(float(log_temperature))

    def forward(
        self,
        keys: torch.Tensor | None,
        genes: torch.Tensor,
        index: torch.Tensor,
        initial: bool = False,
    ) -> torch.Tensor:
        """Attention weights ``(n, k - 1)`` over each spot's neighbours (rows sum to 1).

        Parameters
        ----------
        keys
            ``(n, n_keys)`` histology tokens, or ``None`` without histology.
        genes
            ``(n, >= n_gene_keys)`` expression components.
        index
            ``(n, k)`` neighbour rows, the spot itself in column 0.
        initial
            Use the initial state (the estimator): initial temperature, learnable paths off.
        """
        nbr = index[:, 1:]
        logits = torch.zeros(nbr.shape, dtype=genes.dtype, device=genes.device)
        if keys is not None and self.n_keys > 0:
            log_t = self.initial_log_temperature if initial else self.log_temperature
            q, k = (keys, keys) if initial else (keys + self.query(keys), keys + self.key(keys))
            kj = k[nbr]  # (n, k-1, r)
            logits = logits + (torch.einsum("nr,nkr->nk", q, kj) - 0.5 * (kj**2).sum(-1)) * torch.exp(-log_t)
        if not initial and self.n_gene_keys > 0:
            g = genes[:, : self.n_gene_keys] / self.gene_scale
            logits = logits + torch.einsum("nr,rs,nks->nk", g, self.gene_bilinear, g[nbr])
        return torch.softmax(logits, dim=-1)


def mix(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One attention pass: ``z_i <- z_i / k + (1 - 1/k) sum_j a_ij z_j`` (the spot keeps its share ``1/k``).

    Parameters
    ----------
    values
        ``(n, d)`` values of every spot.
    index
        ``(n, k)`` neighbour rows, the spot itself in column 0.
    weights
        ``(n, k - 1)`` attention weights over the neighbours.

    Returns
    -------
    ``(n, d)`` mixed values (``values`` itself when ``k == 1``).

    Examples
    --------
    >>> import torch
    >>> from senca.nn import mix
    >>> index = torch.tensor([[0, 1], [1, 0]])
    >>> mix(torch.tensor([[0.0], [2.0]]), index, torch.ones(2, 1))
    tensor([[1.],
            [1.]])
    """
    k = index.shape[1]
    if k < 2:
        return values
    return values / k + (1.0 - 1.0 / k) * mix_neighbours(values, index, weights)


def mix_neighbours(values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_j a_ij v_j`` over each spot's neighbours (the spot itself when it has none)."""
    if index.shape[1] < 2:
        return values
    return torch.einsum("nk,nkd->nd", weights, values[index[:, 1:]])


def log_bandwidth(bandwidth: float, scale: float = 1.0) -> float:
    """``log(tau)`` of a kernel ``exp(-d^2 / (2 scale^2 bandwidth))`` written as attention with temperature ``tau``."""
    return math.log(max(float(scale) ** 2 * float(bandwidth), 1e-12))
