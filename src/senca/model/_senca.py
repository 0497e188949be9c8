"""SENCA as an scvi-tools model: setup, the fitted network, training, embedding, attention and discordance."""

from __future__ import annotations

import copy
import inspect
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi.data.fields import LayerField, NumericalObsField, ObsmField

from senca._scvi_private import check_view, forget_manager, instance_manager, registered_var_names
from senca._utils import quiet_scvi, set_owned, table_of
from senca._validate import check_same_genes, check_setup
from senca.data import DEFAULT_NEIGHBORS_OBSM_KEY, REGISTRY_KEYS
from senca.data._loader import model_gene_positions, registered_library
from senca.model._base import SencaModel
from senca.model._senca_fit import (
    fit_statistics,
    read_expression,
    read_image_tokens,
    registered_counts,
    registered_index,
    sample_codes,
)
from senca.model._senca_train import CountSplitBatches, CountSplitDataModule, passes_criterion, validation_loss
from senca.module import SENCAModule
from senca.pp import knn_index

logger = logging.getLogger(__name__)

_NO_IMAGE_WARNING = (
    "SENCA was set up without histology features (image_key=None): it runs in expression-only mode, where its "
    "attention weighs every neighbour alike: the embedding is the expression principal components averaged over each "
    "spot's neighbourhood (expression + space). Pass image_key= (e.g. the output of senca.im.extract_features, "
    "adata.obsm['X_histology']) to weight the neighbours by how alike they look in H&E."
)

Representation = Literal["network", "estimator"]


