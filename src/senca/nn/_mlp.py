"""A small fully connected network."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Dropout blocks, then a final Linear.

    Works on inputs of any leading shape ``(..., n_in)``.

    Parameters
    ----------
    n_in
        Input width.
    n_out
        Output width.
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden layers (0 gives a single Linear layer).
    dropout
        Dropout after each hidden layer.

    Examples
    --------
    >>> import torch
    >>> from senca.nn import MLP
    >>> MLP(10, 4, n_hidden=16)(torch.zeros(3, 7, 10)).shape
    torch.Size([3, 7, 4])
    """

    def __init__(self, n_in: int, n_out: int, n_hidden: int = 128, n_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(n_layers):
            layers += [nn.Linear(width, n_hidden), nn.LayerNorm(n_hidden), nn.GELU(), nn.Dropout(dropout)]
            width = n_hidden
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(..., n_in)`` to ``(..., n_out)``."""
        return self.net(x)
