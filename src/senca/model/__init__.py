"""scvi-tools models (AnnData / SpatialData in, embeddings and scores out)."""

from ._senca import SENCA
from ._spacrd import SpaCRD

__all__ = ["SENCA", "SpaCRD"]
