"""Assign the spots of new sections to the regions of a reference whose regions were called by ``tl.regions``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from senca._utils import get_rep, sample_groups

from ._refine import majority_refine
from ._regions import check_outputs_free


def _caller_of(reference: AnnData | Mapping, key: str) -> tuple[dict, dict, list[str]]:
    """``(caller, params, categories)`` stored by :func:`senca.tl.regions` under ``key``."""
    if isinstance(reference, AnnData):
        if key not in reference.uns or key not in reference.obs:
            raise KeyError(
                f"The reference has no regions under {key!r} (adata.uns/obs); call senca.tl.regions(reference, "
                f"key_added={key!r}) first, or pass reference_key=."
            )
        store = reference.uns[key]
        categories = [str(c) for c in reference.obs[key].cat.categories]
    else:
        store = reference
        categories = None
    if "caller" not in store or "params" not in store:
        raise KeyError(
            f"The regions under {key!r} carry no fitted caller (written by senca.tl.regions since this version); "
            "call senca.tl.regions on the reference again."
        )
    caller = {k: np.asarray(v) for k, v in store["caller"].items()}
    params = dict(store["params"])
    if categories is None:
        categories = [str(i) for i in range(int(params["n_regions"]))]
    return caller, params, categories


def _log_posterior(pcs: np.ndarray, caller: dict) -> np.ndarray:
    """``(n, K)`` log posterior of each mixture component (Gaussian with its own covariance and weight)."""
    means = caller["means"]
    if "covariances" not in caller:  # k-means / Leiden: nearest centre, isotropic unit variance
        d2 = ((pcs[:, None, :] - means[None]) ** 2).sum(-1)
        return -0.5 * d2
    out = np.empty((pcs.shape[0], means.shape[0]))
    for k, (mu, cov) in enumerate(zip(means, caller["covariances"])):
        chol = np.linalg.cholesky(cov + 1e-9 * np.eye(len(mu)))
        sol = np.linalg.solve(chol, (pcs - mu).T)
        out[:, k] = -0.5 * (sol**2).sum(0) - np.log(np.diag(chol)).sum() + np.log(max(caller["weights"][k], 1e-300))
    return out


def assign_regions(
    adata: AnnData,
    reference: AnnData | Mapping[str, Any],
    use_rep: str | None = None,
    reference_key: str = "senca_region",
    key_added: str | None = None,
    refine: bool | None = None,
    spatial_key: str | None = None,
    sample_key: str | None = None,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Give the spots of new sections the regions called on a reference, without calling regions again.

    :func:`senca.tl.regions` stores its fitted caller (the embedding's centre and principal axes, and the fitted
    mixture). This function projects ``adata.obsm[use_rep]`` the same way and assigns every spot to the region
    of its most probable mixture component (k-means or Leiden regions: the nearest region centre), then applies
    the reference's spatial refinement. Region ``"2"`` of the new section is region ``"2"`` of the reference. The
    embedding must come from the same model as the reference's, e.g. ``model.get_latent_representation(new)``
    of the model trained on the reference.

    Parameters
    ----------
    adata
        New spots with the embedding in ``adata.obsm[use_rep]`` and, for refinement, coordinates.
    reference
        The AnnData on which :func:`senca.tl.regions` ran (or its ``uns[reference_key]`` dictionary).
    use_rep
        Embedding key; default: the one the reference's regions were called on.
    reference_key
        ``key_added`` of the reference's regions.
    key_added
        Column written in ``adata.obs``; default: ``reference_key``.
    refine
        Neighbourhood-majority refinement; default: as the reference.
    spatial_key
        Coordinates for refinement; default: as the reference.
    sample_key
        ``adata.obs`` column of the sections of ``adata`` (refinement stays within sections).
    overwrite
        Replace existing ``adata.obs[key_added]``, ``adata.obs[f"{key_added}_confidence"]`` and
        ``adata.uns[key_added]``.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes ``adata.obs[key_added]`` (categorical, with the
    reference's categories, also those no spot of ``adata`` falls in), ``adata.obs[f"{key_added}_confidence"]``
    (posterior of the assigned region; 1 for k-means / Leiden) and ``adata.uns[key_added]`` (the reference's
    parameters and caller, with ``"assigned": True``).

    Examples
    --------
    >>> import senca
    >>> ref = senca.datasets.synthetic(n_spots=400, n_regions=3, seed=0)
    >>> new = senca.datasets.synthetic(n_spots=300, n_regions=3, seed=1)
    >>> senca.model.SENCA.setup_anndata(ref, layer="counts")  # doctest: +SKIP
    >>> model = senca.model.SENCA(ref)  # doctest: +SKIP
    >>> ref.obsm["X_senca"] = model.get_latent_representation()  # doctest: +SKIP
    >>> senca.tl.regions(ref, n_regions=3)  # doctest: +SKIP
    >>> new.obsm["X_senca"] = model.get_latent_representation(new)  # doctest: +SKIP
    >>> senca.tl.assign_regions(new, ref)  # doctest: +SKIP
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"assign_regions expects an AnnData, got {type(adata).__name__}.")
    caller, params, categories = _caller_of(reference, reference_key)
    use_rep = params.get("use_rep", "X_senca") if use_rep is None else use_rep
    key_added = reference_key if key_added is None else key_added
    refine = bool(params.get("refine", False)) if refine is None else bool(refine)
    spatial_key = params.get("spatial_key", "spatial") if spatial_key is None else spatial_key
    x = get_rep(adata, use_rep)
    centre, axes = caller["centre"], caller["axes"]
    if x.ndim != 2 or x.shape[1] != centre.shape[0]:
        raise ValueError(
            f"adata.obsm[{use_rep!r}] has shape {x.shape}, but the reference's regions were called on a "
            f"{centre.shape[0]}-dimensional embedding; embed the new spots with the reference's model."
        )
    if refine and spatial_key not in adata.obsm:
        raise KeyError(f"adata.obsm[{spatial_key!r}] not found: refinement needs coordinates; pass refine=False.")
    groups = sample_groups(adata, sample_key)
    conf_key = check_outputs_free(adata, key_added, overwrite)

    pcs = (x - centre) @ axes
    logp = _log_posterior(pcs, caller)
    region_of = caller["region_of_component"].astype(np.int64)
    logp[:, region_of < 0] = -np.inf  # components emptied by the reference's refinement carry no region
    logp -= logp.max(1, keepdims=True)
    post = np.exp(logp)
    post /= post.sum(1, keepdims=True)
    n_regions = len(categories)
    region_post = np.zeros((x.shape[0], n_regions))
    for comp, reg in enumerate(region_of):
        if reg >= 0:
            region_post[:, reg] += post[:, comp]
    codes = region_post.argmax(1).astype(np.int64)
    if refine and x.shape[0] > 1:
        from senca.pp import knn_index

        k = min(int(params.get("n_neighbors", 6)) + 1, x.shape[0])
        if groups is not None:
            k = min(k, int(pd.Series(groups).value_counts().min()))
        if k > 1:
            nbrs = knn_index(np.asarray(adata.obsm[spatial_key], dtype=np.float64), k, groups)[:, 1:]
            codes = majority_refine(codes, nbrs)
    conf = region_post[np.arange(len(codes)), codes] if "covariances" in caller else np.ones(len(codes))

    if copy:
        adata = adata.copy()
    adata.obs[key_added] = pd.Categorical.from_codes(codes, categories=categories)
    adata.obs[conf_key] = np.clip(conf, 0.0, 1.0).astype(np.float64)
    if f"{key_added}_colors" in adata.uns:
        del adata.uns[f"{key_added}_colors"]
    params.update(assigned=True, refine=refine, sample_key="" if sample_key is None else sample_key)
    adata.uns[key_added] = {"params": params, "caller": caller}
    if isinstance(reference, AnnData) and f"{reference_key}_colors" in reference.uns:
        adata.uns[f"{key_added}_colors"] = list(reference.uns[f"{reference_key}_colors"])
    return adata if copy else None
