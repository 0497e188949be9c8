"""Training curves from a model's history (scvi-tools layout: a dict of one-column DataFrames)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

_PREFIX = re.compile(r"^(train|validation)_")
_SUFFIX = re.compile(r"_(train|validation|epoch|step)$")


def _base_name(key: str) -> str:
    base = key
    for _ in range(2):
        base = _SUFFIX.sub("", _PREFIX.sub("", base))
    return base


def _as_series(value, key: str) -> pd.Series:
    if isinstance(value, pd.DataFrame):
        if value.shape[1] == 0:
            return pd.Series(dtype=float)
        col = key if key in value.columns else value.columns[0]
        return pd.to_numeric(value[col], errors="coerce")
    if isinstance(value, pd.Series):
        return pd.to_numeric(value, errors="coerce")
    arr = np.asarray(value, dtype=np.float64).ravel()
    return pd.Series(arr)


def history(
    model_or_history,
    keys: Sequence[str] | None = None,
    ncols: int = 3,
    logy: bool = False,
    figsize: tuple[float, float] | None = None,
    save: str | Path | None = None,
    show: bool = False,
):
    """Plot training curves, one panel per quantity, training and validation together.

    Keys are grouped by the quantity they measure (``"train_loss_epoch"`` and ``"validation_loss"`` in
    one panel ``"loss"``; ``"elbo_train"`` and ``"elbo_validation"`` in ``"elbo"``).

    Parameters
    ----------
    model_or_history
        A trained scvi-tools / senca model (its ``.history``) or such a history: a mapping from key to
        a one-column ``DataFrame`` indexed by epoch (scvi-tools' layout), a ``Series`` or an array.
    keys
        Keys to draw; ``None`` draws every key with at least one finite value except per-step ones
        (``*_step``), which are noisy.
    ncols
        Panels per row.
    logy
        Logarithmic y axes.
    figsize
        Figure size in inches; default grows with the number of panels.
    save
        Path to write the figure to.
    show
        Call ``matplotlib.pyplot.show()``.

    Returns
    -------
    The matplotlib Figure, one axes per panel.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd, senca
    >>> e = pd.Index(np.arange(10), name="epoch")
    >>> hist = {
    ...     "train_loss_epoch": pd.DataFrame({"train_loss_epoch": np.linspace(2, 1, 10)}, index=e),
    ...     "validation_loss": pd.DataFrame({"validation_loss": np.linspace(2.2, 1.3, 10)}, index=e),
    ...     "elbo_train": pd.DataFrame({"elbo_train": np.linspace(9, 5, 10)}, index=e),
    ... }
    >>> fig = senca.pl.history(hist)
    >>> len(fig.axes)
    2
    """
    import matplotlib.pyplot as plt

    hist = model_or_history
    if not isinstance(hist, Mapping):
        if not hasattr(hist, "history"):
            raise TypeError(f"Expected a model with .history or a dict of training curves, got {type(hist).__name__}.")
        hist = hist.history
        if hist is None or not isinstance(hist, Mapping):
            raise ValueError(
                "The model has no training history: train it first (model.train()); SENCA records loss curves only "
                "when it fine-tunes (model.train(max_epochs=N))."
            )
    if len(hist) == 0:
        raise ValueError("The history is empty; train the model first.")
    if keys is None:
        keys = [k for k in hist if not str(k).endswith("_step")]
    else:
        keys = list(keys)
        missing = [k for k in keys if k not in hist]
        if missing:
            raise KeyError(f"Keys {missing} not in the history (available: {sorted(map(str, hist))}).")
    series = {k: _as_series(hist[k], k) for k in keys}
    series = {k: s for k, s in series.items() if np.isfinite(s.to_numpy(dtype=float)).any()}
    if not series:
        raise ValueError(f"No finite values to plot for keys {list(keys)}.")
    groups: dict[str, list[str]] = {}
    for k in series:
        groups.setdefault(_base_name(str(k)), []).append(k)

    n = len(groups)
    ncols = max(1, min(int(ncols), n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (3.6 * ncols, 2.8 * nrows), squeeze=False)
    flat = axes.ravel()
    for ax, (base, members) in zip(flat, groups.items()):
        for k in sorted(members, key=lambda m: (0 if "train" in m else 1 if "validation" in m else 2, m)):
            s = series[k]
            ax.plot(s.index.to_numpy(), s.to_numpy(dtype=float), marker="." if len(s) < 30 else None, label=str(k))
        ax.set_title(base)
        ax.set_xlabel("epoch")
        if logy:
            ax.set_yscale("log")
        if len(members) > 1:
            ax.legend(fontsize="small")
    for ax in flat[n:]:
        fig.delaxes(ax)
    fig.tight_layout()
    from ._utils import finish

    return finish(fig, save, show)
