"""Plain-torch building blocks of the senca models (no AnnData, no scvi-tools)."""

from ._attention import NeighborhoodCrossAttention
from ._mlp import MLP
from ._shared_encoder import SharedEncoder

__all__ = ["MLP", "NeighborhoodCrossAttention", "SharedEncoder"]
