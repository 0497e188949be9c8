"""``senca regions``: tissue regions with SENCA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _app as opt
from ._app import app
from ._checks import check_accelerator, key_free, require_obs, require_obsm, resolve_layer
from ._console import fmt_scores, print_counts, say, step, user_errors
from ._histology import ensure_histology
from ._io import CLIError, check_input, check_output, read_input, write_output
from ._senca import scores_against, train_senca


@app.command()
def regions(
    input: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Input .h5ad or .zarr (raw counts).", show_default=False)
    ],
    output: opt.OutputOpt,
    n_regions: Annotated[
        int | None,
        typer.Option("--n-regions", "-k", metavar="K", min=1, help="Number of regions [default: chosen by BIC]."),
    ] = None,
    image_key: opt.ImageKeyOpt = "X_histology",
    no_image: opt.NoImageOpt = False,
    layer: opt.LayerOpt = None,
    spatial_key: opt.SpatialKeyOpt = "spatial",
    sample_key: opt.SampleKeyOpt = None,
    n_top_genes: opt.TopGenesOpt = 3000,
    n_neighbors: Annotated[int, typer.Option("--n-neighbors", metavar="N", min=2, help="Spots per neighbourhood.")] = 6,
    n_latent: Annotated[
        int,
        typer.Option("--n-latent", metavar="N", min=2, help="Expression components (principal axes) of the embedding."),
    ] = 50,
    max_epochs: opt.FinetuneEpochsOpt = None,
    method: Annotated[
        str, typer.Option("--method", metavar="NAME", help="Clustering of the embedding: gmm, leiden or kmeans.")
    ] = ("gmm"),
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="Neighbourhood-majority refinement.")] = True,
    key_added: Annotated[
        str, typer.Option("--key-added", metavar="KEY", help="obs key of the regions.")
    ] = "senca_region",
    latent_key: Annotated[
        str, typer.Option("--latent-key", metavar="KEY", help="obsm key of the embedding.")
    ] = "X_senca",
    truth_key: Annotated[
        str | None,
        typer.Option("--truth-key", metavar="KEY", help="obs key of known regions: print ARI/NMI against it."),
    ] = None,
    save_model: Annotated[
        Path | None, typer.Option("--save-model", metavar="DIR", help="Also save the trained model to this directory.")
    ] = None,
    table_key: opt.TableKeyOpt = "table",
    seed: opt.SeedOpt = 0,
    accelerator: opt.AccelOpt = "auto",
    overwrite: opt.OverwriteOpt = False,
) -> None:
    """Tissue regions with SENCA from expression, H&E and space.

    Sets SENCA up on raw counts and histology features, fits its attention passes (seconds) and writes its embedding
    to obsm[LATENT_KEY]: each spot's expression principal components mixed with its neighbours', weighted by how
    alike they look in H&E. Regions are called from it into obs[KEY_ADDED]. Without features in obsm[IMAGE_KEY] they
    are computed from the H&E image; with --no-image the neighbours are weighted uniformly (expression and space
    only).
    """
    with user_errors():
        inp = check_input(input)
        out = check_output(output, [inp], overwrite)
        check_accelerator(accelerator)
        if method not in ("gmm", "leiden", "kmeans"):
            raise CLIError(f"--method must be 'gmm', 'leiden' or 'kmeans', got {method!r}")
        if save_model is not None and save_model.exists() and not overwrite:
            raise CLIError(f"--save-model directory {str(save_model)!r} already exists; pass --overwrite")
        with step(f"reading {inp}"):
            loaded = read_input(inp, table_key)
        adata = loaded.adata
        layer = resolve_layer(adata, layer)
        require_obsm(adata, spatial_key, "spot coordinates")
        if sample_key is not None:
            require_obs(adata, sample_key, "--sample-key")
        if truth_key is not None:
            require_obs(adata, truth_key, "--truth-key")
        key_free(adata.obs, key_added, "obs", overwrite)
        key_free(adata.obsm, latent_key, "obsm", overwrite)
        image_key = ensure_histology(adata, image_key, no_image)

        model = train_senca(
            adata,
            layer=layer,
            image_key=image_key,
            spatial_key=spatial_key,
            sample_key=sample_key,
            n_neighbors=n_neighbors,
            n_latent=n_latent,
            max_epochs=max_epochs,
            accelerator=accelerator,
            seed=seed,
            n_top_genes=n_top_genes,
            overwrite=overwrite,
        )
        adata.obsm[latent_key] = model.get_latent_representation()
        from senca.tl import regions as call_regions

        with step(f"calling regions ({method}) into obs[{key_added!r}]"):
            call_regions(
                adata,
                n_regions=n_regions,
                use_rep=latent_key,
                method=method,
                refine=refine,
                spatial_key=spatial_key,
                n_neighbors=n_neighbors,
                sample_key=sample_key,
                key_added=key_added,
                seed=seed,
                overwrite=overwrite,
            )
        print_counts(adata.obs[key_added], "regions")
        if truth_key is not None:
            scores = scores_against(adata.obs[truth_key], adata.obs[key_added])
            say(fmt_scores(scores) + f" (vs obs[{truth_key!r}])")
        if save_model is not None:
            with step(f"saving the model to {save_model}"):
                model.save(str(save_model), overwrite=overwrite)
        with step(f"writing {out}"):
            write_output(loaded, adata, out, keys=[key_added, latent_key])
        say(f"wrote {out}: obs[{key_added!r}], obsm[{latent_key!r}]")
