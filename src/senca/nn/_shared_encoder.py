"""One encoder shared by all modalities, told apart by a learned modality embedding."""

from __future__ import annotations

import torch
from torch import nn


class SharedEncoder(nn.Module):
    """Shared residual feed-forward encoder: ``t = u + FF(LayerNorm(u))`` with ``u = x + e_modality``.

    One set of weights serves every modality, which puts them in one space; a learned embedding per
    modality lets the encoder still tell them apart.

    Parameters
    ----------
    d_model
        Token width (input and output).
    n_modalities
        Number of modality embeddings (gene and image: 2).
    n_layers
        Number of residual feed-forward blocks.
    dropout
        Dropout inside each block.

    Examples
    --------
    >>> import torch
    >>> from senca.nn import SharedEncoder
    >>> enc = SharedEncoder(16)
    >>> enc(torch.zeros(4, 6, 16), modality=1).shape
    torch.Size([4, 6, 16])
    """

    def __init__(self, d_model: int, n_modalities: int = 2, n_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.modality_embedding = nn.Embedding(n_modalities, d_model)
        nn.init.normal_(self.modality_embedding.weight, std=0.02)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(d_model),
                nn.Linear(d_model, 2 * d_model),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(2 * d_model, d_model),
            )
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, modality: int) -> torch.Tensor:
        """Encode tokens ``(..., d_model)`` of modality number ``modality``."""
        t = x + self.modality_embedding.weight[modality]
        for block in self.blocks:
            t = t + block(t)
        return self.norm(t)
