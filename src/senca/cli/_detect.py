"""``senca detect``: cancer spots in a new section with SpaCRD, and the label rule its inputs are read with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from . import _app as opt
from ._app import app
from ._checks import check_accelerator, key_free, require_obs, resolve_layer
from ._console import fmt_scores, quiet_libraries, say, step, torch_threads, user_errors
from ._histology import ensure_histology_in
from ._io import CLIError, check_input, check_output, read_input, write_output


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
    output: opt.OutputOpt,
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
    image_key: opt.ImageKeyOpt = "X_histology",
    no_image: opt.NoImageOpt = False,
    layer: opt.LayerOpt = None,
    min_shared_genes: Annotated[
        int, typer.Option("--min-shared-genes", metavar="N", min=1, help="Refuse fewer genes shared by all sections.")
    ] = 100,
    no_adapt: Annotated[
        bool,
        typer.Option("--no-adapt", help="Score with the trained networks as is (no adaptation, no pooling)."),
    ] = False,
    max_epochs: opt.MaxEpochsOpt = None,
    table_key: opt.TableKeyOpt = "table",
    seed: opt.SeedOpt = 0,
    accelerator: opt.AccelOpt = "auto",
    overwrite: opt.OverwriteOpt = False,
) -> None:
    """Cancer spots in a new section with SpaCRD.

    Trains SpaCRD on labelled sections (genes shared by all of them) and scores the target: obs['spacrd_score']
    in [0, 1] and obs['spacrd_cancer'] (a label-free call). Scoring adapts to the target without its labels (a
    logistic regression on the target's own genes fitted to its most confident spots, neighbourhood pooling; the
    call at the even-odds point of that fit); --no-adapt turns that off (Gaussian-mixture call). If the target
    carries labels under --labels-key, AUC/AP/F1 are printed.
    """
    with user_errors():
        train_paths = [check_input(p) for p in [*train, *(more_train or [])]]
        tgt = check_input(target)
        out = check_output(output, [*train_paths, tgt], overwrite)
        check_accelerator(accelerator)
        if len({p.resolve() for p in train_paths}) != len(train_paths):
            raise CLIError("a training section is given twice")
        if tgt.resolve() in {p.resolve() for p in train_paths}:
            raise CLIError(f"the target {str(tgt)!r} is also a training section")
        with step(f"reading {len(train_paths)} training section(s) and the target"):
            loaded_train = [read_input(p, table_key) for p in train_paths]
            loaded_tgt = read_input(tgt, table_key)
        adatas = [lo.adata for lo in loaded_train]
        for lo in loaded_train:
            require_obs(lo.adata, labels_key, "--labels-key", f" in {str(lo.path)!r}")
            lo.adata.obs[labels_key] = binary_labels(lo.adata.obs[labels_key], positive, lo.path)
        target_adata = loaded_tgt.adata
        for key in ("spacrd_score", "spacrd_cancer"):
            key_free(target_adata.obs, key, "obs", overwrite)
        if no_image:
            image_key = None
        else:
            for a, p in [*((lo.adata, lo.path) for lo in loaded_train), (target_adata, tgt)]:
                ensure_histology_in(a, image_key, p)

        quiet_libraries()
        import senca

        layers = {resolve_layer(a, layer) for a in [*adatas, target_adata]}
        if len(layers) != 1:
            raise CLIError("the inputs do not all have layers['counts']; pass --layer, or give raw counts in X in all")
        use_layer = layers.pop()
        names = {}
        for lo in loaded_train:
            name = lo.path.name.rsplit(".", 1)[0]
            names[name if name not in names else str(lo.path)] = lo.adata
        source = senca.pp.concat_sections(names, min_shared_genes=min_shared_genes)
        with step("importing scvi-tools"):
            from senca.model import SpaCRD
        quiet_libraries()
        torch_threads()
        from senca._utils import set_seed

        set_seed(seed)
        SpaCRD.setup_anndata(source, layer=use_layer, image_key=image_key, labels_key=labels_key, sample_key="section")
        model = SpaCRD(source)
        say(f"training SpaCRD on {source.n_obs} spots from {len(adatas)} section(s), {source.n_vars} shared genes")
        t0 = time.perf_counter()
        model.train(max_epochs=max_epochs, accelerator=accelerator, seed=seed)
        say(f"trained SpaCRD ({time.perf_counter() - t0:.1f} s)", done=True)
        with step(f"scoring {tgt}"):
            model.predict(target_adata, overwrite=overwrite, **({"n_smooth": 0, "adapt": None} if no_adapt else {}))
        n_cancer = int(target_adata.obs["spacrd_cancer"].astype(bool).sum())
        say(f"cancer spots: {n_cancer} / {target_adata.n_obs}")
        if labels_key in target_adata.obs:
            y = binary_labels(target_adata.obs[labels_key], positive, tgt)
            from senca.metrics import detection_scores

            scores = detection_scores(
                y.to_numpy(),
                target_adata.obs["spacrd_score"].to_numpy(),
                call=target_adata.obs["spacrd_cancer"].to_numpy(),
            )
            say(fmt_scores(scores) + f" (vs obs[{labels_key!r}] of the target)")
        with step(f"writing {out}"):
            write_output(loaded_tgt, target_adata, out, keys=["spacrd_score", "spacrd_cancer"])
        say(f"wrote {out}: obs['spacrd_score'], obs['spacrd_cancer']")


def binary_labels(labels: Any, positive: list[str] | None, path: Path) -> Any:
    """1.0 / 0.0 / NaN (missing) per spot by the rule shared with ``SpaCRD.setup_anndata`` (senca._labels)."""
    import pandas as pd

    from senca._labels import cancer_labels

    try:
        y, taken = cancer_labels(labels, positive or None, option="--positive")
    except ValueError as e:
        raise CLIError(f"labels in {str(path)!r}: {e}") from None
    if not positive and not pd.api.types.is_bool_dtype(labels):
        say(f"labels in {str(path)!r}: cancer = {[str(v) for v in taken]}")
    return pd.Series(y, index=labels.index)
