"""The ``senca`` command line: regions, cancer detection and histology features from ``.h5ad`` / ``.zarr`` files.

Run ``senca --help`` (or ``python -m senca.cli --help``). Every command reads AnnData (``.h5ad``) or SpatialData
(``.zarr``), writes its output atomically (a temporary file in the same directory, then :func:`os.replace`), never
replaces an existing file or an input unless ``--overwrite`` is given, and reports bad input as one line on stderr
with exit code 1.

Only :mod:`typer` is imported at start-up; anndata, scanpy, scvi-tools and Lightning are imported inside the
commands, so that ``senca --help`` returns at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from senca._cli._io import CLIError, atomic_savefig, check_input, check_output, one_line, read_input, write_output

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

# --------------------------------------------------------------------------------------------------------------
# shared options

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
    typer.Option("--max-epochs", metavar="N", min=1, help="Training epochs [default: scaled to the data size]."),
]


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _say(msg: str, done: bool = False) -> None:
    """One progress line on stderr (no rich markup: paths and keys are printed as they are)."""
    console = _console()
    if done:
        console.print("\u2713", style="green", end=" ", markup=False)
    console.print(msg, markup=False)


@contextmanager
def _step(msg: str) -> Iterator[None]:
    """Print a step before it runs and its duration after (no spinner: steps may draw their own progress bar)."""
    t0 = time.perf_counter()
    _say(f"{msg} ...")
    yield
    _say(f"{msg} ({time.perf_counter() - t0:.1f} s)", done=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn input errors into one line on stderr and exit code 1.

    ``SENCA_DEBUG=1`` re-raises them with their traceback instead.
    """
    _quiet_libraries()
    try:
        yield
    except typer.Exit:
        raise
    except (CLIError, FileNotFoundError, KeyError, ValueError, TypeError) as e:
        if os.environ.get("SENCA_DEBUG"):
            raise
        prefix = "" if isinstance(e, CLIError) else f"{type(e).__name__}: "
        typer.echo(f"Error: {prefix}{one_line(e)}", err=True)
        raise typer.Exit(code=1) from None


# --------------------------------------------------------------------------------------------------------------
# helpers shared by the commands


