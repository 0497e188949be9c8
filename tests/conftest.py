"""Shared fixtures: real data from $SENCA_DATA_DIR (tests skip cleanly without it), one torch and one numba thread."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

# `pytest -n 2` runs two workers on two cores: each must stay on one thread, or OpenMP's spinning threads fight over the
# cores and the suite runs 10-30x slower. Set before the workers start and before torch loads its thread pool.
# numba is capped at run time instead (fixture below), never through NUMBA_NUM_THREADS: numba reads that variable when
# it is imported and again at every compilation, and raises once its threads run if the two readings differ. A pytest
# plugin (fast-array-utils', a scanpy dependency) imports numba before this file, so a value set here reached numba
# only at its next compilation, after scanpy had started the threads: `python -m pytest` failed with "Cannot set
# NUMBA_NUM_THREADS to a different value once the threads have been launched".
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import matplotlib  # noqa: E402  (after the thread caps above)
import pytest  # noqa: E402

matplotlib.use("Agg")
warnings.filterwarnings("ignore", category=SyntaxWarning)


def pytest_report_header(config) -> str:
    """The stack under test, first in the log (CI runs scvi-tools 1.4 on Python 3.11, .ci/compat 1.5 on 3.12)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    names = ("scvi-tools", "torch", "lightning", "anndata", "scanpy", "numpy", "numba")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} missing")
    return f"senca stack: Python {platform.python_version()}, " + ", ".join(found)


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


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch and one numba thread for every test: a library that raises a thread count (seen in the full suite after
    the demo ran) must not slow every later test on that worker."""
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)  # this thread's share of numba's pool; the pool itself is left as numba started it
