"""Label-free adaptation of a trained SpaCRD to a target section: pseudo-labels, their refit, per-section scores.

Every step uses the target's own spots and no target label (transductive, like SpaCRD's per-section scaling).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from senca._utils import restore_torch_flags
from senca.data import MODULE_KEYS, gather_neighborhoods
from senca.metrics import gmm_threshold
from senca.module._kernel_attention import attend


def neighbor_smooth(values: np.ndarray, nbr: np.ndarray, passes: int) -> np.ndarray:
    """Average ``values`` over each spot's neighbourhood (rows of ``nbr``, the spot included), ``passes`` times.

    Cancer regions are contiguous tissue, so a spot's score is pooled with its neighbours' before calling it. This is
    SENCA's neighbourhood mixing (:func:`senca.module._kernel_attention.attend`) with uniform weights, in float64.
    """
    v = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(len(nbr), -1)
    n, k = nbr.shape
    uniform = torch.full((n, max(k - 1, 1)), 1.0 / max(k - 1, 1), dtype=torch.float64)
    out = attend(v, torch.as_tensor(np.asarray(nbr), dtype=torch.long), uniform, passes=int(passes))
    return out.numpy().reshape(np.shape(values))


def pseudo_labels(score: np.ndarray, groups: np.ndarray, fraction: float) -> np.ndarray:
    """1 for the top ``fraction`` of ``score`` in each group, 0 for the bottom ``fraction``, NaN in between."""
    out = np.full(len(score), np.nan)
    for g in pd.unique(groups):
        rows = np.flatnonzero(groups == g)
        lo, hi = np.quantile(score[rows], [fraction, 1.0 - fraction])
        if hi <= lo:  # a flat score carries no pseudo-label
            continue
        out[rows[score[rows] <= lo]] = 0.0
        out[rows[score[rows] >= hi]] = 1.0
    return out


def class_pseudo_labels(logits: np.ndarray, groups: np.ndarray, fraction: float) -> np.ndarray:
    """Multi-class pseudo-labels: per section, each class's most typical spots by its standardised logit.

    The binary rule of :func:`pseudo_labels` (the top and the bottom ``fraction`` of the cancer logit) for ``K``
    classes. Within each section every class's logit is standardised over the section's spots; each spot is a
    candidate for the two classes the network finds most likely for it (the binary decision), and goes to the one of
    the two where it stands higher; of each class's candidates, the ``fraction`` of the section that stand highest
    carry its pseudo-label. Standardising makes the choice insensitive to how much of each class the network calls
    in this section (a section whose composition differs from the sources' shifts the logits, not their order), and
    the two-class candidacy keeps a class the network finds implausible for a spot, or absent from the section, from
    being forced onto it. With two classes this is the binary rule. Classes whose logit is NaN or flat in a section
    get no pseudo-label there. Returns float class codes, NaN for spots without a pseudo-label.
    """
    out = np.full(len(logits), np.nan)
    for g in pd.unique(groups):
        rows = np.flatnonzero(groups == g)
        lg = logits[rows]
        usable = np.isfinite(lg).all(0)
        sd = np.zeros(lg.shape[1])
        sd[usable] = lg[:, usable].std(0)
        usable &= sd > 0
        if not usable.any():
            continue
        z = np.full(lg.shape, -np.inf)
        z[:, usable] = (lg[:, usable] - lg[:, usable].mean(0)) / sd[usable]
        two = np.argsort(-np.where(usable, lg, -np.inf), axis=1, kind="stable")[:, :2]
        candidate = np.full(lg.shape, -np.inf)
        np.put_along_axis(candidate, two, np.take_along_axis(z, two, axis=1), axis=1)
        best = candidate.argmax(1)
        take = int(np.ceil(fraction * len(rows)))
        for k in np.flatnonzero(usable):
            mine = np.flatnonzero((best == k) & np.isfinite(candidate[:, k]))
            out[rows[mine[np.argsort(-candidate[mine, k], kind="stable")[:take]]]] = k
    return out


def class_proba(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(n, K)`` logits; a NaN logit (a class the adaptation could not fit) has probability 0."""
    lg = np.where(np.isfinite(logits), logits, -np.inf)
    lg = lg - lg.max(1, keepdims=True)
    e = np.exp(lg)
    return e / e.sum(1, keepdims=True)


def linear_adapt(x: np.ndarray, pseudo: np.ndarray, groups: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per section, the decision values of an L2 logistic regression fitted on that section's pseudo-labelled spots.

    ``x`` are the section-standardised gene features, ``pseudo`` 1 / 0 / NaN (see :func:`pseudo_labels`). The fit is a
    convex problem solved to convergence (scikit-learn, ``C=1``), so its result does not depend on the section's size
    or on a number of optimisation steps. Sections whose pseudo-labels hold a single class keep ``base``.

    With ``(n, K)`` logits as ``base`` and class codes as ``pseudo`` (:func:`class_pseudo_labels`), the regression is
    multinomial over the classes the section's pseudo-labels hold, and its logits replace ``base``; a class without a
    pseudo-label in a section gets NaN there (probability 0 in :func:`class_proba`): no spot of that section was
    confidently that class.
    """
    from sklearn.linear_model import LogisticRegression

    out = np.asarray(base, dtype=np.float64).copy()
    for g in pd.unique(groups):
        rows = np.flatnonzero(groups == g)
        fit = rows[np.isfinite(pseudo[rows])]
        seen = np.unique(pseudo[fit])
        if len(seen) < 2:
            continue
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(x[fit], pseudo[fit])
        # in blocks: x may compute its rows on demand (SectionGenes), and a whole large section would be densified
        d = np.concatenate([clf.decision_function(x[b]) for b in np.array_split(rows, -(-len(rows) // 8192))])
        if out.ndim == 1:
            out[rows] = d
            continue
        block = np.full((len(rows), out.shape[1]), np.nan)
        cols = clf.classes_.astype(int)
        block[:, cols] = d if d.ndim == 2 else np.c_[np.zeros(len(rows)), d]  # two classes: one decision value
        out[rows] = block
    return out


def agreeing_sections(
    adapted: np.ndarray, base: np.ndarray, pseudo: np.ndarray, nbr: np.ndarray, groups: np.ndarray, passes: int
) -> tuple[np.ndarray, list]:
    """``adapted`` where it agrees with the network's ``base`` logits, ``base`` in the sections where it does not.

    The adaptation is fitted to the network's most confident spots; on the others (no pseudo-label) it should order
    the spots in the network's direction. Per section, the Spearman correlation between the two, pooled as the
    scores are (``passes``), over the spots without a pseudo-label: where it is not positive, the adaptation
    contradicts the network on everything it was not told, and that section keeps the network's logits.
    Returns the logits and the sections that kept the network's.
    """
    from scipy.stats import spearmanr

    out = np.asarray(adapted, dtype=np.float64).copy()
    a, b = neighbor_smooth(adapted, nbr, passes), neighbor_smooth(base, nbr, passes)
    declined = []
    for g in pd.unique(groups):
        rows = np.flatnonzero(groups == g)
        rest = rows[~np.isfinite(pseudo[rows])]
        rho = spearmanr(a[rest], b[rest])[0] if len(rest) > 2 else np.nan
        if not rho > 0:
            out[rows] = base[rows]
            declined.append(g)
    return out, declined


@torch.inference_mode()
def network_logits(module, features: dict[str, np.ndarray], nbr: np.ndarray, batch_size: int) -> np.ndarray:
    """The network's logit of every spot (eval mode), its neighbourhoods ``nbr`` gathered from ``features``."""
    module.eval()
    device = next(module.parameters()).device
    out = []
    for start in range(0, len(nbr), batch_size):
        batch = gather_neighborhoods(features, nbr[start : start + batch_size], device)
        out.append(module.predict_logit(**module._get_inference_input(batch)).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def finetuned_copy(
    module, features: dict[str, np.ndarray], nbr: np.ndarray, pseudo: np.ndarray, epochs: int, lr: float, seed: int
):
    """A copy of the network fine-tuned by BCE on the target spots with a pseudo-label (``pseudo`` 0/1, NaN: none).

    With more than two classes, by cross-entropy on class-code pseudo-labels.

    Self-training on the target's most confident spots adapts the classifier to the target's patient and batch
    without any target label; ``module`` itself is left untouched.
    """
    module = copy.deepcopy(module)
    module.stage = "detect"
    module.train()
    device = next(module.parameters()).device
    rows = np.flatnonzero(np.isfinite(pseudo))
    target = torch.from_numpy(pseudo.astype(np.float32))
    multi = getattr(module, "n_classes", 2) > 2
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]), restore_torch_flags():
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        for _ in range(epochs):
            rng.shuffle(rows)
            for start in range(0, len(rows), 128):
                centre = rows[start : start + 128]
                batch = gather_neighborhoods(features, nbr[centre], device)
                out = module.inference(**module._get_inference_input(batch))
                logit, y = out[MODULE_KEYS.LOGIT_KEY], target[centre].to(device)
                loss = F.cross_entropy(logit, y.long()) if multi else F.binary_cross_entropy_with_logits(logit, y)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    module.eval()
    return module


def section_scores(logits: np.ndarray, groups: np.ndarray, threshold: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits min-max scaled within each section into scores in [0, 1], and the label-free binary call.

    ``threshold="balanced"``: a spot is cancer where its logit is >= 0; ``"gmm"``: where its score reaches the
    two-component Gaussian mixture threshold of its section (:func:`senca.metrics.gmm_threshold`).
    """
    score = np.zeros(len(logits), dtype=np.float64)
    call = np.zeros(len(logits), dtype=bool)
    for g in pd.unique(groups):
        rows = groups == g
        lg = logits[rows]
        span = lg.max() - lg.min()
        s = (lg - lg.min()) / span if span > 0 else np.full(lg.shape, 0.5)
        score[rows] = s
        call[rows] = lg >= 0.0 if threshold == "balanced" else s >= gmm_threshold(s, seed=seed)
    return score, call
