"""Registry keys shared by the senca models (plain strings: no scvi-tools import here)."""

from __future__ import annotations

from typing import NamedTuple


class _RegistryKeys(NamedTuple):
    X_KEY: str = "X"  # raw counts (same string as scvi.REGISTRY_KEYS.X_KEY)
    IMAGE_KEY: str = "image"  # per-spot histology feature vector (obsm)
    EXPRESSION_KEY: str = "expression"  # optional precomputed expression representation (obsm), e.g. PCA
    NEIGHBOR_KEY: str = "neighbors"  # (n_obs, k) neighbour index (obsm), the spot itself in column 0
    LIBRARY_KEY: str = "library"  # optional per-spot total counts over all genes (obs)
    BATCH_KEY: str = "batch"  # same string as scvi.REGISTRY_KEYS.BATCH_KEY
    LABELS_KEY: str = "labels"  # same string as scvi.REGISTRY_KEYS.LABELS_KEY
    INDICES_KEY: str = "ind_x"  # same string as scvi.REGISTRY_KEYS.INDICES_KEY


#: Registry keys of the senca models. A minibatch is a dict ``{key: tensor}`` with these keys, plus
#: ``neighbor_key(key)`` for every key whose rows the neighbourhood loader gathers.
REGISTRY_KEYS = _RegistryKeys()

#: Suffix of the gathered neighbourhood tensors in a minibatch, e.g. ``"X_nbr"`` of shape ``(B, k, G)``.
NEIGHBOR_SUFFIX = "_nbr"

#: Default ``adata.obsm`` key where ``setup_anndata`` stores the within-sample neighbour index.
DEFAULT_NEIGHBORS_OBSM_KEY = "senca_knn"


def neighbor_key(key: str) -> str:
    """Minibatch key of the gathered neighbourhood rows of registry key ``key``.

    Parameters
    ----------
    key
        A registry key, e.g. ``REGISTRY_KEYS.X_KEY``.

    Returns
    -------
    ``key + NEIGHBOR_SUFFIX``.

    Examples
    --------
    >>> from senca.data import REGISTRY_KEYS, neighbor_key
    >>> neighbor_key(REGISTRY_KEYS.X_KEY)
    'X_nbr'
    """
    return f"{key}{NEIGHBOR_SUFFIX}"
