"""A small fully connected network."""

from __future__ import annotations

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
