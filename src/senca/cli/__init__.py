"""The ``senca`` command line: regions, cancer detection and histology features from ``.h5ad`` / ``.zarr`` files.

Run ``senca --help`` (or ``python -m senca.cli --help``). Every command reads AnnData (``.h5ad``) or SpatialData
(``.zarr``), writes its output atomically (a temporary file in the same directory, then :func:`os.replace`), never
replaces an existing file or an input unless ``--overwrite`` is given, and reports bad input as one line on stderr
with exit code 1.

Only :mod:`typer` is imported at start-up; anndata, scanpy, scvi-tools and Lightning are imported inside the
commands, so that ``senca --help`` returns at once.

One module per command (``_demo``, ``_features``, ``_regions``, ``_detect``), each registering on the application of
``_app``; what several commands share lives in ``_console`` (output, error translation), ``_checks`` (input checks),
``_histology``, ``_senca`` (training SENCA), ``_io`` (reading and atomic writing) and ``_plot``.
"""

from __future__ import annotations

from . import _demo, _detect, _features, _regions  # noqa: F401 - importing a command registers it on the app
from ._app import app
from ._detect import binary_labels
from ._io import CLIError

__all__ = ["CLIError", "app", "binary_labels", "main"]


def main() -> None:
    """Entry point of the ``senca`` command."""
    app(prog_name="senca")
