"""scvi-tools modules (tensors only): the networks and their losses."""

from ._senca import SENCAModule
from ._spacrd import SpaCRDModule

__all__ = ["SENCAModule", "SpaCRDModule"]
