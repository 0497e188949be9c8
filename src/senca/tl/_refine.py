"""Spatial smoothing of region labels: neighbourhood majority relabelling."""

from __future__ import annotations

import numpy as np


def majority_refine(codes: np.ndarray, neighbors: np.ndarray) -> np.ndarray:
    """Relabel each spot whose label disagrees with most of its spatial neighbours to their majority label.

    One simultaneous pass (every spot looks at the labels *before* refinement, so the result does not
    depend on the order of spots), as in SpaGCN's refinement: spot ``i`` with neighbours ``N(i)`` (itself
    excluded, ``k = |N(i)|``) takes label ``m`` when fewer than ``k / 2`` of its neighbours share its own
    label and more than ``k / 2`` carry label ``m``.

    Parameters
    ----------
    codes
        ``(n_obs,)`` integer labels in ``0..K-1``.
    neighbors
        ``(n_obs, k)`` row indices of each spot's neighbours, the spot itself *not* included.

    Returns
    -------
    New ``(n_obs,)`` integer labels; ``codes`` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from senca.tl._refine import majority_refine
    >>> codes = np.array([0, 0, 0, 1])
    >>> nbrs = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    >>> majority_refine(codes, nbrs).tolist()
    [0, 0, 0, 0]
    """
    codes = np.asarray(codes, dtype=np.int64)
    neighbors = np.asarray(neighbors, dtype=np.int64)
    n, k = neighbors.shape
    if k == 0:
        return codes.copy()
    n_labels = int(codes.max()) + 1
    counts = np.zeros((n, n_labels), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), k), codes[neighbors].ravel()), 1)
    own = counts[np.arange(n), codes]
    top = counts.argmax(1)
    change = (own < k / 2) & (counts[np.arange(n), top] > k / 2)
    out = codes.copy()
    out[change] = top[change]
    return out
