"""Registry keys and the neighbourhood mini-batch loader shared by the senca models."""

from ._constants import DEFAULT_NEIGHBORS_OBSM_KEY, NEIGHBOR_SUFFIX, REGISTRY_KEYS, neighbor_key
from ._loader import DEFAULT_GATHER_KEYS, NeighborhoodDataLoader, NeighborhoodDataSplitter

__all__ = [
    "DEFAULT_GATHER_KEYS",
    "DEFAULT_NEIGHBORS_OBSM_KEY",
    "NEIGHBOR_SUFFIX",
    "REGISTRY_KEYS",
    "NeighborhoodDataLoader",
    "NeighborhoodDataSplitter",
    "neighbor_key",
]