def _quiet_libraries() -> None:
    """Silence library chatter (deprecations, Lightning's tips and INFO lines); call again after imports."""
    import logging
    import warnings

    for category in (FutureWarning, DeprecationWarning, SyntaxWarning):
        warnings.filterwarnings("ignore", category=category)
    for message in (
        ".*LeafSpec.*",
        ".*litlogger.*",
        ".*deterministic=True.*benchmark=True.*",
        ".*smaller than the logging interval.*",
        ".*does not have many workers.*",
        ".*zarr v3 autosharding.*",
        ".*Transforming to str index.*",
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if "scvi" in sys.modules:
        sys.modules["scvi"].settings.verbosity = logging.WARNING


def _torch_threads() -> None:
    """Respect OMP_NUM_THREADS for torch as well (torch otherwise takes every core)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        import torch

        torch.set_num_threads(int(n))


_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _check_accelerator(accelerator: str) -> None:
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


def _resolve_layer(adata: Any, layer: str | None) -> str | None:
    if layer is None:
        return "counts" if "counts" in adata.layers else None
    if layer not in adata.layers:
        raise CLIError(f"layer {layer!r} not found (layers: {sorted(adata.layers.keys())}); pass --layer")
    return layer


def _has_image(adata: Any) -> bool:
    spatial = adata.uns.get("spatial")
    if not isinstance(spatial, dict):
        return False
    return any(isinstance(v, dict) and v.get("images") for v in spatial.values())


def _ensure_histology(adata: Any, image_key: str, no_image: bool) -> str | None:
    """Return the obsm key of histology features, computing them from the H&E image when absent."""
    if no_image:
        return None
    if image_key in adata.obsm:
        return image_key
    if _has_image(adata):
        from senca.im import extract_features

        with _step(f"extracting histology features (stats) into obsm[{image_key!r}]"):
            extract_features(adata, method="stats", key_added=image_key)
        return image_key
    raise CLIError(
        f"obsm[{image_key!r}] not found and the input has no H&E image (obsm: {sorted(adata.obsm.keys())}); "
        "run `senca features` on a file with an image, pass --image-key, or pass --no-image"
    )


def _require_obsm(adata: Any, key: str, what: str) -> None:
    if key not in adata.obsm:
        raise CLIError(f"obsm[{key!r}] ({what}) not found (obsm: {sorted(adata.obsm.keys())}); pass --spatial-key")


def _require_obs(adata: Any, key: str, option: str, where: str = "") -> None:
    if key not in adata.obs:
        raise CLIError(f"obs[{key!r}] not found{where} (obs: {sorted(map(str, adata.obs.columns))}); pass {option}")


def _key_free(mapping: Any, key: str, where: str, overwrite: bool) -> None:
    if not overwrite and key in mapping:
        raise CLIError(f"{where}[{key!r}] already exists in the input; pass --overwrite or choose another key")


def _train_senca(
    adata: Any,
    *,
    layer: str | None,
    image_key: str | None,
    spatial_key: str,
    sample_key: str | None,
    n_neighbors: int,
    n_latent: int,
    max_epochs: int | None,
    accelerator: str,
    seed: int,
    n_top_genes: int = 0,
) -> Any:
    """Set up and train SENCA on ``adata`` (or on its ``n_top_genes`` most variable genes); return the model."""
    _quiet_libraries()
    adata = _top_genes(adata, n_top_genes, layer, sample_key)
    with _step("importing scvi-tools"):
        from senca.model import SENCA
    _quiet_libraries()
    _torch_threads()
    from senca._utils import set_seed

    set_seed(seed)
    SENCA.setup_anndata(
        adata,
        layer=layer,
        image_key=image_key,
        spatial_key=spatial_key,
        sample_key=sample_key,
        n_neighbors=n_neighbors,
        library_key="library_size" if "library_size" in adata.obs else None,
    )
    model = SENCA(adata, n_latent=n_latent)
    _say(f"training SENCA on {adata.n_obs} spots x {adata.n_vars} genes" + ("" if image_key else " (no histology)"))
    t0 = time.perf_counter()
    model.train(max_epochs=max_epochs, accelerator=accelerator, seed=seed)
    _say(f"trained SENCA ({time.perf_counter() - t0:.1f} s)", done=True)
    return model


def _top_genes(adata: Any, n_top_genes: int, layer: str | None, sample_key: str | None) -> Any:
    """A copy of ``adata`` restricted to its most variable genes, with ``obs["library_size"]`` over all genes."""
    if not n_top_genes:
        return adata
    from senca.pp import select_genes

    with _step(f"selecting the {min(n_top_genes, adata.n_vars)} most variable of {adata.n_vars} genes"):
        return select_genes(adata, n_top_genes=n_top_genes, layer=layer, sample_key=sample_key, overwrite=True)


def _print_counts(series: Any, title: str) -> None:
    counts = series.value_counts().sort_index()
    _say(f"{title}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))


def _fmt_scores(scores: dict, skip: tuple[str, ...] = ("threshold",)) -> str:
    """``ARI 0.512, NMI 0.431`` from a metrics dict; counts (``n``, ``n_pos``) as integers."""
    parts = []
    for k, v in scores.items():
        if k in skip:
            continue
        if k == "n" or k.startswith("n_"):
            parts.append(f"{k} {int(v)}")
        else:
            parts.append(f"{k.upper()} {float(v):.3f}")
    return ", ".join(parts)


def _region_scores(truth: Any, pred: Any, drop: tuple[str, ...] = ()) -> dict[str, float]:
    import numpy as np

    truth = truth.astype(str).to_numpy()
    pred = pred.astype(str).to_numpy()
    keep = ~np.isin(truth, drop) & (truth != "nan")
    try:
        from senca.metrics import region_scores
    except ImportError:  # pragma: no cover - senca.metrics.region_scores is part of the package
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        return {
            "ari": float(adjusted_rand_score(truth[keep], pred[keep])),
            "nmi": float(normalized_mutual_info_score(truth[keep], pred[keep])),
        }
    return {k: v for k, v in region_scores(truth[keep], pred[keep]).items() if np.isscalar(v)}


# --------------------------------------------------------------------------------------------------------------
# commands


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
    n_top_genes: TopGenesOpt = 3000,
    max_epochs: MaxEpochsOpt = None,
    seed: SeedOpt = 0,
    accelerator: AccelOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Run SENCA on a her2st section end to end.

    Loads the section with its H&E image, computes histology features, trains SENCA, calls regions, writes
    OUT/her2st_<SECTION>_senca.h5ad and a PNG of the regions over the H&E beside the pathologist's, and prints the
    ARI against the pathologist (spots labelled 'undetermined' excluded).
    """
    with _user_errors():
        if data_dir is not None and not (data_dir / "her2st").is_dir() and data_dir.name != "her2st":
            raise CLIError(f"{str(data_dir)!r} has no her2st/ folder; pass --data-dir pointing at the data folder")
        _check_accelerator(accelerator)
        h5ad_path = check_output(out / f"her2st_{section}_senca.h5ad", overwrite=overwrite)
        png_path = out / f"her2st_{section}_regions.png"
        if png_path.exists() and not overwrite:
            raise CLIError(f"output {str(png_path)!r} already exists; pass --overwrite to replace it")

        import senca

        with _step(f"loading her2st {section} with its H&E image"):
            adata = senca.datasets.her2st(section, image="hires", data_dir=data_dir)
        _say(f"{adata.n_obs} spots x {adata.n_vars} genes")
        if "pathologist" not in adata.obs:
            raise CLIError(f"her2st {section} has no pathologist labels; use A1, B1, C1 or D1 with an image (A1)")
        truth = adata.obs["pathologist"].astype(str)
        if n_regions is None:
            n_regions = int(truth[~truth.isin(["undetermined", "nan"])].nunique())
        image_key = _ensure_histology(adata, "X_histology", no_image=False)
        model = _train_senca(
            adata,
            layer=_resolve_layer(adata, None),
            image_key=image_key,
            spatial_key="spatial",
            sample_key=None,
            n_neighbors=6,
            n_latent=32,
            max_epochs=max_epochs,
            accelerator=accelerator,
            seed=seed,
            n_top_genes=n_top_genes,
        )
        adata.obsm["X_senca"] = model.get_latent_representation()
        from senca.tl import regions as call_regions

        with _step(f"calling {n_regions} regions (GMM + refinement)"):
            call_regions(adata, n_regions=n_regions, use_rep="X_senca", key_added="senca_region", seed=seed)
        scores = _region_scores(truth, adata.obs["senca_region"], drop=("undetermined",))
        with _step(f"writing {h5ad_path}"):
            write_output(None, adata, h5ad_path)
        with _step(f"drawing {png_path}"):
            from senca._cli._plot import regions_figure

            title = f"her2st {section}: SENCA regions (ARI {scores['ari']:.2f} against the pathologist)"
            fig = regions_figure(adata, ["pathologist", "senca_region"], title=title)
            atomic_savefig(fig, png_path, dpi=150, bbox_inches="tight")
        typer.echo(
            f"her2st {section}: ARI {scores['ari']:.3f}, NMI {scores.get('nmi', float('nan')):.3f} "
            f"(SENCA, {n_regions} regions, vs pathologist, 'undetermined' spots excluded)"
        )
        _say(f"wrote {h5ad_path} and {png_path}")


@app.command()
def features(
    input: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Input .h5ad or .zarr with an H&E image.", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="PATH", help="Output .h5ad or .zarr.", show_default=False)
    ],
    method: Annotated[
        str, typer.Option("--method", metavar="NAME", help="Feature extractor: stats, cnn or timm.")
    ] = "stats",
    key_added: Annotated[str, typer.Option("--key-added", metavar="KEY", help="obsm key written.")] = "X_histology",
    table_key: TableKeyOpt = "table",
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Histology features per spot from the H&E image.

    Writes obsm[KEY_ADDED] (default X_histology), read by `senca regions` and `senca detect`.
    """
    with _user_errors():
        inp = check_input(input)
        out = check_output(output, [inp], overwrite)
        if method not in ("stats", "cnn", "timm"):
            raise CLIError(f"--method must be 'stats', 'cnn' or 'timm', got {method!r}")
        with _step(f"reading {inp}"):
            loaded = read_input(inp, table_key)
        adata = loaded.adata
        _key_free(adata.obsm, key_added, "obsm", overwrite)
        if not _has_image(adata):
            raise CLIError(f"{str(inp)!r} has no H&E image (uns['spatial'][library]['images'] is empty or missing)")
        from senca._utils import set_seed
        from senca.im import extract_features

        set_seed(seed)
        with _step(f"extracting histology features ({method}) into obsm[{key_added!r}]"):
            extract_features(adata, method=method, key_added=key_added, overwrite=overwrite)
        with _step(f"writing {out}"):
            write_output(loaded, adata, out, keys=[key_added])
        _say(f"wrote {out}: obsm[{key_added!r}] with shape {tuple(adata.obsm[key_added].shape)}")


@app.command()
def regions(
    input: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Input .h5ad or .zarr (raw counts).", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="PATH", help="Output .h5ad or .zarr.", show_default=False)
    ],
    n_regions: Annotated[
        int | None,
        typer.Option("--n-regions", "-k", metavar="K", min=1, help="Number of regions [default: chosen by BIC]."),
    ] = None,
    image_key: ImageKeyOpt = "X_histology",
    no_image: NoImageOpt = False,
    layer: LayerOpt = None,
    spatial_key: Annotated[
        str, typer.Option("--spatial-key", metavar="KEY", help="obsm key of spot coordinates.")
    ] = "spatial",
    sample_key: Annotated[
        str | None,
        typer.Option("--sample-key", metavar="KEY", help="obs key of the section, for several sections in one file."),
    ] = None,
    n_top_genes: TopGenesOpt = 3000,
    n_neighbors: Annotated[int, typer.Option("--n-neighbors", metavar="N", min=2, help="Spots per neighbourhood.")] = 6,
    n_latent: Annotated[int, typer.Option("--n-latent", metavar="N", min=2, help="Width of the SENCA embedding.")] = 32,
    max_epochs: MaxEpochsOpt = None,
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
    table_key: TableKeyOpt = "table",
    seed: SeedOpt = 0,
    accelerator: AccelOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Tissue regions with SENCA from expression, H&E and space.

    Trains SENCA on raw counts and histology features, writes its embedding to obsm[LATENT_KEY] and the regions
    to obs[KEY_ADDED]. Without features in obsm[IMAGE_KEY] they are computed from the H&E image; with --no-image
    SENCA uses expression and space only.
    """
    with _user_errors():
        inp = check_input(input)
        out = check_output(output, [inp], overwrite)
        _check_accelerator(accelerator)
        if method not in ("gmm", "leiden", "kmeans"):
            raise CLIError(f"--method must be 'gmm', 'leiden' or 'kmeans', got {method!r}")
        if save_model is not None and save_model.exists() and not overwrite:
            raise CLIError(f"--save-model directory {str(save_model)!r} already exists; pass --overwrite")
        with _step(f"reading {inp}"):
            loaded = read_input(inp, table_key)
        adata = loaded.adata
        layer = _resolve_layer(adata, layer)
        _require_obsm(adata, spatial_key, "spot coordinates")
        if sample_key is not None:
            _require_obs(adata, sample_key, "--sample-key")
        if truth_key is not None:
            _require_obs(adata, truth_key, "--truth-key")
        _key_free(adata.obs, key_added, "obs", overwrite)
        _key_free(adata.obsm, latent_key, "obsm", overwrite)
        image_key = _ensure_histology(adata, image_key, no_image)

        model = _train_senca(
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
        )
        adata.obsm[latent_key] = model.get_latent_representation()
        from senca.tl import regions as call_regions

        with _step(f"calling regions ({method}) into obs[{key_added!r}]"):
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
        _print_counts(adata.obs[key_added], "regions")
        if truth_key is not None:
            scores = _region_scores(adata.obs[truth_key], adata.obs[key_added])
            _say(_fmt_scores(scores) + f" (vs obs[{truth_key!r}])")
        if save_model is not None:
            with _step(f"saving the model to {save_model}"):
                model.save(str(save_model), overwrite=overwrite)
        with _step(f"writing {out}"):
            write_output(loaded, adata, out, keys=[key_added, latent_key])
        _say(f"wrote {out}: obs[{key_added!r}], obsm[{latent_key!r}]")


@app.command()
def detect(
    train: Annotated[
        list[Path],
        typer.Option(
            "--train",
            metavar="PATH...",
            help="Labelled training sections (.h5ad/.zarr): --train A.h5ad B.h5ad or repeat --train.",
        ),
    ],
    target: Annotated[
        Path, typer.Option("--target", metavar="PATH", help="Section to score (.h5ad/.zarr).", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="PATH", help="Output .h5ad or .zarr.", show_default=False)
    ],
    more_train: Annotated[
        list[Path] | None,
        typer.Argument(metavar="PATH", help="More training sections (as after --train).", show_default=False),
    ] = None,
    labels_key: Annotated[
        str, typer.Option("--labels-key", metavar="KEY", help="obs key of the cancer labels.")
    ] = "cancer",
    positive: Annotated[
        list[str] | None,
        typer.Option(
            "--positive",
            metavar="VALUE",
            help="Label value(s) meaning cancer, e.g. --positive 'invasive cancer' --positive 'cancer in situ'. "
            "Without it the labels must be boolean, 0/1, or say cancer/tumour (vs anything else).",
        ),
    ] = None,
    image_key: ImageKeyOpt = "X_histology",
    no_image: NoImageOpt = False,
    layer: LayerOpt = None,
    min_shared_genes: Annotated[
        int, typer.Option("--min-shared-genes", metavar="N", min=1, help="Refuse fewer genes shared by all sections.")
    ] = 100,
    no_adapt: Annotated[
        bool,
        typer.Option("--no-adapt", help="Score with the trained networks as is (no adaptation, no pooling)."),
    ] = False,
    max_epochs: MaxEpochsOpt = None,
    table_key: TableKeyOpt = "table",
    seed: SeedOpt = 0,
    accelerator: AccelOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Cancer spots in a new section with SpaCRD.

    Trains SpaCRD on labelled sections (genes shared by all of them) and scores the target: obs['spacrd_score']
    in [0, 1] and obs['spacrd_cancer'] (a label-free call). Scoring adapts to the target without its labels (a
    logistic regression on the target's own genes fitted to its most confident spots, neighbourhood pooling; the
    call at the even-odds point of that fit); --no-adapt turns that off (Gaussian-mixture call). If the target
    carries labels under --labels-key, AUC/AP/F1 are printed.
    """
    with _user_errors():
        train_paths = [check_input(p) for p in [*train, *(more_train or [])]]
        tgt = check_input(target)
        out = check_output(output, [*train_paths, tgt], overwrite)
        _check_accelerator(accelerator)
        if len({p.resolve() for p in train_paths}) != len(train_paths):
            raise CLIError("a training section is given twice")
        if tgt.resolve() in {p.resolve() for p in train_paths}:
            raise CLIError(f"the target {str(tgt)!r} is also a training section")
        with _step(f"reading {len(train_paths)} training section(s) and the target"):
            loaded_train = [read_input(p, table_key) for p in train_paths]
            loaded_tgt = read_input(tgt, table_key)
        adatas = [lo.adata for lo in loaded_train]
        for lo in loaded_train:
            _require_obs(lo.adata, labels_key, "--labels-key", f" in {str(lo.path)!r}")
            lo.adata.obs[labels_key] = _binary_labels(lo.adata.obs[labels_key], positive, lo.path)
        target_adata = loaded_tgt.adata
        for key in ("spacrd_score", "spacrd_cancer"):
            _key_free(target_adata.obs, key, "obs", overwrite)
        if no_image:
            image_key = None
        else:
            for a, p in [*((lo.adata, lo.path) for lo in loaded_train), (target_adata, tgt)]:
                _ensure_histology_detect(a, image_key, p)

        _quiet_libraries()
        import senca

        layers = {_resolve_layer(a, layer) for a in [*adatas, target_adata]}
        if len(layers) != 1:
            raise CLIError("the inputs do not all have layers['counts']; pass --layer, or give raw counts in X in all")
        use_layer = layers.pop()
        names = {}
        for lo in loaded_train:
            name = lo.path.name.rsplit(".", 1)[0]
            names[name if name not in names else str(lo.path)] = lo.adata
        source = senca.pp.concat_sections(names, min_shared_genes=min_shared_genes)
        with _step("importing scvi-tools"):
            from senca.model import SpaCRD
        _quiet_libraries()
        _torch_threads()
        from senca._utils import set_seed

        set_seed(seed)
        SpaCRD.setup_anndata(source, layer=use_layer, image_key=image_key, labels_key=labels_key, sample_key="section")
        model = SpaCRD(source)
        _say(f"training SpaCRD on {source.n_obs} spots from {len(adatas)} section(s), {source.n_vars} shared genes")
        t0 = time.perf_counter()
        model.train(max_epochs=max_epochs, accelerator=accelerator, seed=seed)
        _say(f"trained SpaCRD ({time.perf_counter() - t0:.1f} s)", done=True)
        with _step(f"scoring {tgt}"):
            model.predict(target_adata, overwrite=overwrite, **({"n_smooth": 0, "adapt": None} if no_adapt else {}))
        n_cancer = int(target_adata.obs["spacrd_cancer"].astype(bool).sum())
        _say(f"cancer spots: {n_cancer} / {target_adata.n_obs}")
        if labels_key in target_adata.obs:
            y = _binary_labels(target_adata.obs[labels_key], positive, tgt)
            from senca.metrics import detection_scores

            scores = detection_scores(
                y.to_numpy(),
                target_adata.obs["spacrd_score"].to_numpy(),
                call=target_adata.obs["spacrd_cancer"].to_numpy(),
            )
            _say(_fmt_scores(scores) + f" (vs obs[{labels_key!r}] of the target)")
        with _step(f"writing {out}"):
            write_output(loaded_tgt, target_adata, out, keys=["spacrd_score", "spacrd_cancer"])
        _say(f"wrote {out}: obs['spacrd_score'], obs['spacrd_cancer']")


def _ensure_histology_detect(adata: Any, image_key: str, path: Path) -> None:
    if image_key in adata.obsm:
        return
    if not _has_image(adata):
        raise CLIError(
            f"obsm[{image_key!r}] not found in {str(path)!r} and it has no H&E image; "
            "run `senca features` on a file with an image, pass --image-key, or pass --no-image (expression only)"
        )
    _ensure_histology(adata, image_key, no_image=False)


def _binary_labels(labels: Any, positive: list[str] | None, path: Path) -> Any:
    """1.0 / 0.0 / NaN (missing) per spot by the rule shared with ``SpaCRD.setup_anndata`` (senca._labels)."""
    import pandas as pd

    from senca._labels import cancer_labels

    try:
        y, taken = cancer_labels(labels, positive or None, option="--positive")
    except ValueError as e:
        raise CLIError(f"labels in {str(path)!r}: {e}") from None
    if not positive and not pd.api.types.is_bool_dtype(labels):
        _say(f"labels in {str(path)!r}: cancer = {[str(v) for v in taken]}")
    return pd.Series(y, index=labels.index)


def main() -> None:
    """Entry point of the ``senca`` command."""
    app(prog_name="senca")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
