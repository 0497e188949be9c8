"""Every use of scvi-tools' private API in senca, in one place.

scvi-tools (1.4.x and 1.5.x, pinned in ``pyproject.toml``) has no public way to do these few things; when an upgrade
breaks one, this file is the only one to change. ``tests/test_scvi_private.py`` checks each against the installed
scvi-tools: 1.4.x on Python 3.11 (CI, ``.ci/run``) and 1.5.x on Python 3.12 (``.ci/compat``). Everything else in
senca uses scvi-tools' public API (and the documented extension points of ``BaseModelClass``:
``_get_most_recent_anndata_manager``, ``_register_manager_for_instance``, ``_validate_anndata``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def default_dtype(registry_key: str) -> type:
    """The dtype scvi-tools' loaders give a registry key (int64 for labels and batches, float32 otherwise)."""
    from scvi.data._utils import registry_key_to_default_dtype

    return registry_key_to_default_dtype(registry_key)


def instance_manager(model, adata):
    """The AnnData manager ``model`` registered for ``adata`` (``None`` when ``adata`` is not set up for it)."""
    from scvi.data._constants import _SCVI_UUID_KEY

    store = type(model)._per_instance_manager_store.get(model.id, {})
    manager = store.get(adata.uns.get(_SCVI_UUID_KEY))
    return manager if manager is not None and manager.adata is adata else None


def forget_manager(model, adata) -> None:
    """Drop the managers ``model`` and its class keep for ``adata`` (a temporary AnnData no longer needed)."""
    from scvi.data._constants import _SCVI_UUID_KEY

    uuid = adata.uns.get(_SCVI_UUID_KEY)
    type(model)._per_instance_manager_store.get(model.id, {}).pop(uuid, None)
    type(model)._setup_adata_manager_store.pop(uuid, None)


def check_view(adata, copy_if_view: bool) -> None:
    """scvi-tools' check of AnnData views (a view is made an actual AnnData in place, or refused)."""
    from scvi.data._utils import _check_if_view

    _check_if_view(adata, copy_if_view=copy_if_view)


def registered_var_names(registry: dict, x_key: str) -> np.ndarray:
    """The gene names a model was set up with, read from its registry (works for a model loaded without data)."""
    return np.asarray(registry["field_registries"][x_key]["state_registry"]["column_names"])


def undecorated(method: Callable) -> Callable | None:
    """The function under a decorator (``__wrapped__``), or ``None`` where scvi-tools no longer decorates it."""
    return getattr(method, "__wrapped__", None)
