"""Datasets: public spatial transcriptomics data read from ``$SENCA_DATA_DIR`` or downloaded, and a simulator."""

from ._her2st import her2st, her2st_labels, her2st_sections, spacrd_labels
from ._synthetic import synthetic

__all__ = ["her2st", "her2st_labels", "her2st_sections", "spacrd_labels", "synthetic"]
