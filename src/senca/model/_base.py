"""What the senca models share: a module rebuilt from the seed, quiet training, setup from SpatialData, save."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from scvi.data import AnnDataManager
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from senca._utils import TRAINING_NOISE, quiet_scvi, restore_torch_flags, set_seed, spatialdata_table
from senca.data import NeighborhoodDataLoader, NeighborhoodDataSplitter
from senca.model._plan import TrainingPlan


class SencaModel(UnsupervisedTrainingMixin, BaseModelClass):
    """Base class of :class:`senca.model.SENCA` and :class:`senca.model.SpaCRD` (scvi-tools model plumbing).

    A subclass builds its module from ``self._module_kwargs`` (set in its ``__init__``), so that training can draw
    fresh weights from a seed (:meth:`_reseed`).
    """

    _module_kwargs: dict
    _data_splitter_cls = NeighborhoodDataSplitter
    _data_loader_cls = NeighborhoodDataLoader
    _training_plan_cls = TrainingPlan

    @classmethod
    def _register_fields(cls, adata, fields: list, setup_method_args: dict, **kwargs) -> None:
        """Register ``fields`` of ``adata`` with this model class (scvi-tools' INFO lines silenced)."""
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        with quiet_scvi():
            manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    def _build_module(self) -> None:
        """A fresh module from ``self._module_kwargs``, on the device of the current one (if any)."""
        current = getattr(self, "module", None)
        device = next(current.parameters()).device if current is not None else None
        self.module = self._module_cls(**self._module_kwargs)
        if device is not None:
            self.module.to(device)

    def _reseed(self, seed: int, rebuild: bool) -> None:
        """Seed every generator (Python, numpy, torch, scvi-tools/Lightning); with ``rebuild``, draw fresh weights.

        A fresh module drawn right after seeding makes the same seed give the same model, whatever ran before.
        """
        set_seed(seed)  # scvi-tools is loaded here, so this seeds Lightning too (quietly)
        if rebuild:
            self._build_module()

    def train(self, *args, **kwargs):
        """One Lightning fit (scvi-tools' ``train``), with the module in training mode.

        scvi-tools leaves the module in eval mode after a fit and Lightning keeps the mode it finds, so without this a
        second fit (SpaCRD's detection stage after its alignment stage, ``warm_start``, a model trained again) would
        run with dropout switched off.
        """
        self.module.train()
        return super().train(*args, **kwargs)

    @contextmanager
    def _quiet_training(self) -> Iterator[None]:
        """Lightning's advice that does not apply here silenced; torch's global determinism flags restored after."""
        with warnings.catch_warnings(), restore_torch_flags(), quiet_scvi():
            for message in TRAINING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield

    @classmethod
    def setup_spatialdata(cls, sdata, table_key: str = "table", *, spatial_key: str = "spatial", **kwargs) -> None:
        """Register the table ``sdata.tables[table_key]`` of a SpatialData object with :meth:`setup_anndata`.

        The table must hold the raw counts and the spot coordinates in ``obsm[spatial_key]``. ``image_key`` names
        either histology features in the table's ``obsm`` (used as they are) or an image element of ``sdata``, from
        which the ``"stats"`` features are computed at each spot's true scale and stored in the table's
        ``obsm["X_histology"]`` (:func:`senca.io._spatialdata.resolve_image_key`). Results the model writes into
        that table (``obsm``/``obs``) are seen by spatialdata-plot.

        Parameters
        ----------
        sdata
            A :class:`spatialdata.SpatialData`.
        table_key
            Name of the table.
        spatial_key
            ``obsm`` key of the spot coordinates in the table.
        **kwargs
            The other arguments of :meth:`setup_anndata` (``layer``, ``image_key``, ``sample_key``...), keys of
            the table (``image_key`` may also be an image element of ``sdata``, see above).

        Returns
        -------
        ``None``.

        Examples
        --------
        >>> import senca
        >>> sdata = senca.io.to_spatialdata(senca.datasets.synthetic(n_spots=200, image=True, seed=0))
        >>> senca.model.SENCA.setup_spatialdata(sdata, layer="counts", image_key="X_histology")
        >>> model = senca.model.SENCA(sdata)
        """
        from senca.io._spatialdata import resolve_image_key

        if kwargs.get("image_key") is not None:
            kwargs["image_key"] = resolve_image_key(sdata, kwargs["image_key"], table_key, spatial_key)
        cls.setup_anndata(spatialdata_table(sdata, table_key, spatial_key), spatial_key=spatial_key, **kwargs)

    def save(self, dir_path: str, overwrite: bool = False, **kwargs) -> None:
        """Save the model (weights, setup and, by default, no AnnData) to ``dir_path``.

        Parameters
        ----------
        dir_path
            Folder to create.
        overwrite
            Replace ``dir_path`` if it exists; without it an existing folder raises.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save` (``prefix``, ``save_anndata``...).

        Returns
        -------
        ``None``.

        Examples
        --------
        >>> model.save("my_model", overwrite=True)  # doctest: +SKIP
        """
        if os.path.exists(dir_path) and not overwrite:
            raise ValueError(
                f"{os.fspath(dir_path)!r} already exists; pass overwrite=True to replace it, or save to another folder."
            )
        super().save(dir_path, overwrite=overwrite, **kwargs)
