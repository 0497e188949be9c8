"""Shared fixtures: real data from $SENCA_DATA_DIR (tests skip cleanly without it) and quiet, single-threaded torch."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
warnings.filterwarnings("ignore", category=SyntaxWarning)


@pytest.fixture(scope="session")
def senca_data_dir() -> Path:
    """Root of the real data (``$SENCA_DATA_DIR``); skips the test when it is not set."""
    root = os.environ.get("SENCA_DATA_DIR")
    if not root:
        pytest.skip("SENCA_DATA_DIR is not set: real-data tests skipped")
    path = Path(root).resolve()
    if not (path / "her2st").is_dir():
        pytest.skip(f"SENCA_DATA_DIR={root} has no her2st/ folder")
    return path


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
