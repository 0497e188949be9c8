"""Agreement between called regions and reference labels: ARI, NMI, homogeneity, completeness."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _as_series(values, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, pd.Index | pd.Categorical | np.ndarray | list | tuple):
        arr = values if isinstance(values, pd.Categorical) else np.asarray(values, dtype=object)
        if getattr(arr, "ndim", 1) != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(values)}.")
        return pd.Series(arr)
    raise TypeError(f"{name} must be a pandas Series, array or list of labels, got {type(values).__name__}.")


def region_scores(truth, pred, drop: Sequence[str] = ("undetermined",)) -> dict[str, float]:
    """Agreement between reference region labels and called regions.

    Spots whose reference or called label is missing (``None``/``NaN``) and spots whose reference label
    is in ``drop`` are left out, as most her2st evaluations leave out "undetermined".

    Parameters
    ----------
    truth
        Reference labels, one per spot (e.g. ``adata.obs["pathologist"]``).
    pred
        Called labels (e.g. ``adata.obs["senca_region"]``). When both are pandas Series their indices
        must hold the same spots (``pred`` is aligned to ``truth``); otherwise they are matched by position.
    drop
        Reference labels to leave out (compared as strings).

    Returns
    -------
    ``{"ari", "nmi", "homogeneity", "completeness", "n"}``: adjusted Rand index, normalised mutual
    information (arithmetic mean, as scikit-learn), homogeneity and completeness, and the number of spots
    used.

    Examples
    --------
    >>> from senca.metrics import region_scores
    >>> s = region_scores(["a", "a", "b", "b", "undetermined"], [0, 0, 1, 1, 0])
    >>> s["ari"], s["n"]
    (1.0, 4)
    """
    from sklearn import metrics as skm

    t = _as_series(truth, "truth")
    p = _as_series(pred, "pred")
    if len(t) != len(p):
        raise ValueError(f"truth has {len(t)} labels but pred has {len(p)}; pass one label per spot in both.")
    if isinstance(truth, pd.Series) and isinstance(pred, pd.Series) and not t.index.equals(p.index):
        if not (t.index.is_unique and p.index.is_unique and set(t.index) == set(p.index)):
            raise ValueError(
                "truth and pred are Series with different indices; pass .to_numpy() to match them by position."
            )
        p = p.reindex(t.index)
    t = t.reset_index(drop=True)
    p = p.reset_index(drop=True)
    if isinstance(drop, str):
        drop = (drop,)
    keep = t.notna().to_numpy() & p.notna().to_numpy()
    keep &= ~t.astype(str).isin([str(d) for d in drop]).to_numpy()
    n = int(keep.sum())
    if n == 0:
        raise ValueError("No spot left after dropping missing and dropped labels; check truth, pred and drop.")
    tv = t[keep].astype(str).to_numpy()
    pv = p[keep].astype(str).to_numpy()
    return {
        "ari": float(skm.adjusted_rand_score(tv, pv)),
        "nmi": float(skm.normalized_mutual_info_score(tv, pv)),
        "homogeneity": float(skm.homogeneity_score(tv, pv)),
        "completeness": float(skm.completeness_score(tv, pv)),
        "n": n,
    }
