"""Cancer-detection metrics: AUC, AP, F1 at the label-free GMM threshold, KS distance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._threshold import gmm_threshold


def _binary_labels(y_true) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as bool, mask of labelled spots); missing labels are masked out."""
    y = pd.Series(np.asarray(y_true, dtype=object).ravel() if not isinstance(y_true, pd.Series) else y_true)
    known = y.notna().to_numpy()
    vals = y[known]
    if vals.map(lambda v: isinstance(v, bool | np.bool_)).all():
        out = vals.astype(bool).to_numpy()
    else:
        num = pd.to_numeric(vals, errors="coerce")
        if num.isna().any() or not num.isin([0, 1]).all():
            bad = sorted({str(v) for v in vals[num.isna() | ~num.isin([0, 1])]})[:5]
            raise ValueError(
                f"y_true must be boolean or 0/1 (missing allowed); found {bad}. "
                "Binarise first, e.g. y_true = adata.obs['pathologist'].isin(['invasive cancer', 'cancer in situ'])."
            )
        out = num.to_numpy().astype(bool)
    full = np.zeros(len(y), dtype=bool)
    full[known] = out
    return full, known


def detection_scores(y_true, score, threshold: float | None = None, seed: int = 0, call=None) -> dict[str, float]:
    """Score a continuous cancer score against binary labels.

    Parameters
    ----------
    y_true
        Boolean or 0/1 labels (``True`` = cancer), one per spot. Missing labels (``None``/``NaN``) are left out.
    score
        Continuous score, higher = more likely cancer (e.g. ``adata.obs["spacrd_score"]``).
    threshold
        Threshold of the binary call used by F1 (``score >= threshold``). ``None``: the label-free
        two-component GMM threshold :func:`senca.metrics.gmm_threshold` of the scores (the SpaCRD
        paper's rule; it never looks at the labels).
    seed
        Seed of the GMM threshold.
    call
        A binary call to score instead (boolean, one per spot; e.g. ``adata.obs["spacrd_cancer"]``, the call of
        :meth:`senca.model.SpaCRD.predict`). F1 is then the F1 of this call, and ``threshold`` is the lowest score
        called positive (NaN if none).

    Returns
    -------
    ``{"auc", "ap", "f1", "threshold", "ks", "n", "n_pos"}``: ROC AUC, average precision, F1 of the
    binary call, the threshold used, the two-sample Kolmogorov-Smirnov distance between the scores of
    positive and negative spots (``scipy.stats.ks_2samp``), the number of spots used and of positives.

    Examples
    --------
    >>> import numpy as np
    >>> from senca.metrics import detection_scores
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(200, bool), np.ones(200, bool)]
    >>> s = np.r_[rng.normal(0.3, 0.1, 200), rng.normal(0.7, 0.1, 200)]
    >>> d = detection_scores(y, s)
    >>> d["auc"] > 0.95, d["f1"] > 0.9
    (True, True)
    """
    from scipy.stats import ks_2samp
    from sklearn import metrics as skm

    s = np.asarray(score, dtype=np.float64).ravel()
    y, known = _binary_labels(y_true)
    if len(y) != len(s):
        raise ValueError(f"y_true has {len(y)} labels but score has {len(s)} values; pass one of each per spot.")
    if not np.isfinite(s[known]).all():
        raise ValueError("score contains NaN or infinite values; remove those spots first.")
    y, s = y[known], s[known]
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(
            f"y_true has a single class ({'all positive' if n_pos else 'all negative'} over {len(y)} spots): "
            "AUC, AP and KS need both cancer and non-cancer spots."
        )
    if call is not None:
        c = np.asarray(call, dtype=bool).ravel()
        if len(c) != len(known):
            raise ValueError(f"call has {len(c)} values but y_true has {len(known)}; pass one of each per spot.")
        call = c[known]
        thr = float(s[call].min()) if call.any() else float("nan")
    else:
        thr = gmm_threshold(s, seed=seed) if threshold is None else float(threshold)
        call = s >= thr
    return {
        "auc": float(skm.roc_auc_score(y, s)),
        "ap": float(skm.average_precision_score(y, s)),
        "f1": float(skm.f1_score(y, call, zero_division=0.0)),
        "threshold": float(thr),
        "ks": float(ks_2samp(s[y], s[~y]).statistic),
        "n": int(len(y)),
        "n_pos": n_pos,
    }
