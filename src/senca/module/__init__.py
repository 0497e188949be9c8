"""scvi-tools modules (tensors only): the networks and their losses."""

from ._senca import SENCAModule

__all__ = ["SENCAModule"]
