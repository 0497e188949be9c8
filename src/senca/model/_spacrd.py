"""SpaCRD: supervised cancer-region detection (or K-class annotation) that transfers to new sections."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scvi.data.fields import CategoricalObsField, LayerField, NumericalObsField, ObsmField

from senca._labels import UNLABELED, cancer_labels, class_codes, label_classes, unlabeled_mask
from senca._utils import check_key_free, set_owned, table_of
from senca._validate import check_setup
from senca.data import FEATURE_KEYS, REGISTRY_KEYS
from senca.model._adapt import (
    agreeing_sections,
    class_proba,
    class_pseudo_labels,
    finetuned_copy,
    linear_adapt,
    neighbor_smooth,
    network_logits,
    pseudo_labels,
    section_scores,
)
from senca.model._base import SencaModel
from senca.model._plan import EpochAwarePlan
from senca.module._spacrd import SpaCRDModule
from senca.pp import knn_index
from senca.pp._section_features import gene_features, image_features, section_hvgs

logger = logging.getLogger(__name__)

_KNN_OBSM_KEY = "_spacrd_knn"
_LABEL_OBS_KEY = "_spacrd_label"
_SAME = "same as setup"  # sentinel: reuse the argument given to setup_anndata
# the loader reads the neighbour index and the label from the registry, and gathers the model's derived features;
# the label as float (not scvi-tools' int64 for labels) so that NaN still marks a spot without a label
_LOADED_KEYS = {REGISTRY_KEYS.NEIGHBOR_KEY: np.int64, REGISTRY_KEYS.LABELS_KEY: np.float32}
#: Spots drawn per training epoch by default, at most: the default schedule is counted in epochs tuned on her2st
#: sources (4 sections: 1,123 spots; all 8 labelled sections: 3,481), and this first power of two above them keeps
#: every such source on full epochs while a 400,000-spot source trains 64 minibatches of 64 spots per epoch instead
#: of 6,250 (see :meth:`SpaCRD.train`).
EPOCH_SPOTS = 4096


def _source_labels(values: pd.Series, positive_label, unlabeled_category, classes) -> tuple[np.ndarray, list | None]:
    """Labels of the source spots (float: 0/1 or class codes, NaN: no label) and the class vocabulary.

    ``None`` as vocabulary: the binary cancer model (see :meth:`SpaCRD.setup_anndata` for the rule).
    """
    unlabeled = unlabeled_mask(values, unlabeled_category)
    if unlabeled.all():
        raise ValueError(
            "No source spot has a label: every value of the label column is missing or in unlabeled_category="
            f"{unlabeled_category!r}. SpaCRD needs labelled spots in the source sections."
        )
    present = label_classes(values, unlabeled)
    if classes is not None:
        if positive_label is not None:
            raise ValueError("Pass either classes= (a multi-class model) or positive_label= (the binary cancer model).")
        classes = list(classes)
        if len(classes) < 3 or len(set(map(str, classes))) != len(classes):
            raise ValueError(
                "classes= names the vocabulary of a multi-class model: three or more distinct values, got "
                f"{classes!r}. For two classes, use the binary model (positive_label= names the cancer class)."
            )
        absent = [str(c) for c in classes if str(c) not in set(map(str, present))]
        if absent:
            warnings.warn(
                f"Classes {absent} have no labelled source spot: the model cannot learn them and will not predict "
                "them.",
                UserWarning,
                stacklevel=3,
            )
        return class_codes(values, classes, unlabeled), classes
    if positive_label is None and len(present) > 2:
        return class_codes(values, present, unlabeled), present
    if len(present) < 2:
        raise ValueError(
            f"The label column has only one class among the labelled spots ({[str(c) for c in present]}); SpaCRD "
            "needs both cancer and non-cancer spots in the source sections."
        )
    if unlabeled.any():
        values = pd.Series(values).mask(unlabeled)
    y = cancer_labels(values, positive_label)[0]
    labelled = y[~unlabeled]
    if labelled.all() or not labelled.any():
        raise ValueError(
            "The label column has only one class "
            f"({'all positive' if labelled.all() else 'all negative'}); SpaCRD needs both cancer and non-cancer spots "
            "in the source sections."
        )
    return y.astype(np.float32), None


class SpaCRD(SencaModel):
    """Cancer-region detection that transfers to new sections (SpaCRD, Xue et al., AAAI 2026).

    Trained on labelled source sections, applied to an unlabelled target. Gene features (normalised, log1p,
    highly variable genes chosen across all source sections, standardised per section) and optional histology
    features of each spot's ``k`` nearest spots are encoded by two MLPs aligned by symmetric InfoNCE (stage 1),
    fused by bidirectional neighbourhood cross-attention with a centre-token read-out, regularised by a VAE whose
    prior mean depends on the class, and classified from ``(mu, log var)`` (stage 2, VAE-only warm-up first).

    Differences from the public code (``wenwenmin/SpaCRD``), on purpose: the binary call is label-free (never the
    target labels); the class prior means are held apart by a bounded hinge ``relu(margin - ||mu0 - mu1||)``
    instead of the unbounded ``-||mu0 - mu1||``; HVGs come from all source sections; no device is hard-coded; a
    small InfoNCE term stays on in stage 2; LayerNorm replaces BatchNorm so a spot's score does not depend on its
    minibatch; the network is CPU-sized by default (encoders 128 wide, tokens 128, 4 heads, latent 32; the
    paper's 1024/512/8/64 can be passed) and is an ensemble of ``n_members`` networks (their mean logit), since a
    single network trained on a few sections varies a lot from seed to seed; :meth:`predict` adapts the scores to
    each target without its labels.

    Beyond two classes: given a label column with three or more classes (e.g. a pathologist's annotation,
    :meth:`setup_anndata`), the same network learns one prior mean and one logit per class, and :meth:`predict`
    labels every spot in the source's vocabulary (:attr:`classes`) with class probabilities. Spots without a label
    (missing, ``"undetermined"``) are left out of the loss.

    The method is *transductive by design*: genes and histology features are standardised within each section,
    target sections included (their own statistics, computed without labels), which removes per-section batch
    shifts, and :meth:`predict` fits its adaptation on the target's own spots. Predictions for a spot therefore
    depend on the other spots of its section.

    Parameters
    ----------
    adata
        Source AnnData registered with :meth:`setup_anndata` (``None`` only when loading).
    registry
        Used by :meth:`load`; leave ``None``.
    genes
        Genes to use; default: ``n_top_genes`` highly variable genes selected across all source sections.
    n_top_genes
        Number of highly variable genes (the paper: 3000).
    n_hidden, n_embed, n_heads, n_latent, dropout
        Network sizes, see :class:`senca.module.SpaCRDModule`.
    gene_scaling
        Per-section, per-gene scaling of the log-expression: ``"zscore"`` or ``"minmax"`` (the paper's).
    n_members
        Networks in the ensemble, each from its own initialisation (the paper: 1). Their mean logit is the score;
        training time grows in proportion.
    **module_kwargs
        Further :class:`senca.module.SpaCRDModule` arguments (``temperature``, ``margin``, ``kl_weight``...).

    Examples
    --------
    >>> import senca
    >>> src = senca.datasets.synthetic(n_spots=400, n_regions=3, layout="stripes", seed=0)
    >>> src.obs["cancer"] = src.obs["region"] == "R1"
    >>> senca.model.SpaCRD.setup_anndata(src, layer="counts", image_key="X_histology", labels_key="cancer")
    >>> det = senca.model.SpaCRD(src, n_top_genes=100, n_members=1)
    >>> det.train(max_epochs=4, seed=0, enable_progress_bar=False)
    >>> target = senca.datasets.synthetic(n_spots=300, n_regions=3, layout="stripes", seed=1)
    >>> det.predict(target)  # writes target.obs["spacrd_score"] in [0, 1] and the call target.obs["spacrd_cancer"]
    >>> float(target.obs["spacrd_score"].min()), float(target.obs["spacrd_score"].max())
    (0.0, 1.0)
    """

    _module_cls = SpaCRDModule
    _training_plan_cls = EpochAwarePlan

    def __init__(
        self,
        adata: AnnData | None = None,
        registry: dict | None = None,
        genes: Sequence[str] | None = None,
        n_top_genes: int = 3000,
        n_hidden: int = 128,
        n_embed: int = 128,
        n_heads: int = 4,
        n_latent: int = 32,
        dropout: float = 0.2,
        gene_scaling: str = "zscore",
        n_members: int = 3,
        **module_kwargs,
    ):
        adata = table_of(adata, type(self))
        super().__init__(adata, registry)
        if gene_scaling not in ("zscore", "minmax"):
            raise ValueError(f"gene_scaling must be 'zscore' or 'minmax', got {gene_scaling!r}.")
        self._gene_scaling = gene_scaling
        self._features: dict[str, np.ndarray] | None = None
        if adata is not None:
            manager = self.adata_manager
            counts = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
            groups = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
            if genes is None:
                genes = section_hvgs(counts, adata.var_names, groups, n_top_genes)
            image = None
            if REGISTRY_KEYS.IMAGE_KEY in manager.data_registry:
                image = manager.get_from_registry(REGISTRY_KEYS.IMAGE_KEY)
            self._features = self._section_features(counts, adata.var_names, genes, groups, image)
            if self.classes is not None:  # labelled source spots per class (a class without any is never predicted)
                codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.LABELS_KEY), dtype=float).ravel()
                codes = codes[np.isfinite(codes)].astype(int)
                self.class_counts_ = np.bincount(codes, minlength=len(self.classes)).tolist()
        elif genes is None:
            raise ValueError("SpaCRD needs either a registered AnnData or the list of genes (when loading).")
        genes = [str(g) for g in genes]
        if len(genes) < 10:
            raise ValueError(f"Only {len(genes)} genes selected; SpaCRD needs at least 10 expressed genes.")
        n_image = int(self.summary_stats.get(f"n_{REGISTRY_KEYS.IMAGE_KEY}", 0))
        classes = self.classes
        self._module_kwargs = {
            "n_genes": len(genes),
            "n_image": n_image,
            "n_hidden": n_hidden,
            "n_embed": n_embed,
            "n_heads": n_heads,
            "n_latent": n_latent,
            "dropout": dropout,
            "n_members": n_members,
            **({} if classes is None else {"n_classes": len(classes)}),
            **module_kwargs,
        }
        self._build_module()
        self._model_summary_string = (
            f"SpaCRD ({'cancer vs not' if classes is None else f'{len(classes)} classes'}): {len(genes)} genes, "
            f"{n_image} histology features "
            f"({'expression-only' if n_image == 0 else 'image + expression'}), "
            f"k = {self.n_neighbors} neighbours, token width {n_embed}, latent {n_latent}."
        )
        self.init_params_ = self._get_init_params(locals())

    # ----------------------------------------------------------------------------------------- properties
    @property
    def genes(self) -> list[str]:
        """Genes the model uses (in model order); targets are aligned to them by name."""
        return list(self.init_params_["non_kwargs"]["genes"])

    @property
    def classes(self) -> list | None:
        """The class vocabulary of a multi-class model (the order of :meth:`predict`'s probability columns).

        ``None`` for the binary cancer model.
        """
        return self._setup_arg("classes")

    @property
    def n_neighbors(self) -> int:
        """Neighbourhood size, the spot itself included."""
        return int(self.registry_["setup_args"]["n_neighbors"])

    def _setup_arg(self, name):
        return self.registry_["setup_args"].get(name)

    def _section_features(self, counts, var_names, genes, groups, image=None) -> dict[str, np.ndarray]:
        """The network's inputs, computed alike for the source (training) and a target (:meth:`predict`).

        Log-expression of ``genes`` and, when given, histology ``image`` features (NaN rows: no image), each
        standardised within every section of ``groups``.
        """
        feats = {FEATURE_KEYS.SPACRD_GENE_KEY: gene_features(counts, var_names, genes, groups, self._gene_scaling)}
        if image is not None:
            feats[FEATURE_KEYS.SPACRD_IMAGE_KEY], feats[FEATURE_KEYS.SPACRD_MASK_KEY] = image_features(image, groups)
        return feats

    # ----------------------------------------------------------------------------------------- setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        labels_key: str | None = None,
        layer: str | None = None,
        image_key: str | None = None,
        sample_key: str | None = None,
        n_neighbors: int = 7,
        spatial_key: str = "spatial",
        positive_label=None,
        unlabeled_category=UNLABELED,
        classes: Sequence | None = None,
        overwrite: bool = False,
        **kwargs,
    ) -> None:
        """Register labelled source sections.

        Two kinds of model, chosen by the label column:

        - *binary* (cancer vs not; the paper's): a column with two classes, or any column with ``positive_label``.
          :meth:`predict` writes a cancer score and a label-free call.
        - *multi-class* (e.g. the pathologist's vocabulary): a column with more than two classes (without
          ``positive_label``), or ``classes=``. :meth:`predict` writes a label, class probabilities and a
          confidence per spot.

        Spots whose label is missing or in ``unlabeled_category`` take no part in the classification loss (their
        expression still informs their neighbours and the VAE).

        Parameters
        ----------
        adata
            Source sections (e.g. from :func:`senca.pp.concat_sections`) with raw counts.
        labels_key
            ``adata.obs`` column with the label of every spot. Binary: bool, 0/1 or ``"true"``/``"false"``
            (true/1 = cancer); two text classes naming the cancer class (values containing the word cancer,
            tumour/tumor or malignant, e.g. ``"cancer"``/``"other"``, ``"tumour"``/``"normal"``; the class taken is
            logged at INFO); or any values together with ``positive_label``. The rule is
            :func:`senca._labels.cancer_labels`, shared with ``senca detect``. Multi-class: any categorical, text
            or integer column with three or more classes among its labelled spots.
        layer
            Layer with raw counts; ``None`` uses ``X``.
        image_key
            ``adata.obsm`` key of per-spot histology features (e.g. from ``senca.im.extract_features``). Rows that
            contain NaN mark spots without an image (e.g. a section without H&E trained alongside one with it).
            ``None``: expression-only SpaCRD (a warning says so).
        sample_key
            ``adata.obs`` column naming the section of each spot (neighbours, HVG selection and standardisation
            are per section); ``None``: one section.
        n_neighbors
            Neighbourhood size including the spot itself (the paper: 7). 1 disables the neighbourhood.
        spatial_key
            ``adata.obsm`` key of the spot coordinates.
        positive_label
            Value (or list of values) of ``labels_key`` that is cancer; every other value is non-cancer. Needed
            when the column is neither bool/0-1 nor says which class is cancer (e.g. ``"A"``/``"B"``):
            ``positive_label=["invasive cancer", "cancer in situ"]``. Given, the model is binary whatever the
            number of classes.
        unlabeled_category
            Value (or list of values, any case) of ``labels_key`` meaning "no label", besides missing values;
            default ``"undetermined"`` (her2st's pathologist). ``None``: only missing values.
        classes
            Multi-class vocabulary, in the order of the probability columns :meth:`predict` writes (three or more
            values). Default: the classes of the labelled spots, in the column's category order (sorted for a
            non-categorical column). A class without a labelled spot stays in the vocabulary with a warning (the
            model never predicts it), so that models trained on different sections share one vocabulary.
        overwrite
            Replace different values already in the helper keys below (from a setup with other labels or settings);
            the same setup twice needs no ``overwrite``.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields` (used by :meth:`load`).

        Returns
        -------
        ``None``. Writes the private helper columns ``adata.obs["_spacrd_label"]`` (0/1 label or class code, NaN
        where unlabelled) and ``adata.obsm["_spacrd_knn"]`` (neighbour index), besides scvi-tools' own ``_scvi_*``
        keys.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, n_regions=4, seed=0)
        >>> senca.model.SpaCRD.setup_anndata(adata, labels_key="region", positive_label="R1")  # binary: R1 vs rest
        >>> senca.model.SpaCRD.setup_anndata(adata, labels_key="region", overwrite=True)  # four classes
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if labels_key is None:
            raise ValueError("SpaCRD is supervised: pass labels_key= (the obs column with the labels).")
        if labels_key not in adata.obs:
            raise KeyError(f"adata.obs[{labels_key!r}] not found; pass the column with the labels.")
        _, groups = check_setup(
            adata, "SpaCRD.setup_anndata", layer, spatial_key, sample_key, features={"image_key": image_key},
            allow_nan=True,
        )  # fmt: skip
        if image_key is None:
            warnings.warn(
                "No image_key: SpaCRD runs expression-only (no histology branch, no contrastive stage).",
                UserWarning,
                stacklevel=2,
            )
        labels, classes = _source_labels(adata.obs[labels_key], positive_label, unlabeled_category, classes)
        # the vocabulary is part of the setup, so that a saved model knows it (load passes it back as classes=)
        setup_method_args["setup_args"]["classes"] = classes
        index = knn_index(np.asarray(adata.obsm[spatial_key]), n_neighbors, groups)
        set_owned(adata.obs, _LABEL_OBS_KEY, labels, "adata.obs", overwrite)
        set_owned(adata.obsm, _KNN_OBSM_KEY, index, "adata.obsm", overwrite)
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, sample_key),
            NumericalObsField(REGISTRY_KEYS.LABELS_KEY, _LABEL_OBS_KEY),
            ObsmField(REGISTRY_KEYS.NEIGHBOR_KEY, _KNN_OBSM_KEY),
        ]
        if image_key is not None:
            fields.append(ObsmField(REGISTRY_KEYS.IMAGE_KEY, image_key))
        cls._register_fields(adata, fields, setup_method_args, **kwargs)

    # ----------------------------------------------------------------------------------------- train
    def train(
        self,
        max_epochs: int | None = None,
        align_epochs: int | None = None,
        warmup_epochs: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        batch_size: int = 64,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = "auto",
        plan_kwargs: dict | None = None,
        warm_start: bool = False,
        **trainer_kwargs,
    ) -> None:
        """Train both stages: contrastive alignment, then VAE warm-up and detection.

        The default schedule is counted in epochs, each bounded to at most 4,096 spots
        (``ceil(4096 / batch_size)`` minibatches: 64 of 64 spots): a source of up to 4,096 spots (e.g. all eight
        labelled her2st sections, 3,481 spots) trains full epochs; a larger one trains that many minibatches per
        epoch, each epoch a fresh random subset of its spots (the loader shuffles), so the training cost no longer
        grows with the source (four 100,000-spot sections: 64 instead of 6,250 minibatches per epoch, 1,920
        detection steps in all, more than the 390-540 of a her2st source). On her2st, training on half or a quarter
        of each epoch's minibatches moved the leave-one-section-out AUC by less than its spread over seeds
        (``python -m benchmarks.spacrd_epochs``, the docs' scaling page). Pass ``limit_train_batches`` (Lightning's:
        a number of minibatches, or a fraction of the epoch; ``limit_train_batches=1.0`` for full epochs) to choose
        otherwise. With DDP the bound holds per process.

        Parameters
        ----------
        max_epochs
            Stage-2 epochs; default 30 (with ``batch_size=64``: about 18 steps per epoch on four her2st sections, at
            most 64 on any source, see above).
        align_epochs
            Stage-1 (InfoNCE alignment) epochs; default ``max_epochs // 2``. Skipped without histology.
        warmup_epochs
            Stage-2 epochs that train the VAE loss only; default ``max_epochs // 4``.
        lr, weight_decay
            Adam settings (both stages).
        batch_size
            Spots per minibatch (each carries its ``k`` neighbours).
        seed
            Seeds Python, numpy, torch and Lightning. Unless ``warm_start=True``, training starts from fresh weights
            drawn from this seed (a second call retrains from scratch), so the same seed gives the same scores on
            CPU.
        accelerator, devices
            Lightning device settings; ``"auto"`` uses a GPU when present.
        plan_kwargs
            Extra :class:`scvi.train.TrainingPlan` arguments.
        warm_start
            Continue training the trained network for ``max_epochs`` more detection epochs (no alignment stage, no
            VAE-only warm-up; a fresh optimiser) instead of starting again from fresh weights.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (e.g. ``enable_progress_bar=False``; ``limit_train_batches=1.0``
            for full epochs on a source above 4,096 spots, see above). Training asks for
            deterministic algorithms (``deterministic=True``, torch's global flags are restored afterwards). Several
            devices: ``strategy="ddp"`` (scripts) or ``"ddp_notebook"``/``"ddp_spawn"``, with ``devices=N``;
            unused-parameter detection is switched on, since each stage leaves part of the network idle.

        Examples
        --------
        >>> det.train(max_epochs=40, seed=0)  # doctest: +SKIP
        >>> det.train(max_epochs=10, warm_start=True)  # ten more epochs from the trained weights  # doctest: +SKIP
        >>> det.train(limit_train_batches=1.0)  # full epochs, however large the source  # doctest: +SKIP
        """
        if self._features is None:
            raise RuntimeError("This model was loaded without its source AnnData; it can predict, not train.")
        if warm_start and not self.is_trained_:
            raise ValueError("warm_start=True continues a trained model; train it once first (warm_start=False).")
        max_epochs = 30 if max_epochs is None else int(max_epochs)
        align_epochs = max_epochs // 2 if align_epochs is None else int(align_epochs)
        warmup_epochs = max_epochs // 4 if warmup_epochs is None else int(warmup_epochs)
        plan = {"lr": lr, "weight_decay": weight_decay, **(plan_kwargs or {})}
        common = {
            "train_size": 1.0,
            "batch_size": batch_size,
            "accelerator": accelerator,
            "devices": devices,
            "datasplitter_kwargs": {
                "features": self._features,
                "gather_keys": (),
                "data_and_attributes": _LOADED_KEYS,
            },
            "plan_kwargs": plan,
        }
        strategy = trainer_kwargs.get("strategy")
        if isinstance(strategy, str) and strategy.startswith("ddp") and "find_unused" not in strategy:
            # staged training: the image encoder / attention / VAE sit idle in one stage or the other
            trainer_kwargs["strategy"] = f"{strategy}_find_unused_parameters_true"
        epoch_batches = int(np.ceil(EPOCH_SPOTS / int(batch_size)))
        if "limit_train_batches" not in trainer_kwargs and self.adata.n_obs > epoch_batches * int(batch_size):
            # a bound only where it bites: a small source gets exactly the trainer it always had
            trainer_kwargs["limit_train_batches"] = epoch_batches
        trainer_kwargs.setdefault("deterministic", True)
        if trainer_kwargs["deterministic"]:
            trainer_kwargs.setdefault("benchmark", False)  # cuDNN autotuning would undo determinism on a GPU
        common.update(trainer_kwargs)
        self.train_seed_ = int(seed)
        # without warm_start: fresh weights drawn from the seed, so that the same seed gives the same model
        self._reseed(seed, rebuild=not warm_start)
        if warm_start:  # continue from the trained weights: detection epochs only
            align_epochs, warmup_epochs = 0, 0
        else:
            self.align_history_ = None
        with self._quiet_training():
            if self.module.n_image > 0 and align_epochs > 0:
                self.module.stage = "align"
                super().train(max_epochs=align_epochs, **common)
                self.align_history_ = self.history_
            self.module.stage = "detect"
            self.module.n_warmup_epochs = warmup_epochs
            super().train(max_epochs=max_epochs, **common)
        self.module.eval()

    # ----------------------------------------------------------------------------------------- predict
    def predict(
        self,
        adata: AnnData,
        key_added: str = "spacrd",
        sample_key: str | None = None,
        layer: str | None = _SAME,
        image_key: str | None = _SAME,
        spatial_key: str = _SAME,
        min_gene_fraction: float = 0.5,
        n_smooth: int = 2,
        adapt: str | None = "linear",
        adapt_fraction: float = 0.1,
        adapt_epochs: int = 20,
        adapt_lr: float = 1e-4,
        threshold: str = "auto",
        batch_size: int = 512,
        overwrite: bool = False,
        table_key: str | None = None,
    ) -> None:
        """Score an unlabelled target: cancer likelihood and a label-free call, or the class of every spot.

        The target's genes are aligned to the model's by name (order does not matter; missing genes are set to
        the section mean), normalised and standardised within each target section (transductive, no labels
        used), neighbourhoods are built within each section, and the network scores every spot. Two label-free
        steps then adapt the scores to the target (both are transductive, like the standardisation):

        1. *Adaptation* (``adapt``): the network's logits are averaged over each spot's neighbourhood (``n_smooth``
           passes); the top and bottom ``adapt_fraction`` of each section become pseudo-labels (cancer /
           non-cancer). With ``adapt="linear"`` (default), an L2 logistic regression fitted on the section's own
           gene features and pseudo-labels rescores every spot (:func:`linear_adapt`): a convex fit solved to
           convergence, so its result does not depend on the size of the section. With ``adapt="finetune"``, a copy
           of the network is fine-tuned on the pseudo-labels by BCE for ``adapt_epochs`` epochs (the behaviour of
           senca 0.x before this option; the trained model itself is never changed). ``adapt=None`` or
           ``adapt_epochs=0`` keep the network's logits. The linear adaptation must agree with the network where
           it was not fitted: in a section where its pooled logits do not rank the spots without a pseudo-label in
           the same direction as the network's (Spearman correlation not positive), that section keeps the
           network's logits, with a warning (:func:`agreeing_sections`).
        2. *Neighbourhood pooling* (``n_smooth > 0``): the logits are averaged over each spot's ``k`` nearest spots
           of the same section, ``n_smooth`` times, since cancer regions are contiguous tissue.

        The pooled logits are min-max scaled per section into the score. The binary call (``threshold``) never
        looks at labels: ``"balanced"`` calls a spot cancer where the pooled logit of the linear adaptation is
        >= 0. Its pseudo-labels hold as many cancer as non-cancer spots, so 0 is the boundary at even odds
        between the two, whatever the fraction of cancer in the section; the share of spots called follows the
        data instead of a mixture fit. ``"gmm"`` thresholds the score at the two-component Gaussian mixture
        threshold (:func:`senca.metrics.gmm_threshold`). ``"auto"``: ``"balanced"`` with the linear adaptation,
        else ``"gmm"``. ``n_smooth=0, adapt=None`` gives the network's own scores.

        On her2st leave-one-patient-out (``python -m benchmarks.detection``, see the benchmarks page), these
        steps carry most of the gain over the network's own scores.

        A *multi-class* model (see :meth:`setup_anndata`) labels every spot instead. The same steps run on its
        ``K`` logits per spot: the pseudo-labels are, per section, each class's most typical spots by its logit
        standardised over the section (:func:`class_pseudo_labels`: the binary top/bottom rule for ``K``
        classes, insensitive to a section whose composition differs from the sources'), the adaptation is a
        multinomial logistic regression on them, and the pooled logits give the class probabilities (softmax; a
        class that got no pseudo-label in a section, or had no labelled source spot, has probability 0 there).
        ``threshold`` does not apply.

        On her2st leave-one-patient-out (``python -m benchmarks.multiclass``), the multi-class adaptation raises
        the agreement with the pathologist over the network's own labels (see the benchmarks page).

        Parameters
        ----------
        adata
            Target AnnData with raw counts and coordinates, or a SpatialData whose table holds them (the results
            are written into that table). Labels in ``obs``, if any, are never read.
        key_added
            Prefix of the written columns.
        sample_key
            ``adata.obs`` column naming the target sections (scaled and thresholded separately); ``None``: one.
        layer
            Layer with raw counts (default: the one given at setup; ``None`` is ``X``).
        image_key
            ``adata.obsm`` key of histology features (default: the one given at setup). If the model has a
            histology branch but the target has no such key, the target is scored expression-only (warning).
        spatial_key
            ``adata.obsm`` key of the coordinates (default: the one given at setup).
        min_gene_fraction
            Raise if the target has fewer than this fraction of the model's genes.
        n_smooth
            Passes of neighbourhood averaging of the logits (0: none).
        adapt
            ``"linear"`` (default), ``"finetune"`` or ``None``: how the scores adapt to the target (see above).
        adapt_fraction
            Fraction of each target section taken as confident cancer (top) and as confident non-cancer (bottom);
            with more classes, as confident members of each class.
        adapt_epochs
            Epochs of fine-tuning with ``adapt="finetune"``; 0 turns any adaptation off.
        adapt_lr
            Adam learning rate of the fine-tuning.
        threshold
            Label-free binary call: ``"auto"``, ``"balanced"`` (needs ``adapt="linear"``) or ``"gmm"``. Binary
            models only.
        batch_size
            Spots per inference batch.
        overwrite
            Replace existing ``obs`` columns.
        table_key
            For a SpatialData target with several tables: the one to score.

        Returns
        -------
        ``None``. Binary model: writes ``adata.obs[f"{key_added}_score"]`` (float in [0, 1]) and
        ``adata.obs[f"{key_added}_cancer"]`` (bool). Multi-class model: ``adata.obs[f"{key_added}_label"]``
        (categorical, the source's vocabulary :attr:`classes`, as text), ``adata.obsm[f"{key_added}_proba"]`` (a
        DataFrame, one column per class, rows summing to 1) and ``adata.obs[f"{key_added}_confidence"]`` (the
        probability of the label).

        Examples
        --------
        >>> det.predict(target, key_added="spacrd")  # doctest: +SKIP
        >>> target.obs[["spacrd_score", "spacrd_cancer"]].head()  # doctest: +SKIP
        >>> pathology.predict(target)  # a multi-class model  # doctest: +SKIP
        >>> target.obs["spacrd_label"].value_counts()  # doctest: +SKIP
        >>> cancer = target.obsm["spacrd_proba"][["invasive cancer", "cancer in situ"]].sum(1)  # doctest: +SKIP
        """
        if not isinstance(adata, AnnData) and getattr(adata, "tables", None) is None:
            raise TypeError(f"predict expects an AnnData or a SpatialData, got {type(adata).__name__}.")
        adata = table_of(adata, table_key=table_key)
        if not self.is_trained_:
            raise RuntimeError("The SpaCRD model is not trained yet; call model.train() before predict().")
        if int(n_smooth) < 0 or int(adapt_epochs) < 0:
            raise ValueError(f"n_smooth and adapt_epochs must be >= 0, got {n_smooth} and {adapt_epochs}.")
        if not 0.0 < adapt_fraction < 0.5:
            raise ValueError(f"adapt_fraction must be in (0, 0.5), got {adapt_fraction}.")
        if adapt not in ("linear", "finetune", None):
            raise ValueError(f"adapt must be 'linear', 'finetune' or None, got {adapt!r}.")
        if adapt_epochs == 0:
            adapt = None
        multi = self.classes is not None
        if multi and threshold != "auto":
            raise ValueError(
                f"threshold={threshold!r} sets the binary cancer call; a multi-class model labels each spot with its "
                "most probable class. Leave threshold='auto'."
            )
        if threshold == "auto":
            threshold = "balanced" if adapt == "linear" else "gmm"
        if threshold not in ("balanced", "gmm"):
            raise ValueError(f"threshold must be 'auto', 'balanced' or 'gmm', got {threshold!r}.")
        if threshold == "balanced" and adapt != "linear" and not multi:
            raise ValueError(
                "threshold='balanced' needs adapt='linear' (its logit 0 is the even-odds boundary between the "
                "balanced pseudo-labels); use threshold='gmm' otherwise."
            )
        if multi:
            keys = {"obs": [f"{key_added}_label", f"{key_added}_confidence"], "obsm": [f"{key_added}_proba"]}
        else:
            keys = {"obs": [f"{key_added}_score", f"{key_added}_cancer"], "obsm": []}
        for where, names in keys.items():
            for key in names:
                check_key_free(getattr(adata, where), key, f"adata.{where}", overwrite)
        layer = self._setup_arg("layer") if layer == _SAME else layer
        image_key = self._setup_arg("image_key") if image_key == _SAME else image_key
        spatial_key = self._setup_arg("spatial_key") if spatial_key == _SAME else spatial_key
        counts, groups = check_setup(adata, "SpaCRD.predict", layer, spatial_key, sample_key)
        genes = self.genes
        shared = pd.Index(genes).isin(adata.var_names)
        if shared.mean() < min_gene_fraction:
            raise ValueError(
                f"The target has only {int(shared.sum())} of the model's {len(genes)} genes "
                f"({shared.mean():.0%} < min_gene_fraction={min_gene_fraction:.0%}). Check that target and source "
                "use the same gene identifiers (symbols vs Ensembl ids)."
            )
        if not adata.var_names.is_unique:
            raise ValueError("The target has duplicated gene names; call adata.var_names_make_unique() first.")
        if groups is None:
            groups = np.zeros(adata.n_obs, dtype=int)
        image = None
        if self.module.n_image > 0:
            if image_key is not None and image_key in adata.obsm:
                image = np.asarray(adata.obsm[image_key])
                n_features = image.reshape(image.shape[0], -1).shape[1]
                if n_features != self.module.n_image:
                    raise ValueError(
                        f"adata.obsm[{image_key!r}] has {n_features} features, the model was trained with "
                        f"{self.module.n_image}; use the same feature extractor."
                    )
            else:
                warnings.warn(
                    f"The target has no adata.obsm[{image_key!r}]: scoring it expression-only.",
                    UserWarning,
                    stacklevel=2,
                )
                image = np.full((adata.n_obs, self.module.n_image), np.nan)  # no image: zero features, mask 0
        feats = self._section_features(counts, adata.var_names, genes, groups, image)
        nbr = knn_index(np.asarray(adata.obsm[spatial_key]), self.n_neighbors, groups)
        seed = int(getattr(self, "train_seed_", 0) or 0)
        logits = network_logits(self.module, feats, nbr, batch_size)
        # a class without a labelled source spot is never predicted (NaN logit: probability 0, no pseudo-label)
        if multi:
            untrained = np.asarray(getattr(self, "class_counts_", [1] * len(self.classes))) == 0
            logits[:, untrained] = np.nan
        if adapt is not None:
            pooled = neighbor_smooth(logits, nbr, n_smooth)
            if multi:
                pseudo = class_pseudo_labels(pooled, groups, adapt_fraction)
            else:
                pseudo = pseudo_labels(pooled, groups, adapt_fraction)
            if adapt == "linear":
                adapted = linear_adapt(feats[FEATURE_KEYS.SPACRD_GENE_KEY], pseudo, groups, logits)
                if not multi:
                    adapted, declined = agreeing_sections(adapted, logits, pseudo, nbr, groups, n_smooth)
                    if declined:
                        warnings.warn(
                            f"The adaptation to section(s) {[str(g) for g in declined]} contradicts the network's "
                            "scores on the spots it was not fitted to; they are scored by the network alone (its "
                            "call at logit 0).",
                            UserWarning,
                            stacklevel=2,
                        )
                logits = adapted
            elif np.isfinite(pseudo).any():
                adapted = finetuned_copy(self.module, feats, nbr, pseudo, adapt_epochs, adapt_lr, seed)
                logits = network_logits(adapted, feats, nbr, batch_size)
                if multi:
                    logits[:, untrained] = np.nan
        pooled = neighbor_smooth(logits, nbr, n_smooth)
        if multi:
            self._write_classes(adata, class_proba(pooled), key_added)
            return
        score, call = section_scores(pooled, groups, threshold, seed)
        adata.obs[f"{key_added}_score"] = score
        adata.obs[f"{key_added}_cancer"] = call

    def _write_classes(self, adata: AnnData, proba: np.ndarray, key_added: str) -> None:
        """The multi-class outputs: probabilities (obsm DataFrame), most probable class and its probability (obs)."""
        names = [str(c) for c in self.classes]
        frame = pd.DataFrame(proba, index=adata.obs_names, columns=names)
        best = proba.argmax(1)
        adata.obsm[f"{key_added}_proba"] = frame
        adata.obs[f"{key_added}_label"] = pd.Categorical.from_codes(best, categories=names)
        adata.obs[f"{key_added}_confidence"] = proba[np.arange(len(best)), best]
