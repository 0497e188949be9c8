"""senca: tissue regions in cancer from spatial transcriptomics and H&E.

Submodules are imported lazily so that ``import senca`` (and the ``senca`` command line) stays fast:
:mod:`senca.model` pulls in scvi-tools and Lightning only when first used.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("senca")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

_SUBMODULES = ("datasets", "io", "pp", "im", "nn", "module", "model", "data", "tl", "pl", "metrics")

__all__ = [*_SUBMODULES, "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = import_module(f"senca.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'senca' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
