"""Plain-torch building blocks of the senca models (no AnnData, no scvi-tools)."""

from ._attention import CentreCrossAttention, NeighborhoodCrossAttention
from ._contrastive import info_nce
from ._mlp import MLP, mlp_layers
from ._shared_encoder import SharedEncoder

__all__ = ["MLP", "CentreCrossAttention", "NeighborhoodCrossAttention", "SharedEncoder", "info_nce", "mlp_layers"]
