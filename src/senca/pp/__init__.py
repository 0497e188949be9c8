"""Preprocessing: combining sections and the spatial neighbour index used by the models."""

from ._concat import concat_sections
from ._genes import select_genes
from ._neighbors import knn_index, spatial_neighbors

__all__ = ["concat_sections", "knn_index", "select_genes", "spatial_neighbors"]
