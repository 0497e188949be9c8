"""Preprocessing: combining sections and the spatial neighbour index used by the models."""

from ._concat import concat_sections
from ._neighbors import knn_index, spatial_neighbors

__all__ = ["concat_sections", "knn_index", "spatial_neighbors"]
