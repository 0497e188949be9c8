"""Spatial smoothing of region labels: neighbourhood majority relabelling."""

from __future__ import annotations

import numpy as np


def majority_refine(codes: np.ndarray, neighbors: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Relabel each spot whose label disagrees with most of its spatial neighbours to their majority label.

    Each pass is simultaneous (every spot looks at the labels of the previous pass, so the result does
    not depend on the order of spots), with SpaGCN's rule: spot ``i`` with neighbours ``N(i)`` (itself
    excluded, ``k = |N(i)|``) takes label ``m`` when fewer than ``k / 2`` of its neighbours share its own
    label and more than ``k / 2`` carry label ``m``. Passes repeat until no label changes (at most
    ``max_iter``), so that a spot whose neighbours were themselves relabelled is handled too.

    Parameters
    ----------
    codes
        ``(n_obs,)`` integer labels in ``0..K-1``.
    neighbors
        ``(n_obs, k)`` row indices of each spot's neighbours, the spot itself *not* included.
    max_iter
        Maximum number of passes (1 = SpaGCN's single pass).

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
    rows = np.repeat(np.arange(n), k)
    out = codes.copy()
    for _ in range(max(1, int(max_iter))):
        counts = np.zeros((n, n_labels), dtype=np.int64)
        np.add.at(counts, (rows, out[neighbors].ravel()), 1)
        own = counts[np.arange(n), out]
        top = counts.argmax(1)
        change = (own < k / 2) & (counts[np.arange(n), top] > k / 2)
        if not change.any():
            break
        out[change] = top[change]
    return out
