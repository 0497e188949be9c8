"""Evaluation metrics: region agreement (ARI/NMI) and detection (AUC/AP/F1 at the GMM threshold)."""

from ._detection import detection_scores
from ._regions import region_scores
from ._threshold import gmm_threshold

__all__ = ["detection_scores", "gmm_threshold", "region_scores"]
