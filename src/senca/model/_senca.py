"""SENCA as an scvi-tools model: setup, training, embedding, attention and discordance."""

from __future__ import annotations

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
from senca.data import (
    DEFAULT_NEIGHBORS_OBSM_KEY,
    REGISTRY_KEYS,
)
from senca.data._loader import model_gene_positions
from senca.model._base import SencaModel
from senca.model._plan import default_max_epochs
from senca.model._senca_fit import fit_statistics, read_expression, sample_codes
from senca.module import SENCAModule
from senca.pp import knn_index

logger = logging.getLogger(__name__)

_NO_IMAGE_WARNING = (
    "SENCA was set up without histology features (image_key=None): it runs in expression-only mode, where its "
    "region embedding is the expression principal components averaged uniformly over each spot's neighbourhood "
    "(expression + space). Pass image_key= (e.g. the output of senca.im.extract_features, "
    "adata.obsm['X_histology']) to weight the neighbours by how alike they look in H&E."
)


class SENCA(SencaModel):
    """SENCA: Shared Encoder with Neighbourhood Cross-Attention for unsupervised tissue regions.

    Each spot is embedded from its spatial neighbourhood: a gene head and an image head feed one
    shared encoder, multi-head cross-attention runs both ways over the k nearest spots of the same
    sample, and a functional-contrast term ``delta_i`` marks spots whose expression differs from the
    neighbours that look alike in H&E. The network's fused latent is trained to reconstruct both
    modalities (negative-binomial counts, Gaussian histology features) plus a small InfoNCE alignment term.

    The embedding used for regions (``get_latent_representation()``, default ``representation="attention"``)
    is the neighbourhood cross-attention with H&E as keys and expression as values, with weights from a
    Gaussian kernel on the histology tokens (bandwidth: the median neighbour distance of the training
    data), plus the histology tokens mixed the same way, each weighted by its spatial autocorrelation, at the
    expression block's spread (neither modality dominates); without an image it is the
    spatially smoothed expression. Its weights are not trained: the trained latent is ``representation="learned"``,
    and every learned embedding tried on her2st clustered worse (``benchmarks/RESULTS.md``, "Experiments behind the
    defaults"). Cluster with :func:`senca.tl.regions`; :meth:`get_discordance` is the functional contrast of the
    same attention.

    Several sections set up together with a ``sample_key`` are integrated (cohort mode, ``integrate``): the expression
    components are corrected for the section with Harmony, whose reference the model keeps, so that one region
    caller labels every section alike and a new section is embedded without retraining
    (:func:`senca.tl.assign_regions` then gives it the cohort's regions).

    Parameters
    ----------
    adata
        AnnData set up with :meth:`setup_anndata`, or a SpatialData set up with :meth:`setup_spatialdata`.
    registry
        Used by :meth:`load` to rebuild a model without data; leave ``None``.
    n_latent
        Width of the trained network's latent (``representation="learned"``). The default region embedding does
        not depend on it: it has ``n_pcs`` expression columns plus 10 histology columns when there is an image.
    n_hidden
        Token width and hidden width.
    n_heads
        Attention heads (must divide ``n_hidden``).
    n_layers
        Hidden layers of the modality heads and decoders.
    dropout
        Dropout rate.
    gene_weight, image_weight, infonce_weight
        Loss weights: count likelihood, histology reconstruction (both averaged per feature), InfoNCE.
    temperature
        InfoNCE temperature.
    n_pcs
        The gene head reads the log-normalised counts projected on this many principal axes, fitted
        once on the training data and stored in the model (query data use the same axes); 0 feeds all
        genes. Ignored when ``setup_anndata`` was given an ``expression_key``.
    residual
        Add a linear path from the neighbourhood-averaged inputs to the embedding, so that it starts as
        a spatially smoothed representation and the attention adds to it.
    reconstruct
        ``"neighborhood"``: decode the neighbourhood's summed counts and mean histology (default);
        ``"spot"``: decode the spot's own.
    image_block_weight
        Spread of the histology block of the attention embedding relative to the expression block, before each
        histology component is weighted by its spatial autocorrelation (0: expression values only, H&E only as
        attention keys). 1 puts spatially structured histology on the same footing as expression; a shuffled
        image (no spatial structure) then adds nothing but its attention keys.
    integrate
        Cohort mode: correct the expression principal components for the sample (``sample_key`` of
        :meth:`setup_anndata`) with Harmony before the neighbourhood attention, so that one region caller gives
        labels that mean the same thing in every section. The model keeps Harmony's reference and maps every
        section onto it, training sections and new ones alike (Symphony's query mapping), so a section the model
        has never seen is embedded without retraining. ``None``: on when the training data has two or more
        samples.
    n_integration_clusters
        Harmony's number of soft clusters; ``None``: ``min(100, n_obs / 30)`` (Harmony's default).
    **module_kwargs
        Further arguments of :class:`senca.module.SENCAModule`.

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
    >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
    >>> model = senca.model.SENCA(adata, n_latent=8)
    >>> model.train(max_epochs=2, seed=0, enable_progress_bar=False)
    >>> model.get_latent_representation().shape  # 50 expression PCs + 10 histology tokens
    (300, 60)
    >>> model.get_latent_representation(representation="learned").shape
    (300, 8)
    """

    _module_cls = SENCAModule

    def __init__(
        self,
        adata: AnnData | None = None,
        registry: dict | None = None,
        n_latent: int = 32,
        n_hidden: int = 128,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.1,
        gene_weight: float = 1.0,
        image_weight: float = 1.0,
        infonce_weight: float = 0.1,
        temperature: float = 0.1,
        n_pcs: int = 50,
        residual: bool = True,
        reconstruct: Literal["neighborhood", "spot"] = "neighborhood",
        image_block_weight: float = 1.0,
        integrate: bool | None = None,
        n_integration_clusters: int | None = None,
        **module_kwargs,
    ):
        adata = table_of(adata, type(self))
        loading = registry is not None  # scvi-tools' load: buffers come from the saved state
        super().__init__(adata, registry)
        stats = self.summary_stats
        n_image = int(stats.get(f"n_{REGISTRY_KEYS.IMAGE_KEY}", 0))
        n_expression = int(stats.get(f"n_{REGISTRY_KEYS.EXPRESSION_KEY}", 0))
        if n_image == 0:
            warnings.warn(_NO_IMAGE_WARNING, UserWarning, stacklevel=2)
        gene_pos = model_gene_positions(self.adata_manager) if self.adata_manager is not None else None
        genes = (self.registry_.get("setup_args") or {}).get("genes") if self.registry_ else None
        n_genes = len(genes) if genes is not None else int(stats["n_vars"])
        n_pcs_used = 0 if n_expression > 0 else int(min(n_pcs, n_genes - 1, (stats.get("n_cells") or 10**9) - 1))
        n_pcs_used = max(n_pcs_used, 0)
        samples = sample_codes(adata, self._sample_key)
        n_samples = 0 if samples is None else int(samples.max()) + 1
        if integrate is None:
            integrate = n_samples >= 2 and n_pcs_used > 0
        integrate = bool(integrate)
        if integrate and n_pcs_used == 0:
            raise ValueError(
                "integrate=True needs the model's principal axes; it does not work with an expression_key."
            )
        if integrate and n_integration_clusters is None:
            n_integration_clusters = int(np.clip(round((stats.get("n_cells") or 0) / 30), 2, 100))
        fitted = {}
        if not loading and self.adata_manager is not None:  # a loaded model's statistics come from its saved state
            cohort = (np.zeros(adata.n_obs, dtype=np.int64) if samples is None else samples) if integrate else None
            fitted = fit_statistics(self.adata_manager, n_pcs_used, image_block_weight, cohort, n_integration_clusters)
        if integrate:
            fitted["n_integration_clusters"] = int(n_integration_clusters)
        self._module_kwargs = dict(
            n_genes=n_genes,
            n_image=n_image,
            n_expression=n_expression,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_heads=n_heads,
            n_layers=n_layers,
            dropout=dropout,
            gene_weight=gene_weight,
            image_weight=image_weight,
            infonce_weight=infonce_weight,
            temperature=temperature,
            n_pcs=n_pcs_used,
            residual=residual,
            reconstruct=reconstruct,
            image_block_weight=image_block_weight,
            **fitted,
            **module_kwargs,
        )
        self._build_module()
        of_all = f" (of {stats['n_vars']})" if gene_pos is not None else ""
        self._model_summary_string = (
            f"SENCA: n_genes {n_genes}{of_all}, histology features {n_image or 'none (expression only)'}, "
            f"neighbours {stats.get(f'n_{REGISTRY_KEYS.NEIGHBOR_KEY}')}, n_latent {n_latent}, n_hidden {n_hidden}, "
            f"n_heads {n_heads}" + (f", cohort integration over {n_samples} samples" if integrate else "")
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
        expression_key: str | None = None,
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
        expression_key
            Optional ``adata.obsm`` key of a precomputed expression representation (e.g. a PCA of the
            log-normalised counts) used as the gene head input instead of log-normalised counts; the
            counts are still what the model reconstructs.
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
            features={"image_key": image_key, "expression_key": expression_key},
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
        elif n_top_genes is not None and adata.n_vars > int(n_top_genes) and expression_key is None:
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
        if expression_key is not None:
            fields.append(ObsmField(REGISTRY_KEYS.EXPRESSION_KEY, expression_key))
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
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        seed: int | None = 0,
        train_size: float = 0.9,
        early_stopping: bool = True,
        early_stopping_patience: int = 30,
        deterministic: bool = True,
        enable_progress_bar: bool = True,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train SENCA on mini-batches of spots with their neighbourhoods.

        Parameters
        ----------
        max_epochs
            Number of epochs; ``None`` uses :func:`default_max_epochs` of the number of spots.
        batch_size
            Spots per minibatch (each carries its k neighbours).
        lr, weight_decay
            Adam learning rate and weight decay.
        accelerator, devices
            Lightning device arguments (``"auto"`` picks a GPU when there is one).
        seed
            Seeds Python, numpy, torch, Lightning, the initial weights of an untrained model, the train/validation
            split and the loader shuffling: the same seed gives the same trained network (and learned embedding)
            on CPU. The default region embedding has no trained weights and does not depend on it. ``None`` leaves
            the generators alone.
        train_size
            Fraction of spots used for training; the rest is the validation split that early
            stopping watches (``1.0`` disables both).
        early_stopping
            Stop when the validation loss has not improved for ``early_stopping_patience`` epochs.
        early_stopping_patience
            Patience in epochs.
        deterministic
            Ask Lightning/torch for deterministic algorithms (bit-identical CPU runs) while training; torch's global
            flags are restored afterwards.
        enable_progress_bar
            Show a progress bar.
        plan_kwargs
            Extra arguments of :class:`scvi.train.TrainingPlan`.
        datasplitter_kwargs
            Extra arguments of :class:`senca.data.NeighborhoodDataSplitter`.
        **trainer_kwargs
            Extra arguments of :class:`scvi.train.Trainer` (Lightning).

        Returns
        -------
        ``None``; the loss curves are in ``model.history``.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata)
        >>> model.train(max_epochs=2, seed=0, enable_progress_bar=False)
        >>> "train_loss" in model.history
        True
        """
        if seed is not None:  # the seed also decides the initial weights of an untrained model
            self._reseed(seed, rebuild=not self.is_trained_)
        if max_epochs is None:
            max_epochs = default_max_epochs(self.adata.n_obs, batch_size, min(float(train_size), 1.0))
        train_size = float(train_size)
        if train_size >= 1.0:
            train_size, early_stopping = 1.0, False
        plan_kwargs = {"lr": lr, "weight_decay": weight_decay, **(plan_kwargs or {})}
        trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
        trainer_kwargs.setdefault("early_stopping_monitor", "elbo_validation")
        trainer_kwargs.setdefault("deterministic", deterministic)
        if deterministic:
            trainer_kwargs.setdefault("benchmark", False)
        with self._quiet_training():
            super().train(
                max_epochs=int(max_epochs),
                accelerator=accelerator,
                devices=devices,
                train_size=train_size,
                batch_size=batch_size,
                early_stopping=early_stopping,
                enable_progress_bar=enable_progress_bar,
                plan_kwargs=plan_kwargs,
                datasplitter_kwargs=datasplitter_kwargs,
                **trainer_kwargs,
            )
        self.module.eval()

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
    def _collect(
        self,
        keys: Sequence[str],
        adata=None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> dict[str, np.ndarray]:
        self._check_if_trained(warn=True)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        was_training = self.module.training
        self.module.eval()
        with self._readable(adata) as table:
            for tensors in self._make_data_loader(adata=table, indices=indices, batch_size=batch_size):
                out = self.module.inference(**self.module._get_inference_input(tensors))
                for k in keys:
                    parts[k].append(out[k].detach().cpu().numpy())
        self.module.train(was_training)
        return {k: np.concatenate(v) for k, v in parts.items()}

    @torch.inference_mode()
    def _attention_outputs(self, adata=None) -> dict[str, np.ndarray]:
        # no training check: the attention embedding has no trained weights, an untrained model gives the same
        if self.module.n_pcs == 0:
            raise ValueError(
                "The attention embedding needs the model's principal axes; this model was set up with an "
                "expression_key. Use representation='learned'."
            )
        with self._readable(adata) as adata:
            manager = self.get_anndata_manager(adata, required=True)
            device = self.module.pca_components.device
            expression = read_expression(
                manager,
                lambda x, lib: self.module.expression_components(x.to(device), None if lib is None else lib.to(device)),
            )
            samples = sample_codes(adata, self._sample_key)
            expression = self.module.integrate(
                expression.to(device), None if samples is None else torch.as_tensor(samples, device=device)
            )
            index = torch.as_tensor(np.asarray(manager.get_from_registry(REGISTRY_KEYS.NEIGHBOR_KEY)), dtype=torch.long)
            h = None
            if self.module.n_image > 0:
                h = torch.as_tensor(np.asarray(manager.get_from_registry(REGISTRY_KEYS.IMAGE_KEY)), dtype=torch.float32)
                h = h.to(device)
            out = self.module.attention_embedding(expression.to(device), index.to(device), h)
        return {k: v.cpu().numpy().astype(np.float32) for k, v in out.items()}

    def get_latent_representation(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        representation: Literal["attention", "learned"] = "attention",
    ) -> np.ndarray:
        """The SENCA embedding of each spot.

        ``representation="attention"`` (default, used for region calling) is the neighbourhood cross-attention
        embedding: each spot's expression (principal components of the log-normalised counts) mixed with
        its neighbours' with weights set by how alike they look in H&E (a Gaussian kernel on the histology
        tokens, uniform without an image), twice, next to the histology tokens mixed the same way, each
        weighted by its spatial autocorrelation and the block scaled to the expression block's spread. Its
        attention weights are not trained: on her2st, attention learned by reconstruction collapsed onto one
        neighbour and every learned variant clustered worse (see ``benchmarks/RESULTS.md``, "Experiments behind the
        defaults"). In cohort mode (``integrate``) the expression components of each section are first mapped onto
        the model's Harmony
        reference, whether the section was in the training data or not. ``representation="learned"`` is the
        trained network's fused latent ``z`` (shared encoder, learned
        bidirectional cross-attention, functional contrast), used for reconstruction.

        Parameters
        ----------
        adata
            AnnData (or SpatialData) with the same genes (and feature key) as the training data; ``None``
            uses the training data. New data is set up from the model's registry (its own neighbour
            index is computed), so a model trained on one section embeds another.
        indices
            Rows to embed (default: all).
        batch_size
            Spots per minibatch (``representation="learned"``).
        representation
            ``"attention"`` or ``"learned"``, see above.

        Returns
        -------
        float32 array, ``(n_obs, n_pcs [+ 10 histology tokens])`` for ``"attention"`` and ``(n_obs, n_latent)``
        for ``"learned"``; store it e.g. as ``adata.obsm["X_senca"]``.

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata, n_latent=8)
        >>> model.train(max_epochs=2, enable_progress_bar=False)
        >>> adata.obsm["X_senca"] = model.get_latent_representation()
        """
        if representation == "learned":
            return self._collect(["z"], adata, indices, batch_size)["z"]
        if representation != "attention":
            raise ValueError(f"representation must be 'attention' or 'learned', got {representation!r}.")
        z = self._attention_outputs(adata)["z"]
        return z if indices is None else z[np.asarray(indices)]

    def get_attention(
        self,
        adata=None,
        direction: Literal["gene", "image", "contrast", "embedding"] = "gene",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Neighbourhood attention weights, averaged over heads.

        Parameters
        ----------
        adata
            As in :meth:`get_latent_representation`.
        direction
            ``"gene"``: the spot's gene token attending over its neighbours' histology tokens (over their
            gene tokens without an image); ``"image"``: the histology token attending over the neighbours'
            gene tokens (needs an image); ``"contrast"``: the histology-similarity weights ``a^h_ij`` that
            define the functional contrast (column 0, the spot itself, is 0); ``"embedding"``: the fixed
            H&E-keyed weights of one mixing pass of the region embedding (column 0, the spot itself, is
            ``1/k``; the neighbours share ``1 - 1/k``).
        indices, batch_size
            As in :meth:`get_latent_representation`.

        Returns
        -------
        ``(n_obs, n_neighbors)`` array whose rows sum to 1; column ``j`` refers to the neighbour in
        ``adata.obsm["senca_knn"][:, j]`` (column 0 is the spot itself).

        Examples
        --------
        >>> import senca
        >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)
        >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(adata)
        >>> model.train(max_epochs=2, enable_progress_bar=False)
        >>> model.get_attention().shape
        (300, 6)
        """
        if direction == "embedding":
            a = self._attention_outputs(adata)["attention"]
            k = a.shape[1] + 1
            w = np.concatenate([np.full((a.shape[0], 1), 1.0 / k, dtype=np.float32), (1 - 1.0 / k) * a], axis=1)
            return w if indices is None else w[np.asarray(indices)]
        key = {"gene": "attention", "image": "attention_image", "contrast": "contrast_attention"}.get(direction)
        if key is None:
            raise ValueError(f"direction must be 'gene', 'image', 'contrast' or 'embedding', got {direction!r}.")
        if key == "attention_image" and self.module.n_image == 0:
            raise ValueError("direction='image' needs histology features; this model was set up with image_key=None.")
        return self._collect([key], adata, indices, batch_size)[key]

    def get_discordance(
        self, adata=None, indices: Sequence[int] | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        """Functional-contrast magnitude ``|delta_i|`` of each spot.

        ``delta_i = p_i - sum_{j != i} a^h_ij p_j``: the spot's expression (principal components of the
        log-normalised counts) minus that of the neighbours that look most like it in H&E, weighted by the
        attention of :meth:`get_latent_representation`. Each component counts by its spatial autocorrelation
        (its correlation with its own neighbourhood mean, floored at 0), so components that are measurement noise
        do not drown the signal. Large values mark spots that are structurally similar to their neighbours but
        functionally different. :func:`senca.tl.discordance` stores it
        in ``adata.obs["senca_discordance"]``.

        Parameters
        ----------
        adata, indices, batch_size
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
        >>> model.train(max_epochs=2, enable_progress_bar=False)
        >>> model.get_discordance().shape
        (300,)
        """
        delta = self._attention_outputs(adata)["delta"]
        d = np.linalg.norm(delta, axis=1).astype(np.float32)
        return d if indices is None else d[np.asarray(indices)]
