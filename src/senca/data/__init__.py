"""The key vocabulary and the neighbourhood mini-batch loader shared by the senca models."""

from ._constants import (
    DEFAULT_NEIGHBORS_OBSM_KEY,
    FEATURE_KEYS,
    MODULE_KEYS,
    NEIGHBOR_SUFFIX,
    REGISTRY_KEYS,
    neighbor_key,
)
from ._loader import DEFAULT_GATHER_KEYS, NeighborhoodDataLoader, NeighborhoodDataSplitter, gather_neighborhoods

__all__ = [
    "DEFAULT_GATHER_KEYS",
    "DEFAULT_NEIGHBORS_OBSM_KEY",
    "FEATURE_KEYS",
    "MODULE_KEYS",
    "NEIGHBOR_SUFFIX",
    "REGISTRY_KEYS",
    "NeighborhoodDataLoader",
    "NeighborhoodDataSplitter",
    "gather_neighborhoods",
    "neighbor_key",
]
