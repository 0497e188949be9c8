"""Plotting: region maps over the H&E, attention maps, cancer scores and training curves (matplotlib)."""

from ._attention import attention
from ._cancer_score import cancer_score
from ._history import history
from ._regions import regions

__all__ = ["attention", "cancer_score", "history", "regions"]
