"""How label columns are read, shared by :meth:`senca.model.SpaCRD.setup_anndata` and ``senca detect``.

The one rule for "which label is cancer" (binary), which spots carry no label, and the class vocabulary of a
multi-class column. Kept free of scvi/lightning/torch imports so that the command line can use it before importing
them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["cancer_labels", "class_codes", "label_classes", "unlabeled_mask"]

#: label values that mark a spot without a label by default (besides NaN), compared case-insensitively
UNLABELED = "undetermined"

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


def unlabeled_mask(values: pd.Series, unlabeled_category=UNLABELED) -> np.ndarray:
    """Whether each spot carries no label: a missing value, or one of ``unlabeled_category`` (any case).

    Parameters
    ----------
    values
        The label column.
    unlabeled_category
        Value or list of values meaning "no label"; ``None``: only missing values.

    Returns
    -------
    Boolean array, ``True`` where the spot has no label.

    Examples
    --------
    >>> import pandas as pd
    >>> from senca._labels import unlabeled_mask
    >>> unlabeled_mask(pd.Series(["tumour", "Undetermined", None, "stroma"]))
    array([False,  True,  True, False])
    """
    values = pd.Series(values)
    out = values.isna().to_numpy()
    if unlabeled_category is None:
        return out
    names = [unlabeled_category] if np.isscalar(unlabeled_category) else list(unlabeled_category)
    keys = {_key(v) for v in names}
    return out | values.map(lambda v: _key(v) in keys).to_numpy(dtype=bool)


def label_classes(values: pd.Series, unlabeled: np.ndarray) -> list:
    """The classes of the labelled spots: in the column's category order if categorical, else sorted.

    Raises where the column cannot be a class label: a continuous (non-integer float) column.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from senca._labels import label_classes
    >>> label_classes(pd.Series(["b", "a", "c", "b"]), np.zeros(4, dtype=bool))
    ['a', 'b', 'c']
    """
    values = pd.Series(values)
    kept = values[~np.asarray(unlabeled, dtype=bool)]
    if pd.api.types.is_float_dtype(kept) and not np.allclose(kept, np.round(kept)):
        raise ValueError(
            "The label column holds non-integer numbers (a continuous variable?); pass a column of class labels "
            "(text, categories, bool or integer codes)."
        )
    if isinstance(kept.dtype, pd.CategoricalDtype):
        seen = set(kept.unique())
        classes = [c for c in kept.cat.categories if c in seen]
    else:
        uniq = list(pd.unique(kept))
        numeric = all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in uniq)
        classes = sorted(uniq) if numeric else sorted(uniq, key=str)
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


def class_codes(values: pd.Series, classes: list, unlabeled: np.ndarray, option: str = "classes") -> np.ndarray:
    """Class code (0 .. K-1, float) of each labelled spot in ``classes``, NaN where unlabelled.

    Raises, naming the values, where a labelled spot's value is not one of ``classes``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from senca._labels import class_codes
    >>> class_codes(pd.Series(["b", "a", "x"]), ["a", "b"], np.array([False, False, True]))
    array([ 1.,  0., nan])
    """
    values = pd.Series(values)
    unlabeled = np.asarray(unlabeled, dtype=bool)
    lookup = {c: i for i, c in enumerate(classes)}
    lookup.update({str(c): i for i, c in enumerate(classes)})
    codes = np.full(len(values), np.nan)
    unknown = set()
    for i, v in enumerate(values.to_numpy()):
        if unlabeled[i]:
            continue
        code = lookup.get(v, lookup.get(str(v)))
        if code is None:
            unknown.add(str(v))
        else:
            codes[i] = code
    if unknown:
        raise ValueError(
            f"Label values {sorted(unknown)[:10]} are not among {option}={[str(c) for c in classes]}; add them to "
            "it, or mark them as unlabelled (unlabeled_category=)."
        )
    return codes
