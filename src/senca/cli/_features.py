"""``senca features``: histology features per spot from the H&E image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _app as opt
from ._app import app
from ._checks import key_free
from ._console import say, step, user_errors
from ._histology import has_image
from ._io import CLIError, check_input, check_output, read_input, write_output


@app.command()
def features(
    input: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Input .h5ad or .zarr with an H&E image.", show_default=False)
    ],
    output: opt.OutputOpt,
    method: Annotated[
        str, typer.Option("--method", metavar="NAME", help="Feature extractor: stats, cnn or timm.")
    ] = "stats",
    key_added: Annotated[str, typer.Option("--key-added", metavar="KEY", help="obsm key written.")] = "X_histology",
    table_key: opt.TableKeyOpt = "table",
    seed: opt.SeedOpt = 0,
    overwrite: opt.OverwriteOpt = False,
) -> None:
    """Histology features per spot from the H&E image.

    Writes obsm[KEY_ADDED] (default X_histology), read by `senca regions` and `senca detect`.
    """
    with user_errors():
        inp = check_input(input)
        out = check_output(output, [inp], overwrite)
        if method not in ("stats", "cnn", "timm"):
            raise CLIError(f"--method must be 'stats', 'cnn' or 'timm', got {method!r}")
        with step(f"reading {inp}"):
            loaded = read_input(inp, table_key)
        adata = loaded.adata
        key_free(adata.obsm, key_added, "obsm", overwrite)
        if not has_image(adata):
            raise CLIError(f"{str(inp)!r} has no H&E image (uns['spatial'][library]['images'] is empty or missing)")
        from senca._utils import set_seed
        from senca.im import extract_features

        set_seed(seed)
        with step(f"extracting histology features ({method}) into obsm[{key_added!r}]"):
            extract_features(adata, method=method, key_added=key_added, overwrite=overwrite)
        with step(f"writing {out}"):
            write_output(loaded, adata, out, keys=[key_added])
        say(f"wrote {out}: obsm[{key_added!r}] with shape {tuple(adata.obsm[key_added].shape)}")
