"""``normalize_total(1e4) + log1p`` of raw counts in numpy/scipy, sparse counts kept sparse."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def log_normalise_counts(counts, library: np.ndarray | None = None, dtype=np.float32):
    """``log1p(1e4 * counts / library)``, in ``dtype``; sparse counts are transformed on their stored values only.

    The numpy twin of :func:`senca.module._senca.log_normalise`, for passes over the data outside the network.

    Parameters
    ----------
    counts
        ``(n, g)`` counts, dense or scipy sparse (not modified).
    library
        ``(n,)`` normalising totals, e.g. over all genes when ``counts`` holds some of them; default: the row sums of
        ``counts``. Totals below 1 count as 1.
    dtype
        Arithmetic and output dtype (the scale is computed in float64, then cast).

    Returns
    -------
    A CSR matrix for sparse ``counts`` (the zeros it stores stay stored), else a dense array.

    Examples
    --------
    >>> import numpy as np
    >>> from senca.pp._normalise import log_normalise_counts
    >>> log_normalise_counts(np.array([[1.0, 3.0]]), dtype=np.float64).round(3)
    array([[7.824, 8.923]])
    """
    lib = np.asarray(counts.sum(1), dtype=np.float64).ravel() if library is None else np.asarray(library, np.float64)
    scale = (1e4 / np.maximum(lib, 1.0)).astype(dtype)
    if sp.issparse(counts):
        x = sp.csr_matrix(counts, dtype=dtype, copy=True)
        x.data *= np.repeat(scale, np.diff(x.indptr))
        np.log1p(x.data, out=x.data)
        return x
    return np.log1p(np.asarray(counts, dtype=dtype) * scale[:, None])
