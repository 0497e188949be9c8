"""A small fully connected network."""

from __future__ import annotations

import torch
from torch import nn


def mlp_layers(
    n_in: int, n_out: int, n_hidden: int, n_layers: int = 1, dropout: float = 0.1, activation: type = nn.GELU
) -> nn.Sequential:
    """``n_layers`` blocks of Linear -> LayerNorm -> ``activation`` -> Dropout, then a final Linear.

    Parameters
    ----------
    n_in, n_out, n_hidden
        Input, output and hidden widths.
    n_layers
        Number of hidden blocks (0 gives a single Linear layer).
    dropout
        Dropout after each hidden block.
    activation
        Activation class (``nn.GELU`` for SENCA, ``nn.ReLU`` for SpaCRD's encoders, as in the paper's code).

    Returns
    -------
    The layers as one :class:`torch.nn.Sequential` (its parameter names are ``0.weight``, ``1.weight``...).

    Examples
    --------
    >>> from torch import nn
    >>> from senca.nn import mlp_layers
    >>> [type(layer).__name__ for layer in mlp_layers(10, 4, 16, activation=nn.ReLU)]
    ['Linear', 'LayerNorm', 'ReLU', 'Dropout', 'Linear']
    """
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(width, n_hidden), nn.LayerNorm(n_hidden), activation(), nn.Dropout(dropout)]
        width = n_hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Dropout blocks, then a final Linear (see :func:`mlp_layers`).

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
        self.net = mlp_layers(n_in, n_out, n_hidden, n_layers, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(..., n_in)`` to ``(..., n_out)``."""
        return self.net(x)
