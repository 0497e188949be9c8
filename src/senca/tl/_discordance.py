"""Per-spot discordance between expression and histology, from a SENCA model."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from senca._utils import check_key_free


def discordance(adata: AnnData, model, key_added: str = "senca_discordance", overwrite: bool = False) -> None:
    """Store the model's per-spot discordance score in ``adata.obs[key_added]``.

    The discordance of spot ``i`` is ``|delta_i|``, the distance between its expression (principal components of
    the log-normalised counts) and the mean expression of its neighbours weighted by how alike they look in H&E
    (see :meth:`senca.model.SENCA.get_discordance`): it is large where neighbours are "structurally similar but
    functionally different". The weights are those of the network's first attention layer: an untrained model gives
    the estimator's (a Gaussian kernel on the H&E tokens), and ``model.train()`` changes them only when it fine-tunes
    (``max_epochs``; the number of passes it chooses does not enter). The score itself is computed by
    ``model.get_discordance(adata)``; this function checks and stores it.

    Parameters
    ----------
    adata
        The AnnData to score (set up for ``model``, e.g. the one it was trained on).
    model
        A :class:`senca.model.SENCA` (any object with ``get_discordance(adata)`` returning an ``(n_obs,)``
        array).
    key_added
        Column written in ``adata.obs``.
    overwrite
        Replace an existing ``adata.obs[key_added]``.

    Returns
    -------
    ``None``; writes ``adata.obs[key_added]`` (float, one value per spot, ``>= 0``).

    Examples
    --------
    >>> import senca
    >>> adata = senca.datasets.synthetic(n_spots=300, seed=0)  # doctest: +SKIP
    >>> senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")  # doctest: +SKIP
    >>> model = senca.model.SENCA(adata)  # doctest: +SKIP
    >>> senca.tl.discordance(adata, model)  # doctest: +SKIP
    >>> adata.obs["senca_discordance"].shape  # doctest: +SKIP
    (300,)
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"discordance expects an AnnData, got {type(adata).__name__}.")
    getter = getattr(model, "get_discordance", None)
    if not callable(getter):
        raise TypeError(f"{type(model).__name__} has no get_discordance(adata) method; pass a senca.model.SENCA.")
    check_key_free(adata.obs, key_added, "adata.obs", overwrite)
    score = np.asarray(getter(adata), dtype=np.float64)
    if score.ndim == 2 and score.shape[1] == 1:
        score = score[:, 0]
    if score.shape != (adata.n_obs,):
        raise ValueError(
            f"model.get_discordance(adata) returned shape {score.shape}, expected ({adata.n_obs},): "
            "one value per spot of this AnnData."
        )
    adata.obs[key_added] = score
