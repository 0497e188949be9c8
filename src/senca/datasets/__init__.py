"""Datasets: public spatial transcriptomics data read from ``$SENCA_DATA_DIR`` or downloaded, and a simulator."""

from ._synthetic import synthetic

__all__ = ["synthetic"]
