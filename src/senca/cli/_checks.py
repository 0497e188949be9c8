"""Checks of the command-line inputs that run before any work: accelerator, layer, keys."""

from __future__ import annotations

from typing import Any

from senca._utils import layer_names

from ._io import CLIError

_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def check_accelerator(accelerator: str) -> None:
    """Refuse an unknown accelerator, or a GPU that torch cannot see, before any work is done."""
    if accelerator not in _ACCELERATORS:
        raise CLIError(f"--accelerator must be one of {', '.join(_ACCELERATORS)}, got {accelerator!r}")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise CLIError(f"--accelerator {accelerator}: torch sees no CUDA GPU here; use --accelerator cpu or auto")
    if accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise CLIError("--accelerator mps: the Apple MPS backend is not available here; use cpu or auto")


def resolve_layer(adata: Any, layer: str | None) -> str | None:
    if layer is None:
        return "counts" if "counts" in adata.layers else None
    if layer not in adata.layers:
        raise CLIError(f"layer {layer!r} not found (layers: {sorted(layer_names(adata))}); pass --layer")
    return layer


def require_obsm(adata: Any, key: str, what: str) -> None:
    if key not in adata.obsm:
        raise CLIError(f"obsm[{key!r}] ({what}) not found (obsm: {sorted(adata.obsm.keys())}); pass --spatial-key")


def require_obs(adata: Any, key: str, option: str, where: str = "") -> None:
    if key not in adata.obs:
        raise CLIError(f"obs[{key!r}] not found{where} (obs: {sorted(map(str, adata.obs.columns))}); pass {option}")


def key_free(mapping: Any, key: str, where: str, overwrite: bool) -> None:
    if not overwrite and key in mapping:
        raise CLIError(f"{where}[{key!r}] already exists in the input; pass --overwrite or choose another key")
