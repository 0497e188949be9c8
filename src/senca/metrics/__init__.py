"""Evaluation metrics: region agreement (ARI/NMI) and detection (AUC/AP/F1 at the GMM threshold)."""

from ._threshold import gmm_threshold

__all__ = ["gmm_threshold"]
