"""Combine sections into one AnnData on their shared genes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
from anndata import AnnData


def concat_sections(
    adatas: Sequence[AnnData] | Mapping[str, AnnData],
    section_key: str = "section",
    min_shared_genes: int = 100,
) -> AnnData:
    """Concatenate sections on the intersection of their genes, keeping raw counts.

    Parameters
    ----------
    adatas
        A list of AnnData (section names taken from ``obs[section_key]`` when present, else ``"0"``,
        ``"1"``...) or a mapping ``{section_name: AnnData}``.
    section_key
        Column of ``obs`` that names the section of each spot in the result.
    min_shared_genes
        Raise if fewer genes are shared by all sections.

    Returns
    -------
    A new AnnData: ``X`` and every layer present in all inputs, restricted to shared genes (in the
    order of the first section); ``obs[section_key]`` categorical; obs names made unique as
    ``{section}_{spot}``; ``obsm`` keys present in all inputs; ``uns["spatial"]`` merged (one entry per
    library). Inputs are not modified.

    Examples
    --------
    >>> import senca
    >>> a = senca.datasets.synthetic(n_spots=100, seed=0)
    >>> b = senca.datasets.synthetic(n_spots=120, seed=1)
    >>> both = senca.pp.concat_sections({"a": a, "b": b})
    >>> both.obs["section"].value_counts().to_dict()
    {'b': 120, 'a': 100}
    """
    if isinstance(adatas, Mapping):
        names = [str(k) for k in adatas]
        items = list(adatas.values())
    else:
        items = list(adatas)
        names = []
        for i, a in enumerate(items):
            vals = a.obs[section_key].astype(str).unique() if section_key in a.obs else []
            names.append(str(vals[0]) if len(vals) == 1 else str(i))
    if len(items) == 0:
        raise ValueError("concat_sections needs at least one AnnData.")
    if len(set(names)) != len(names):
        raise ValueError(f"Section names must be unique, got {names}; pass a dict {{name: adata}}.")
    for name, a in zip(names, items):
        if not a.var_names.is_unique:
            raise ValueError(f"Section {name!r} has duplicated gene names; call adata.var_names_make_unique().")
    shared = items[0].var_names
    for a in items[1:]:
        shared = shared.intersection(a.var_names, sort=False)
    if len(shared) < min_shared_genes:
        raise ValueError(
            f"Only {len(shared)} genes are shared by all sections (< min_shared_genes={min_shared_genes}). "
            "Check that all sections use the same gene identifiers (symbols vs Ensembl ids)."
        )
    parts = []
    for name, a in zip(names, items):
        part = a[:, shared].copy()
        part.obs[section_key] = name
        part.obs_names = [f"{name}_{o}" for o in a.obs_names]
        parts.append(part)
    out = ad.concat(parts, join="inner", merge="same", uns_merge="unique")
    spatial = {}
    for a in items:
        spatial.update(a.uns.get("spatial", {}))
    if spatial:
        out.uns["spatial"] = spatial
    out.obs[section_key] = out.obs[section_key].astype("category").cat.reorder_categories(names)
    for col in out.obs.columns:
        if out.obs[col].dtype == object:
            out.obs[col] = out.obs[col].astype(str).astype("category")
    assert np.all(out.var_names == shared)
    return out
