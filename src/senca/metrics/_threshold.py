"""Label-free binarisation of a score: the two-component Gaussian mixture threshold."""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture


def gmm_threshold(score, seed: int = 0) -> float:
    """Threshold between the two components of a 1-D Gaussian mixture fitted to ``score``.

    The threshold is where the weighted densities of the low and the high component cross (the paper's rule for
    SpaCRD). The two components share one variance (mclust's "E" model), so they cross exactly once, between the
    means: with a variance each, a narrow component (e.g. a spike of confidently negative spots) crosses a broad
    one close to its own mean and calls most of the broad component positive. It never looks at labels, so it
    cannot leak the prevalence of the test set.

    Parameters
    ----------
    score
        1-D array of scores (NaN not allowed).
    seed
        Seed of the mixture's initialisation.

    Returns
    -------
    The threshold; spots with ``score >= threshold`` are called positive.

    Examples
    --------
    >>> import numpy as np
    >>> from senca.metrics import gmm_threshold
    >>> rng = np.random.default_rng(0)
    >>> s = np.r_[rng.normal(0.2, 0.05, 500), rng.normal(0.8, 0.05, 500)]
    >>> 0.4 < gmm_threshold(s) < 0.6
    True
    """
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.size < 4:
        raise ValueError(f"gmm_threshold needs at least 4 scores, got {s.size}.")
    if not np.isfinite(s).all():
        raise ValueError("Scores contain NaN or infinite values.")
    if np.ptp(s) == 0:
        return float(s[0])
    gmm = GaussianMixture(n_components=2, covariance_type="tied", random_state=seed, n_init=3).fit(s[:, None])
    means = gmm.means_.ravel()
    var = float(np.ravel(gmm.covariances_)[0])
    w = gmm.weights_.ravel()
    lo, hi = np.argsort(means)
    if means[hi] - means[lo] <= 1e-12:
        return float(means[lo])
    # equal variances: w_lo N(t; m_lo, v) = w_hi N(t; m_hi, v) has the single solution below
    t = (means[lo] + means[hi]) / 2 + var * np.log(w[lo] / w[hi]) / (means[hi] - means[lo])
    return float(np.clip(t, s.min(), s.max()))
