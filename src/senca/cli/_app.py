"""The ``senca`` Typer application every command registers on, and the options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="senca",
    help=(
        "Tissue regions in cancer from spatial transcriptomics and H&E.\n\n"
        "Inputs and outputs are AnnData .h5ad files or SpatialData .zarr stores. Outputs are written atomically and "
        "never replace an existing file unless --overwrite is given."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

OutputOpt = Annotated[
    Path, typer.Option("-o", "--output", metavar="PATH", help="Output .h5ad or .zarr.", show_default=False)
]
SeedOpt = Annotated[
    int, typer.Option("--seed", metavar="N", help="Random seed; the same seed gives the same output on CPU.")
]
AccelOpt = Annotated[
    str, typer.Option("--accelerator", metavar="NAME", help="Lightning accelerator for training: auto, cpu, gpu, mps.")
]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an existing output (even an input) and existing keys in the data."),
]
TableKeyOpt = Annotated[str, typer.Option("--table-key", metavar="KEY", help="Table of a SpatialData .zarr input.")]
ImageKeyOpt = Annotated[
    str,
    typer.Option(
        "--image-key",
        metavar="KEY",
        help="obsm key of the per-spot histology features. If absent and the input holds an H&E image, the "
        "features are computed first with the 'stats' extractor.",
    ),
]
SpatialKeyOpt = Annotated[str, typer.Option("--spatial-key", metavar="KEY", help="obsm key of spot coordinates.")]
SampleKeyOpt = Annotated[
    str | None,
    typer.Option("--sample-key", metavar="KEY", help="obs key of the section, for several sections in one file."),
]
NoImageOpt = Annotated[bool, typer.Option("--no-image", help="Use expression and space only (no histology).")]
LayerOpt = Annotated[
    str | None,
    typer.Option("--layer", metavar="NAME", help="Layer with raw counts [default: 'counts' if present, else X]."),
]
TopGenesOpt = Annotated[
    int,
    typer.Option(
        "--n-top-genes",
        metavar="N",
        min=0,
        help="Train on the N most variable genes (seurat_v3 on the raw counts); 0 uses all genes. "
        "The output keeps every gene.",
    ),
]
MaxEpochsOpt = Annotated[
    int | None,
    typer.Option("--max-epochs", metavar="N", min=1, help="Training epochs [default: 30, each at most 4,096 spots]."),
]
FinetuneEpochsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-epochs",
        metavar="N",
        min=1,
        help="Fine-tune SENCA's attention for N epochs, kept only if held-out loss improves "
        "[default: no fine-tuning; the number of attention passes is always fitted].",
    ),
]