class SENCA(SencaModel):
    """SENCA: Shared Encoder with Neighbourhood Cross-Attention for unsupervised tissue regions.

    A gene head maps each spot's log-normalised counts to expression tokens (the principal axes of the training
    data) and an image head maps its histology features to H&E tokens. Attention layers, one per pass, then mix each
    spot's tokens with its neighbours' (the k nearest spots of the same sample), with H&E tokens as queries and keys
    and both modalities' tokens as values: neighbours that look alike in H&E count more. The embedding is the mixed
    expression tokens next to the mixed H&E tokens (each H&E component weighted by its spatial autocorrelation, the
    block at the expression block's spread). The functional contrast ``delta_i`` (:meth:`get_discordance`) marks spots
    whose expression differs from the neighbours that look alike.

    **The network starts at the estimator.** Its untrained forward pass *is* the parameter-free estimator that every
    trained variant tried on her2st failed to beat: the attention layers start as a Gaussian kernel on the H&E tokens
    (bandwidth: the median distance between neighbouring tokens) written as dot-product attention, and the paths
    training may open (query/key maps, an expression-similarity term) start at zero. The constructor fits that state
    (principal axes, kernel statistics, Harmony reference): no training is needed for an embedding.
    :meth:`train` then fits what the data can tell without labels in seconds (the number of attention passes, by
    count splitting) and, only when asked (``max_epochs``), fine-tunes the attention, keeping the result only if a
    held-out criterion improves. The estimator stays available as ``representation="estimator"``.

    Several sections set up together with a ``sample_key`` are integrated (cohort mode, ``integrate``): the expression
    tokens are corrected for the section with Harmony, whose reference the model keeps, so that one region caller labels
    every section alike and a new section is embedded without retraining (:func:`senca.tl.assign_regions` then gives
    it the cohort's regions).

    Parameters
    ----------
    adata
        AnnData set up with :meth:`setup_anndata`, or a SpatialData set up with :meth:`setup_spatialdata`.
    registry
        Used by :meth:`load` to rebuild a model without data; leave ``None``.
    n_latent
        Number of expression components (principal axes of the log-normalised counts, fitted once on the training data
        and kept, so new data use the same axes). The embedding has ``n_latent`` columns, plus 10 histology columns
        when there is an image.
    passes
        Attention passes of the initial state (the estimator); :meth:`train` chooses the number from the data.
    max_passes
        Attention layers of the network (the most :meth:`train` may choose).
    kernel_scale
        Width of the H&E kernel in units of the fitted bandwidth (smaller: attend to look-alike neighbours only).
    image_block_weight
        Spread of the histology block of the embedding relative to the expression block, before each histology
        component is weighted by its spatial autocorrelation (0: expression values only, H&E only as attention keys).
        1 puts spatially structured histology on the same footing as expression; a shuffled image (no spatial
        structure) then adds nothing but its attention keys.
    integrate
        Cohort mode: correct the expression tokens for the sample (``sample_key`` of :meth:`setup_anndata`) with
        Harmony before the attention, so that one region caller gives labels that mean the same thing in every
        section. The model keeps Harmony's reference and maps every section onto it, training sections and new ones
        alike (Symphony's query mapping), so a section the model has never seen is embedded without retraining.
        ``None``: on when the training data has two or more samples.
    n_integration_clusters
        Harmony's number of soft clusters; ``None``: ``min(100, n_obs / 30)`` (Harmony's default).

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
    >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
    >>> model = senca.model.SENCA(adata)
    >>> model.get_latent_representation().shape  # no training needed: 50 expression + 10 histology columns
    (300, 60)
    >>> model.train(seed=0)  # chooses the number of attention passes (seconds)
    >>> adata.obsm["X_senca"] = model.get_latent_representation()
    """

    _module_cls = SENCAModule

    def __init__(
        self,
        adata: AnnData | None = None,
        registry: dict | None = None,
        n_latent: int = 50,
        passes: int = 2,
        max_passes: int = 8,
        kernel_scale: float = 1.0,
        image_block_weight: float = 1.0,
        integrate: bool | None = None,
        n_integration_clusters: int | None = None,
    ):
        adata = table_of(adata, type(self))
        loading = registry is not None  # scvi-tools' load: weights and buffers come from the saved state
        super().__init__(adata, registry)
        stats = self.summary_stats
        n_image = int(stats.get(f"n_{REGISTRY_KEYS.IMAGE_KEY}", 0))
        if n_image == 0:
            warnings.warn(_NO_IMAGE_WARNING, UserWarning, stacklevel=2)
        gene_pos = model_gene_positions(self.adata_manager) if self.adata_manager is not None else None
        genes = (self.registry_.get("setup_args") or {}).get("genes") if self.registry_ else None
        n_genes = len(genes) if genes is not None else int(stats["n_vars"])
        n_latent_used = max(int(min(n_latent, n_genes - 1, (stats.get("n_cells") or 10**9) - 1)), 1)
        samples = sample_codes(adata, self._sample_key)
        n_samples = 0 if samples is None else int(samples.max()) + 1
        integrate = bool(n_samples >= 2 if integrate is None else integrate)
        if integrate and n_integration_clusters is None:
            n_integration_clusters = int(np.clip(round((stats.get("n_cells") or 0) / 30), 2, 100))
        self._module_kwargs = {
            "n_genes": n_genes,
            "n_image": n_image,
            "n_latent": n_latent_used,
            "passes": passes,
            "max_passes": max_passes,
            "kernel_scale": kernel_scale,
            "image_block_weight": image_block_weight,
            "n_integration_clusters": int(n_integration_clusters) if integrate else 0,
        }
        if not loading and self.adata_manager is not None:  # a loaded model's state comes from its saved weights
            cohort = (np.zeros(adata.n_obs, dtype=np.int64) if samples is None else samples) if integrate else None
            self._module_kwargs.update(
                fit_statistics(self.adata_manager, self._module_kwargs, cohort, n_integration_clusters)
            )
        self._build_module()
        self.module.eval()
        of_all = f" (of {stats['n_vars']})" if gene_pos is not None else ""
        self._model_summary_string = (
            f"SENCA: n_genes {n_genes}{of_all}, histology features {n_image or 'none (expression only)'}, "
            f"neighbours {stats.get(f'n_{REGISTRY_KEYS.NEIGHBOR_KEY}')}, expression components {n_latent_used}, "
            f"attention passes {int(self.module.passes)}"
            + (f", cohort integration over {n_samples} samples" if integrate else "")
        )
        self.init_params_ = self._get_init_params(locals())

    @property
    def _sample_key(self) -> str | None:
        """``sample_key`` given to :meth:`setup_anndata` (``None`` when the model was set up without one)."""
        return self.registry_["setup_args"].get("sample_key") if self.registry_ else None

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        image_key: str | None = None,
        spatial_key: str = "spatial",
        sample_key: str | None = None,
        n_neighbors: int = 6,
        neighbors_key: str = DEFAULT_NEIGHBORS_OBSM_KEY,
        library_key: str | None = None,
        n_top_genes: int | None = 3000,
        genes: Sequence[str] | None = None,
        overwrite: bool = False,
        **kwargs,
    ) -> None:
        """Register an AnnData with SENCA and compute its within-sample neighbour index.

        Whatever the number of genes passed, SENCA models the ``n_top_genes`` most variable ones (seurat_v3 on
        the counts, per sample with ``sample_key``) and normalises them by each spot's total counts over *all*
        genes. On a her2st section this is both faster (a minute and more with all ~15,000 genes, seconds with
        3,000) and better (A1 ARI 0.41 instead of 0.25 with every gene in the principal components). The
        selected genes are stored with the setup, so a model embeds new data on the same genes. AnnData already
        restricted to highly variable genes (e.g. by :func:`senca.pp.select_genes`, which keeps the whole
        library in ``obs["library_size"]``: pass ``library_key="library_size"``) is used as it is.

        Parameters
        ----------
        adata
            Spots x genes, raw counts in ``adata.X`` or ``adata.layers[layer]``.
        layer
            Layer with the raw counts; ``None`` uses ``adata.X``.
        image_key
            ``adata.obsm`` key of per-spot histology features (e.g. ``"X_histology"`` from
            :func:`senca.im.extract_features`); ``None`` runs the expression-only mode (with a warning).
        spatial_key
            ``adata.obsm`` key of the spot coordinates.
        sample_key
            ``adata.obs`` column naming the sample/section: neighbours never cross samples.
        n_neighbors
            Neighbourhood size k, the spot itself included.
        library_key
            ``adata.obs`` column with each spot's total counts over all genes (e.g. ``"library_size"`` from
            :func:`senca.pp.select_genes`); ``None`` sums every registered gene.
        n_top_genes
            Number of highly variable genes the model uses when ``adata`` has more; ``None`` uses every gene.
        genes
            The genes to use, instead of choosing them (names in ``adata.var_names``).
        neighbors_key
            ``adata.obsm`` key where the ``(n_obs, n_neighbors)`` int64 neighbour index (self in column 0)
            is written; it is recomputed on every setup.
        overwrite
            Replace a different index already in ``adata.obsm[neighbors_key]`` (from a setup with other settings,
            or before the data were subset). The same setup twice needs no ``overwrite``.
        **kwargs
            Internal (``source_registry`` when loading a model).

        Returns
        -------
        ``None``. Writes ``adata.obsm[neighbors_key]`` and registers the fields.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=200, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", n_neighbors=6)
        >>> adata.obsm["senca_knn"].shape
        (200, 6)
        """
        if not isinstance(adata, AnnData):
            raise TypeError(
                f"setup_anndata expects an AnnData, got {type(adata).__name__}; for SpatialData use setup_spatialdata."
            )
        n_neighbors = int(n_neighbors)
        _, groups = check_setup(
            adata, "SENCA.setup_anndata", layer, spatial_key, sample_key,
            features={"image_key": image_key},
        )  # fmt: skip
        if adata.n_obs < n_neighbors:
            raise ValueError(f"adata has {adata.n_obs} spots, fewer than n_neighbors={n_neighbors}; lower n_neighbors.")
        if genes is not None:
            genes = [str(g) for g in genes]
            missing = pd.Index(genes).difference(adata.var_names)
            if len(missing):
                raise KeyError(
                    f"{len(missing)} of the given genes are not in adata.var_names (e.g. {list(missing[:5])}); "
                    "check the gene identifiers."
                )
        elif n_top_genes is not None and adata.n_vars > int(n_top_genes):
            from senca.pp._genes import _highly_variable

            genes = [str(g) for g in _highly_variable(adata, int(n_top_genes), layer, sample_key)[0]]
        # the arguments as called, except the chosen genes: the registry keeps them for new data and for load()
        names = set(inspect.signature(cls.setup_anndata).parameters) | {"cls"}
        setup_method_args = cls._get_setup_method_args(**{k: v for k, v in locals().items() if k in names})
        index = knn_index(np.asarray(adata.obsm[spatial_key])[:, :2], n_neighbors, groups)
        set_owned(adata.obsm, neighbors_key, index, "adata.obsm", overwrite, ", or pass neighbors_key= another key")

        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            ObsmField(REGISTRY_KEYS.NEIGHBOR_KEY, neighbors_key),
        ]
        if image_key is not None:
            fields.append(ObsmField(REGISTRY_KEYS.IMAGE_KEY, image_key))
        if library_key is not None:
            if library_key not in adata.obs:
                raise KeyError(
                    f"adata.obs[{library_key!r}] not found; compute it with senca.pp.select_genes (before subsetting "
                    "genes) or pass library_key=None."
                )
            lib = np.asarray(adata.obs[library_key], dtype=np.float64)
            if not np.isfinite(lib).all() or (lib <= 0).any():
                raise ValueError(f"adata.obs[{library_key!r}] must hold positive, finite total counts per spot.")
            fields.append(NumericalObsField(REGISTRY_KEYS.LIBRARY_KEY, library_key))
        cls._register_fields(adata, fields, setup_method_args, **kwargs)

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-3,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        seed: int | None = 0,
        n_splits: int | None = None,
        deterministic: bool = True,
        enable_progress_bar: bool = True,
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Fit what the data can tell without labels: the number of attention passes, and (optionally) fine-tuning.

        Training starts from the network's initial state, the estimator (a second call starts there again):

        1. **Passes** (always, seconds): each spot's counts are split binomially into two halves with independent
           noise; half A is mixed by ``1 .. max_passes`` attention layers and compared with half B in the top 15
           principal components of half A. The number of passes with the lowest held-out loss (summed over
           ``n_splits`` splits) is kept (``model.selection_`` holds the curve). Too few passes leave noise in, too many
           average over spots that differ: on her2st it chooses the estimator's two passes on the labelled sections;
           shallower data get more.
        2. **Fine-tuning** (only with ``max_epochs``; off by default because no label-free objective tried improved
           the regions on her2st, ``benchmarks/RESULTS.md``): the attention's learnable paths (query/key maps of the
           H&E tokens, an expression-similarity term, the temperatures) are trained with Lightning so that the
           network's mix of half A predicts the estimator's mix of half B (a region-scale target, never a spot's own
           counts), on fresh splits at every epoch. The fine-tuned weights are kept only if the same loss on fixed
           held-out splits is lower than before fine-tuning (``model.finetune_``); otherwise the network returns to
           its state after step 1.

        Parameters
        ----------
        max_epochs
            Fine-tuning epochs (each one pass over every section); ``None`` or 0: no fine-tuning.
        lr
            Adam learning rate of the fine-tuning.
        accelerator, devices
            Lightning device arguments of the fine-tuning (``"auto"`` picks a GPU when there is one).
        seed
            Seeds Python, numpy, torch and Lightning, and the count splits: the same seed gives the same network on
            CPU. ``None`` leaves the generators alone.
        n_splits
            Count splits averaged by the passes criterion (``None``: two under 50,000 spots, else one).
        deterministic
            Ask Lightning/torch for deterministic algorithms while fine-tuning; torch's global flags are restored
            afterwards.
        enable_progress_bar
            Show Lightning's progress bar while fine-tuning.
        plan_kwargs
            Extra arguments of :class:`scvi.train.TrainingPlan` (fine-tuning).
        **trainer_kwargs
            Extra arguments of :class:`scvi.train.Trainer` (Lightning), e.g. ``strategy="ddp"``.

        Returns
        -------
        ``None``. ``model.selection_`` holds the passes criterion, ``model.finetune_`` the fine-tuning's validation
        losses and whether it was kept; ``model.history`` the fine-tuning's loss curves.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata)
        >>> model.train(seed=0)
        >>> model.selection_["passes"] in range(1, 9)
        True
        """
        if seed is not None:
            self._reseed(seed, rebuild=False)
        self.module.reset()  # every fit starts from the estimator
        self.is_trained_, self.history_, self.finetune_ = False, None, None
        data = self._training_inputs()
        losses = passes_criterion(
            self.module, data["counts"], data["keys"], data["index"], seed=0 if seed is None else int(seed),
            n_splits=n_splits,
        )  # fmt: skip
        chosen = int(np.argmin(losses)) + 1
        self.module.passes.fill_(chosen)
        self.selection_ = {"passes": chosen, "loss": [float(v) for v in losses]}
        if max_epochs:
            self._finetune(data, int(max_epochs), lr, accelerator, devices, seed, deterministic,
                           enable_progress_bar, plan_kwargs, trainer_kwargs)  # fmt: skip
        self.is_trained_ = True
        self.module.eval()

    @torch.no_grad()
    def _training_inputs(self) -> dict:
        """The training data as the network reads it: counts, library, H&E tokens, neighbour index and samples."""
        manager = self.adata_manager
        return {
            "counts": registered_counts(manager),
            "library": registered_library(manager),
            "keys": read_image_tokens(manager, self.module),
            "index": registered_index(manager).to(self.module.kernel_bandwidth.device),
            "samples": sample_codes(self.adata, self._sample_key),
        }

    def _finetune(self, data, max_epochs, lr, accelerator, devices, seed, deterministic, progress, plan_kwargs, kw):
        """Fine-tune the attention on count splits with Lightning; keep it only if the held-out loss improves."""
        from scvi.train import TrainRunner

        seed = 0 if seed is None else int(seed)
        args = (self.module, data["counts"], data["library"], data["keys"], data["index"], data["samples"])
        train_batches = CountSplitBatches(*args, seed=seed)
        held_out = CountSplitBatches(*args, seed=seed + 1, fixed=True)
        before = validation_loss(self.module, held_out)
        state = copy.deepcopy(self.module.state_dict())
        self.module.train_used_layers()
        plan = self._training_plan_cls(self.module, **{"lr": lr, "weight_decay": 0.0, **(plan_kwargs or {})})
        kw.setdefault("deterministic", deterministic)
        kw.setdefault("check_val_every_n_epoch", 1)
        if deterministic:
            kw.setdefault("benchmark", False)
        with self._quiet_training():
            self.module.train()
            runner = TrainRunner(
                self,
                training_plan=plan,
                data_splitter=CountSplitDataModule(train_batches, held_out),
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=devices,
                enable_progress_bar=progress,
                **kw,
            )
            try:
                runner()
            except BaseException:  # an interrupted fine-tuning leaves the network as it was before it started
                self.module.load_state_dict(state)
                self.module.eval()
                raise
        after = validation_loss(self.module, held_out)
        kept = after < before
        if not kept:
            self.module.load_state_dict(state)
        self.finetune_ = {"validation_before": before, "validation_after": after, "kept": bool(kept)}

    def _validate_anndata(self, adata=None, copy_if_view: bool = True):
        """Set new data up with SENCA's own ``setup_anndata`` (computing *its* neighbour index)."""
        if adata is not None and self.adata_manager is not None:
            check_view(adata, copy_if_view=copy_if_view)
            if instance_manager(self, adata) is None:
                cls = type(self)
                # the stand-in (or a loaded model's data) is set up as the model was; its index is the model's to write
                setup_args = {**self.registry_["setup_args"], "overwrite": True}
                cls.setup_anndata(adata, source_registry=self.registry_, **setup_args)
                self._register_manager_for_instance(cls._get_most_recent_anndata_manager(adata, required=True))
        with quiet_scvi():
            return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    # ------------------------------------------------------------------ outputs
    @contextmanager
    def _readable(self, adata=None) -> Iterator[AnnData]:
        """The AnnData to read outputs from, set up from the registry, without writing into the caller's data.

        The training data is read as it is. Other data (its genes must be the model's, in order) is read through a
        stand-in AnnData over the same arrays (nothing is copied), which the setup writes its neighbour index and
        registration into and which is dropped afterwards: a getter leaves the caller's AnnData unchanged.
        """
        table = table_of(adata, type(self))
        if table is None or table is self.adata:
            yield self._validate_anndata(table)
            return
        check_same_genes(table.var_names, registered_var_names(self.registry_, REGISTRY_KEYS.X_KEY))
        stand_in = AnnData(
            X=table.X,
            obs=table.obs.copy(),
            var=pd.DataFrame(index=table.var_names.copy()),
            obsm=dict(table.obsm.items()),
            layers=dict(table.layers.items()),
        )
        try:
            yield self._validate_anndata(stand_in)
        finally:
            forget_manager(self, stand_in)

    @torch.inference_mode()
    def _embed(self, adata=None, representation: Representation = "network") -> dict[str, np.ndarray]:
        """The network's outputs on whole sections: embedding ``z``, first-layer ``attention`` and ``delta``."""
        if representation not in ("network", "estimator"):
            raise ValueError(f"representation must be 'network' or 'estimator', got {representation!r}.")
        with self._readable(adata) as adata:
            manager = self.get_anndata_manager(adata, required=True)
            device = self.module.kernel_bandwidth.device
            expression = read_expression(manager, self.module)
            samples = sample_codes(adata, self._sample_key)
            expression = self.module.integrate(
                expression, None if samples is None else torch.as_tensor(samples, device=device)
            )
            keys = read_image_tokens(manager, self.module)
            index = registered_index(manager).to(device)
            out = self.module.embed(expression, keys, index, initial=representation == "estimator")
        return {k: v.cpu().numpy().astype(np.float32) for k, v in out.items()}

    def get_latent_representation(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        representation: Representation = "network",
    ) -> np.ndarray:
        """The SENCA embedding of each spot, the input of :func:`senca.tl.regions`.

        Each spot's expression tokens (principal components of the log-normalised counts; in cohort mode mapped onto
        the model's Harmony reference, whether the section was in the training data or not) mixed with its
        neighbours' by the network's attention layers (H&E tokens as queries and keys; uniform weights without an
        image), next to the histology tokens mixed the same way, each weighted by its spatial autocorrelation, the
        block scaled to the expression block's spread.

        Parameters
        ----------
        adata
            AnnData (or SpatialData) with the same genes (and feature key) as the training data; ``None``
            uses the training data. New data is set up from the model's registry (its own neighbour
            index is computed) and left unchanged, so a model fitted on one section embeds another.
        indices
            Rows to return (default: all). The whole sections are always embedded: a spot's embedding depends on
            its neighbours.
        batch_size
            Ignored (kept for the scvi-tools signature): the network reads whole sections.
        representation
            ``"network"`` (default): the network as :meth:`train` left it (its initial state before training);
            ``"estimator"``: the network's initial state, the parameter-free estimator, whatever training did.

        Returns
        -------
        float32 array ``(n_obs, n_latent [+ 10 histology tokens])``; store it e.g. as ``adata.obsm["X_senca"]``.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata)
        >>> model.train()
        >>> adata.obsm["X_senca"] = model.get_latent_representation()
        """
        z = self._embed(adata, representation)["z"]
        return z if indices is None else z[np.asarray(indices)]

    def get_attention(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        representation: Representation = "network",
    ) -> np.ndarray:
        """Weights of the first attention layer: how much each spot takes from itself and each neighbour.

        Parameters
        ----------
        adata, indices, representation
            As in :meth:`get_latent_representation`.

        Returns
        -------
        ``(n_obs, n_neighbors)`` array whose rows sum to 1; column ``j`` refers to the neighbour in
        ``adata.obsm["senca_knn"][:, j]``. Column 0, the spot itself, is ``1/k``; the neighbours share ``1 - 1/k``
        by how alike they look in H&E (evenly without an image).

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata)
        >>> model.get_attention().shape
        (300, 6)
        """
        a = self._embed(adata, representation)["attention"]
        k = a.shape[1] + 1
        w = np.concatenate([np.full((a.shape[0], 1), 1.0 / k, dtype=np.float32), (1 - 1.0 / k) * a], axis=1)
        return w if indices is None else w[np.asarray(indices)]

    def get_discordance(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        representation: Representation = "network",
    ) -> np.ndarray:
        """Functional-contrast magnitude ``|delta_i|`` of each spot.

        ``delta_i = e_i - sum_{j != i} a_ij e_j``: the spot's expression tokens minus those of the neighbours that
        look most like it in H&E, weighted by the first attention layer (:meth:`get_attention`). Each component
        counts by its spatial autocorrelation (its correlation with its own neighbourhood mean, floored at 0), so
        components that are measurement noise do not drown the signal. Large values mark spots that are structurally
        similar to their neighbours but functionally different. :func:`senca.tl.discordance` stores it in
        ``adata.obs["senca_discordance"]``.

        Parameters
        ----------
        adata, indices, representation
            As in :meth:`get_latent_representation`.

        Returns
        -------
        ``(n_obs,)`` non-negative float32 array.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata)
        >>> model.get_discordance().shape
        (300,)
        """
        delta = self._embed(adata, representation)["delta"]
        d = np.linalg.norm(delta, axis=1).astype(np.float32)
        return d if indices is None else d[np.asarray(indices)]
