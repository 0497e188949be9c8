"""senca's use of scvi-tools' private API (``senca/_scvi_private.py``), checked against the installed scvi-tools.

The suite runs on scvi-tools 1.4.x (Python 3.11, ``.ci/run``) and 1.5.x (Python 3.12+, ``.ci/compat``): a release that
moves one of these names or changes what it gives fails here, by name, before the models that use it fail elsewhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scvi
import torch
from scvi.dataloaders import AnnDataLoader

import senca
from senca import _scvi_private as private
from senca.data import REGISTRY_KEYS
from senca.model import SENCA

SMALL = {"n_latent": 8}


def _data(seed: int):
    adata = senca.datasets.synthetic(n_spots=120, n_genes=60, n_histology=8, seed=seed)
    adata.obs["sample"] = np.where(adata.obsm["spatial"][:, 0] < np.median(adata.obsm["spatial"][:, 0]), "a", "b")
    return adata


@pytest.fixture(scope="module")
def model():
    adata = _data(0)
    SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", sample_key="sample")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return SENCA(adata, **SMALL)


def test_default_dtype_is_what_scvi_tools_loaders_give(model):
    """senca's neighbourhood loader asks for the dtypes scvi-tools' own loader gives each registered key."""
    batch = next(iter(AnnDataLoader(model.adata_manager, batch_size=32)))
    assert batch, "scvi-tools' loader gave an empty batch"
    for key, tensor in batch.items():
        assert tensor.dtype == torch.from_numpy(np.zeros(1, dtype=private.default_dtype(key))).dtype, key
    assert private.default_dtype(REGISTRY_KEYS.BATCH_KEY) is np.int64
    assert private.default_dtype(REGISTRY_KEYS.X_KEY) is np.float32


def test_instance_manager_and_forget_manager(model):
    adata, other = model.adata, _data(1)
    assert private.instance_manager(model, adata) is model.adata_manager
    assert private.instance_manager(model, other) is None
    model.get_latent_representation(other)  # sets a stand-in of `other` up and forgets it again
    assert private.instance_manager(model, other) is None
    model._validate_anndata(other)  # `other` itself, set up for the model
    manager = private.instance_manager(model, other)
    assert manager is not None
    assert manager.adata is other
    assert manager is not model.adata_manager
    private.forget_manager(model, other)
    assert private.instance_manager(model, other) is None
    assert SENCA._get_most_recent_anndata_manager(other) is None  # the class's store forgot it too
    assert private.instance_manager(model, adata) is model.adata_manager  # the training data's is kept


def test_check_view(model):
    view = model.adata[:40]
    assert view.is_view
    with pytest.raises(ValueError, match="copy"):
        private.check_view(view, copy_if_view=False)
    expected = view.layers["counts"].copy()
    private.check_view(view, copy_if_view=True)
    assert not view.is_view
    np.testing.assert_array_equal(_dense(view.layers["counts"]), _dense(expected))


def test_registered_var_names_of_a_model_and_of_a_saved_one(model, tmp_path):
    np.testing.assert_array_equal(
        private.registered_var_names(model.registry_, REGISTRY_KEYS.X_KEY), model.adata.var_names
    )
    model.save(tmp_path / "model", overwrite=True)
    registry = SENCA.load_registry(tmp_path / "model")  # no data needed
    np.testing.assert_array_equal(private.registered_var_names(registry, REGISTRY_KEYS.X_KEY), model.adata.var_names)


def test_training_plan_metrics_body_is_reachable():
    """scvi-tools logs a minibatch's metrics under ``torch.inference_mode`` (1.4, 1.5); senca's plan runs the body under
    ``no_grad`` instead (DDP needs it: tests/test_ddp.py). A release without the decorator makes ``undecorated`` give
    ``None`` and senca's plan falls back to scvi-tools' method: this test then says the shim can go."""
    method = scvi.train.TrainingPlan.compute_and_log_metrics
    body = private.undecorated(method)
    assert body is not None, f"scvi-tools {scvi.__version__} no longer decorates compute_and_log_metrics"
    assert body is not method
    assert body.__name__ == "compute_and_log_metrics"


def _dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)
