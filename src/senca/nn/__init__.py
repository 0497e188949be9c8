"""Plain-torch building blocks of the senca models (no AnnData, no scvi-tools)."""

from ._attention import CentreCrossAttention
from ._contrastive import info_nce
from ._kernel_attention import NeighborhoodKernelAttention, log_bandwidth, mix
from ._mlp import mlp_layers

__all__ = ["CentreCrossAttention", "NeighborhoodKernelAttention", "info_nce", "log_bandwidth", "mix", "mlp_layers"]
