"""The one key vocabulary of senca: registry keys, derived-feature keys and module input/output keys.

Every tensor that crosses a layer boundary (AnnData registry -> loader -> module -> model output) is named here and
nowhere else. Registry keys extend scvi-tools' own ``REGISTRY_KEYS`` (same strings for the keys both know), as
scvi-tools' external models do.
"""

from __future__ import annotations

from typing import NamedTuple

from scvi import REGISTRY_KEYS as _SCVI_REGISTRY_KEYS

#: senca's own registry keys, added to scvi-tools' (``X_KEY``, ``BATCH_KEY``, ``LABELS_KEY``, ``INDICES_KEY``...).
_SENCA_REGISTRY_KEYS = {
    "IMAGE_KEY": "image",  # per-spot histology feature vector (obsm)
    "NEIGHBOR_KEY": "neighbors",  # (n_obs, k) neighbour index (obsm), the spot itself in column 0
    "LIBRARY_KEY": "library",  # optional per-spot total counts over all genes (obs)
}

_RegistryKeys = NamedTuple(
    "_RegistryKeys", [(name, str) for name in (*_SCVI_REGISTRY_KEYS._fields, *_SENCA_REGISTRY_KEYS)]
)

REGISTRY_KEYS = _RegistryKeys(*_SCVI_REGISTRY_KEYS, *_SENCA_REGISTRY_KEYS.values())
"""Registry keys of the senca models: scvi-tools' ``REGISTRY_KEYS`` plus ``IMAGE_KEY``, ``NEIGHBOR_KEY`` and
``LIBRARY_KEY``. A minibatch is a dict ``{key: tensor}`` with these keys, plus
``neighbor_key(key)`` for every key whose rows the neighbourhood loader gathers."""


class _FeatureKeys(NamedTuple):
    SPACRD_GENE_KEY: str = "spacrd_x"  # (n_obs, G) log-expression of the model's genes, standardised per section
    SPACRD_IMAGE_KEY: str = "spacrd_h"  # (n_obs, D) histology features standardised per section (0 where missing)
    SPACRD_MASK_KEY: str = "spacrd_hmask"  # (n_obs,) 1.0 where the spot has histology features, else 0.0


FEATURE_KEYS = _FeatureKeys()
"""Keys of the per-spot features a model derives from the registry before training (SpaCRD's standardised genes,
histology and image mask). The neighbourhood loader gathers them like registered arrays, into
``neighbor_key(key)``."""


class _ModuleKeys(NamedTuple):
    X_KEY: str = "x"  # inference input: gene features of the neighbourhood (B, k, G) (SpaCRD)
    H_KEY: str = "h"  # inference input: histology features (B, k, D) (SpaCRD) or tokens (n, r) (SENCA)
    HMASK_KEY: str = "hmask"  # inference input: histology presence mask (B, k)
    NBR_KEY: str = "nbr"  # inference input: neighbour row numbers (B, k) or (n, k)
    EXPRESSION_KEY: str = "expression"  # inference input: expression tokens of one count half (n, E) (SENCA)
    TARGET_KEY: str = "target"  # loss input: expression tokens of the other count half (n, E) (SENCA)
    Z_KEY: str = "z"  # latent / embedding of each spot
    LIBRARY_KEY: str = "library"  # library size the counts are normalised by
    LOGIT_KEY: str = "logit"  # classifier logit (SpaCRD)
    MEMBERS_KEY: str = "members"  # per-member outputs of an ensemble (SpaCRD)
    DELTA_KEY: str = "delta"  # functional contrast (SENCA)
    ATTENTION_KEY: str = "attention"  # neighbourhood attention weights
    RECON_KEY: str = "recon"  # reconstruction (SpaCRD's fused vector)


MODULE_KEYS = _ModuleKeys()
"""Names of the senca modules' inference inputs and their inference / generative outputs."""

NEIGHBOR_SUFFIX = "_nbr"
"""Suffix of the gathered neighbourhood tensors in a minibatch, e.g. ``"X_nbr"`` of shape ``(B, k, G)``."""

DEFAULT_NEIGHBORS_OBSM_KEY = "senca_knn"
"""Default ``adata.obsm`` key where ``SENCA.setup_anndata`` stores the within-sample neighbour index."""


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
