"""Histology: scale-aware spot patches and per-spot H&E feature extractors (AnnData and SpatialData)."""

from ._cnn import CNNExtractor
from ._features import extract_features
from ._patches import PatchChunk, spot_patches
from ._stats import stats_feature_names, stats_features
from ._timm import TimmExtractor

__all__ = [
    "CNNExtractor",
    "PatchChunk",
    "TimmExtractor",
    "extract_features",
    "spot_patches",
    "stats_feature_names",
    "stats_features",
]
