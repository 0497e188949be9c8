"""Histology features for the commands: taken from ``obsm``, or computed from the H&E image when absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._console import step
from ._io import CLIError


def has_image(adata: Any) -> bool:
    spatial = adata.uns.get("spatial")
    if not isinstance(spatial, dict):
        return False
    return any(isinstance(v, dict) and v.get("images") for v in spatial.values())


def ensure_histology(adata: Any, image_key: str, no_image: bool) -> str | None:
    """Return the obsm key of histology features, computing them from the H&E image when absent."""
    if no_image:
        return None
    if image_key in adata.obsm:
        return image_key
    if has_image(adata):
        from senca.im import extract_features

        with step(f"extracting histology features (stats) into obsm[{image_key!r}]"):
            extract_features(adata, method="stats", key_added=image_key)
        return image_key
    raise CLIError(
        f"obsm[{image_key!r}] not found and the input has no H&E image (obsm: {sorted(adata.obsm.keys())}); "
        "run `senca features` on a file with an image, pass --image-key, or pass --no-image"
    )


def ensure_histology_in(adata: Any, image_key: str, path: Path) -> None:
    if image_key in adata.obsm:
        return
    if not has_image(adata):
        raise CLIError(
            f"obsm[{image_key!r}] not found in {str(path)!r} and it has no H&E image; "
            "run `senca features` on a file with an image, pass --image-key, or pass --no-image (expression only)"
        )
    ensure_histology(adata, image_key, no_image=False)
