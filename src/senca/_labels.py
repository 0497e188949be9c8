"""The one rule for "which label is cancer", shared by :meth:`senca.model.SpaCRD.setup_anndata` and ``senca detect``.

Kept free of scvi/lightning/torch imports so that the command line can use it before importing them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["cancer_labels"]

logger = logging.getLogger(__name__)

_TRUE, _FALSE = {"1", "1.0", "true"}, {"0", "0.0", "false"}
_CANCER_WORD = re.compile(r"\b(cancer|cancerous|tumou?rs?|malignant|malignancy|carcinoma)\b")
# next to a cancer word, these mean "not cancer": non-tumour, tumour-free, benign tumour
_NEGATION = re.compile(r"\b(non|not|no|free|without|benign)\b")
# these make a value neither clearly cancer nor clearly not (10x breast "Surrounding tumor", "Tumor_edge_1",
# "Invasive", "IDC_3", "DCIS/LCIS_2"): a column holding one is ambiguous and needs the class named
_UNCLEAR = re.compile(
    r"\b(surrounding|adjacent|edge|border|margin|boundary|peri\w*|near|invasive|in situ|dcis|idc|lcis|ilc|"
    r"neoplas\w*|metasta\w*)\b"
)


def _key(v: Any) -> str:
    return str(v).strip().lower()


def _kind(v: Any) -> str:
    """``"cancer"``, ``"other"`` or ``"unclear"`` for one label value by its words."""
    k = re.sub(r"[_\-/]", " ", _key(v))
    if _CANCER_WORD.search(k):
        if _NEGATION.search(k):
            return "other"
        return "unclear" if re.search(r"\b(surrounding|adjacent|edge|border|margin|boundary|near)\b", k) else "cancer"
    return "unclear" if _UNCLEAR.search(k) else "other"


def cancer_labels(values: pd.Series, positive=None, option: str = "positive_label") -> tuple[np.ndarray, list]:
    """Cancer (1) / non-cancer (0) / missing (NaN) per spot from a label column, and the values taken as cancer.

    The rule, in order:

    1. ``positive`` given: those values are cancer (matched as they are or as text, so ``--positive 1`` matches
       an integer column), every other value is not.
    2. bool, 0/1 (numbers or text) and ``"true"``/``"false"`` (any case): true/1 is cancer.
    3. text values containing the word cancer, tumour/tumor, malignant or carcinoma (any case; ``"non-cancer"``,
       ``"tumour-free"``, ``"benign tumour"`` are not cancer) against anything else: the former are cancer, e.g.
       ``"cancer"``/``"other"``, ``"tumour"``/``"normal"``, ``"invasive cancer"``/``"cancer in situ"``/
       ``"connective tissue"``. The values taken are logged (INFO).

    Anything else raises, asking for ``option``: no value or only values that say cancer (``"A"``/``"B"``), or a
    value that is neither clearly cancer nor clearly not (``"Surrounding tumor"``, ``"Tumor_edge_1"``,
    ``"Invasive"``, ``"IDC_3"``: the 10x breast annotations), where guessing could silently invert a class.

    Parameters
    ----------
    values
        The label column, e.g. ``adata.obs["cancer"]``. Missing values (NaN/None) stay missing.
    positive
        Value, or list of values, that mean cancer; ``None`` applies rules 2 and 3.
    option
        How the caller's user names ``positive`` (``"positive_label"``, ``"--positive"``), for messages.

    Returns
    -------
    ``(y, taken)``: ``float64`` array of 1.0 / 0.0 / NaN (missing), and the sorted list of the values taken as
    cancer (as they appear in ``values``).

    Examples
    --------
    >>> import pandas as pd
    >>> from senca._labels import cancer_labels
    >>> cancer_labels(pd.Series(["cancer", "other", None, "cancer"]))
    (array([ 1.,  0., nan,  1.]), ['cancer'])
    >>> cancer_labels(pd.Series(["A", "B"]))
    Traceback (most recent call last):
    ...
    ValueError: Cannot tell which label is the cancer class among ['A', 'B']. Name it with positive_label (one value or a list, e.g. ['invasive cancer', 'cancer in situ']), or give a bool / 0-1 column, or values that say cancer / tumour / malignant against anything else.
    """  # noqa: E501
    values = pd.Series(values)
    missing = values.isna().to_numpy()
    uniq = list(pd.unique(values[~missing]))
    if positive is not None:
        pos = [positive] if np.isscalar(positive) else list(positive)
        pos_text = {str(p) for p in pos}
        taken = [v for v in uniq if v in pos or str(v) in pos_text]
        if not taken:
            raise ValueError(
                f"{option} {pos!r} matches no value of the label column (values: {sorted(map(str, uniq))[:10]})."
            )
    else:
        keys = {_key(v) for v in uniq}
        if keys and keys <= _TRUE | _FALSE:
            taken = [v for v in uniq if _key(v) in _TRUE]
        else:
            kinds = {v: _kind(v) for v in uniq}
            taken = [v for v in uniq if kinds[v] == "cancer"]
            unclear = sorted(str(v) for v, k in kinds.items() if k == "unclear")
            if not taken or len(taken) == len(uniq) or unclear:
                why = f" ({unclear[:5]} neither clearly cancer nor clearly not)" if unclear else ""
                raise ValueError(
                    f"Cannot tell which label is the cancer class among {sorted(map(str, uniq))[:10]}{why}. Name "
                    f"it with {option} (one value or a list, e.g. ['invasive cancer', 'cancer in situ']), or give a "
                    "bool / 0-1 column, or values that say cancer / tumour / malignant against anything else."
                )
            logger.info(
                "Cancer labels: %s taken as cancer, %s as non-cancer (pass %s to choose otherwise).",
                sorted(map(str, taken)),
                sorted(str(v) for v in uniq if v not in taken),
                option,
            )
    y = values.isin(taken).to_numpy().astype(np.float64)
    y[missing] = np.nan
    return y, sorted(taken, key=str)
