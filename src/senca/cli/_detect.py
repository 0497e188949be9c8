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
        str,
        typer.Option(
            "--labels-key",
            metavar="KEY",
            help="obs key of the labels: cancer vs not, or three or more classes (e.g. a pathologist's annotation).",
        ),
    ] = "cancer",
    positive: Annotated[
        list[str] | None,
        typer.Option(
            "--positive",
            metavar="VALUE",
            help="Label value(s) meaning cancer, e.g. --positive 'invasive cancer' --positive 'cancer in situ': a "
            "cancer call even from a multi-class column. Without it two classes must be boolean, 0/1, or say "
            "cancer/tumour (vs anything else); three or more classes are predicted as they are.",
        ),
    ] = None,
    unlabeled: Annotated[
        list[str] | None,
        typer.Option(
            "--unlabeled",
            metavar="VALUE",
            help="Label value(s) meaning 'no label' (not used for training), besides missing values. "
            "[default: undetermined]",
            show_default=False,
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
    """Cancer spots (or any annotated classes) in a new section with SpaCRD.

    Trains SpaCRD on labelled sections (genes shared by all of them) and scores the target. Cancer vs not:
    obs['spacrd_score'] in [0, 1] and obs['spacrd_cancer'] (a label-free call). Three or more classes (e.g. a
    pathologist's annotation, without --positive): obs['spacrd_label'], obs['spacrd_confidence'] and the class
    probabilities obsm['spacrd_proba']. Scoring adapts to the target without its labels (a logistic regression on
    the target's own genes fitted to its most confident spots, neighbourhood pooling); --no-adapt turns that off.
    Spots labelled 'undetermined' (--unlabeled) or missing are not trained on. If the target carries labels under
    --labels-key, AUC/AP/F1 (cancer) or ARI/macro-F1 (classes) are printed.
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
        unlabeled = list(unlabeled) if unlabeled else "undetermined"
        classes = None if positive else multi_classes([lo.adata.obs[labels_key] for lo in loaded_train], unlabeled)
        if classes is None:
            for lo in loaded_train:
                lo.adata.obs[labels_key] = binary_labels(lo.adata.obs[labels_key], positive, lo.path, unlabeled)
        target_adata = loaded_tgt.adata
        obs_keys = ["spacrd_label", "spacrd_confidence"] if classes else ["spacrd_score", "spacrd_cancer"]
        out_keys = [*obs_keys, "spacrd_proba"] if classes else obs_keys
        for key in obs_keys:
            key_free(target_adata.obs, key, "obs", overwrite)
        if classes:
            key_free(target_adata.obsm, "spacrd_proba", "obsm", overwrite)
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
        try:
            SpaCRD.setup_anndata(
                source, layer=use_layer, image_key=image_key, labels_key=labels_key, sample_key="section",
                unlabeled_category=unlabeled, classes=classes,
            )  # fmt: skip
        except ValueError as e:
            raise CLIError(f"labels: {e}") from None
        model = SpaCRD(source)
        what = f"{len(classes)} classes" if classes else "cancer vs not"
        say(f"training SpaCRD ({what}) on {source.n_obs} spots from {len(adatas)} section(s), {source.n_vars} genes")
        t0 = time.perf_counter()
        model.train(max_epochs=max_epochs, accelerator=accelerator, seed=seed)
        say(f"trained SpaCRD ({time.perf_counter() - t0:.1f} s)", done=True)
        with step(f"scoring {tgt}"):
            model.predict(target_adata, overwrite=overwrite, **({"n_smooth": 0, "adapt": None} if no_adapt else {}))
        if classes:
            counts = target_adata.obs["spacrd_label"].value_counts()
            say("labels: " + ", ".join(f"{k} {int(v)}" for k, v in counts.items() if v))
            if labels_key in target_adata.obs:
                say(class_scores(target_adata.obs[labels_key], target_adata.obs["spacrd_label"], unlabeled, labels_key))
        else:
            n_cancer = int(target_adata.obs["spacrd_cancer"].astype(bool).sum())
            say(f"cancer spots: {n_cancer} / {target_adata.n_obs}")
        if labels_key in target_adata.obs and not classes:
            y = binary_labels(target_adata.obs[labels_key], positive, tgt, unlabeled)
            from senca.metrics import detection_scores

            scores = detection_scores(
                y.to_numpy(),
                target_adata.obs["spacrd_score"].to_numpy(),
                call=target_adata.obs["spacrd_cancer"].to_numpy(),
            )
            say(fmt_scores(scores) + f" (vs obs[{labels_key!r}] of the target)")
        with step(f"writing {out}"):
            write_output(loaded_tgt, target_adata, out, keys=out_keys)
        written = [f"obs[{k!r}]" for k in obs_keys] + (["obsm['spacrd_proba']"] if classes else [])
        say(f"wrote {out}: {', '.join(written)}")


def multi_classes(columns: list[Any], unlabeled: Any) -> list | None:
    """The class vocabulary of the training sections' labels when it has three or more classes, else ``None``."""
    import numpy as np
    import pandas as pd

    from senca._labels import label_classes, unlabeled_mask

    values = pd.concat([pd.Series(np.asarray(c), dtype=c.dtype) for c in columns], ignore_index=True)
    categorical = [c.cat.categories for c in columns if isinstance(c.dtype, pd.CategoricalDtype)]
    if categorical and len(categorical) == len(columns):  # keep the category order of the inputs
        order = list(dict.fromkeys(v for cats in categorical for v in cats))
        values = values.astype(object).astype(pd.CategoricalDtype(order))
    try:
        classes = label_classes(values, unlabeled_mask(values, unlabeled))
    except ValueError as e:
        raise CLIError(f"labels: {e}") from None
    return classes if len(classes) > 2 else None


def class_scores(truth: Any, predicted: Any, unlabeled: Any, labels_key: str) -> str:
    """ARI and macro-F1 of the predicted classes against the target's own labels (unlabelled spots left out)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from senca._labels import unlabeled_mask
    from senca.metrics import region_scores

    keep = ~unlabeled_mask(truth, unlabeled)
    t = np.asarray(truth, dtype=object)[keep].astype(str)
    p = np.asarray(predicted, dtype=object)[keep].astype(str)
    ari = region_scores(t, p)["ari"]
    f1 = f1_score(t, p, labels=sorted(set(t)), average="macro", zero_division=0)
    return f"ARI {ari:.3f}, macro-F1 {f1:.3f} (vs obs[{labels_key!r}] of the target, {int(keep.sum())} labelled spots)"


def binary_labels(labels: Any, positive: list[str] | None, path: Path, unlabeled: Any = "undetermined") -> Any:
    """1.0 / 0.0 / NaN (no label) per spot by the rules shared with ``SpaCRD.setup_anndata`` (senca._labels)."""
    import pandas as pd

    from senca._labels import cancer_labels, unlabeled_mask

    none = unlabeled_mask(labels, unlabeled)
    values = labels.mask(none) if none.any() else labels
    try:
        y, taken = cancer_labels(values, positive or None, option="--positive")
    except ValueError as e:
        raise CLIError(f"labels in {str(path)!r}: {e}") from None
    if not positive and not pd.api.types.is_bool_dtype(labels):
        say(f"labels in {str(path)!r}: cancer = {[str(v) for v in taken]}")
    return pd.Series(y, index=labels.index)
