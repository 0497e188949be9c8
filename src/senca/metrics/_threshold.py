"""Label-free binarisation of a score: the two-component Gaussian mixture threshold."""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture


def gmm_threshold(score, seed: int = 0) -> float:
    """Threshold between the two components of a 1-D Gaussian mixture fitted to ``score``.

    The threshold is where the weighted densities of the low and the high component cross between
    their means (the paper's rule for SpaCRD). It never looks at labels, so it cannot leak the
    prevalence of the test set. Falls back to the midpoint of the means when the densities do not
    cross between them.

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
    gmm = GaussianMixture(n_components=2, random_state=seed, n_init=3).fit(s[:, None])
    means = gmm.means_.ravel()
    sds = np.sqrt(gmm.covariances_.ravel())
    w = gmm.weights_.ravel()
    lo, hi = np.argsort(means)
    grid = np.linspace(means[lo], means[hi], 2001)

    def dens(k):
        return w[k] / sds[k] * np.exp(-0.5 * ((grid - means[k]) / sds[k]) ** 2)

    diff = dens(lo) - dens(hi)
    cross = np.flatnonzero(np.diff(np.sign(diff)) != 0)
    if cross.size == 0:
        return float((means[lo] + means[hi]) / 2)
    return float(grid[cross[0] + 1])
