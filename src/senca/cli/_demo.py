"""``senca demo``: SENCA on a her2st section end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _app as opt
from ._app import app
from ._checks import check_accelerator, resolve_layer
from ._console import say, step, user_errors
from ._histology import ensure_histology
from ._io import CLIError, atomic_savefig, check_output, write_output
from ._senca import scores_against, train_senca


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Output directory.")] = Path("senca_demo"),
    section: Annotated[
        str, typer.Option("--section", metavar="NAME", help="her2st section with pathologist labels.")
    ] = "A1",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Folder holding her2st/ [default: $SENCA_DATA_DIR, then the download cache; missing files are "
            "downloaded unless SENCA_DOWNLOAD=0].",
            show_default=False,
        ),
    ] = None,
    n_regions: Annotated[
        int | None,
        typer.Option("--n-regions", "-k", metavar="K", min=1, help="[default: the number of pathologist classes]"),
    ] = None,
    n_top_genes: opt.TopGenesOpt = 3000,
    max_epochs: opt.FinetuneEpochsOpt = None,
    seed: opt.SeedOpt = 0,
    accelerator: opt.AccelOpt = "auto",
    overwrite: opt.OverwriteOpt = False,
) -> None:
    """Run SENCA on a her2st section end to end.

    Loads the section with its H&E image, computes histology features, fits SENCA, calls regions, writes
    OUT/her2st_<SECTION>_senca.h5ad and a PNG of the regions over the H&E beside the pathologist's, and prints the
    ARI against the pathologist (spots labelled 'undetermined' excluded).
    """
    with user_errors():
        if data_dir is not None and not (data_dir / "her2st").is_dir() and data_dir.name != "her2st":
            raise CLIError(f"{str(data_dir)!r} has no her2st/ folder; pass --data-dir pointing at the data folder")
        check_accelerator(accelerator)
        h5ad_path = check_output(out / f"her2st_{section}_senca.h5ad", overwrite=overwrite)
        png_path = out / f"her2st_{section}_regions.png"
        if png_path.exists() and not overwrite:
            raise CLIError(f"output {str(png_path)!r} already exists; pass --overwrite to replace it")

        import senca

        with step(f"loading her2st {section} with its H&E image"):
            adata = senca.datasets.her2st(section, image="hires", data_dir=data_dir)
        say(f"{adata.n_obs} spots x {adata.n_vars} genes")
        if "pathologist" not in adata.obs:
            raise CLIError(f"her2st {section} has no pathologist labels; use A1, B1, C1 or D1 with an image (A1)")
        truth = adata.obs["pathologist"].astype(str)
        if n_regions is None:
            n_regions = int(truth[~truth.isin(["undetermined", "nan"])].nunique())
        image_key = ensure_histology(adata, "X_histology", no_image=False)
        model = train_senca(
            adata,
            layer=resolve_layer(adata, None),
            image_key=image_key,
            spatial_key="spatial",
            sample_key=None,
            n_neighbors=6,
            n_latent=50,
            max_epochs=max_epochs,
            accelerator=accelerator,
            seed=seed,
            n_top_genes=n_top_genes,
        )
        adata.obsm["X_senca"] = model.get_latent_representation()
        from senca.tl import regions as call_regions

        with step(f"calling {n_regions} regions (GMM + refinement)"):
            call_regions(adata, n_regions=n_regions, use_rep="X_senca", key_added="senca_region", seed=seed)
        scores = scores_against(truth, adata.obs["senca_region"], drop=("undetermined",))
        with step(f"writing {h5ad_path}"):
            write_output(None, adata, h5ad_path)
        with step(f"drawing {png_path}"):
            from senca.cli._plot import regions_figure

            title = f"her2st {section}: SENCA regions (ARI {scores['ari']:.2f} against the pathologist)"
            fig = regions_figure(adata, ["pathologist", "senca_region"], title=title)
            atomic_savefig(fig, png_path, dpi=150, bbox_inches="tight")
        typer.echo(
            f"her2st {section}: ARI {scores['ari']:.3f}, NMI {scores.get('nmi', float('nan')):.3f} "
            f"(SENCA, {n_regions} regions, vs pathologist, 'undetermined' spots excluded)"
        )
        say(f"wrote {h5ad_path} and {png_path}")
