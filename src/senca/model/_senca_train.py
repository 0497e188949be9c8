"""What SENCA's ``train()`` fits: the number of attention passes by count splitting, then optional fine-tuning.

Both are label-free and use the same idea (data thinning): each spot's counts are split binomially into two halves
with the same expected profile and independent noise, so how well the network's mix of one half predicts the other
measures how much of the mixing is signal and how much is noise.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning.pytorch as pl
import numpy as np
import scipy.sparse as sp
import torch

from senca.data._constants import MODULE_KEYS
from senca.module._senca import SENCAModule
from senca.pp._normalise import log_normalise_counts

#: Principal components of the count halves compared by the passes criterion.
N_CRITERION_PCS = 15
#: Spots used to fit those components (all of them below this).
N_CRITERION_FIT = 5_000
#: Spots whose count splits the criterion averages (one split of a larger section is already this many).
N_CRITERION_SPOTS = 50_000


def split_counts(counts: sp.csr_matrix, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binomial halves ``(a, counts - a)`` of integer counts: the same expected profile, independent noise.

    Both halves share the sparsity structure of ``counts`` (a zero in one half is stored, not dropped). The draws go
    in chunks of values (the generator's sequence is the same as one draw), so that no int64 copy of every count is
    ever held: a 500,000-spot section would otherwise need several GB here.
    """
    data = counts.data
    a = np.empty(len(data), dtype=np.float32)
    for start in range(0, len(data), 2**22):
        chunk = data[start : start + 2**22].astype(np.int64)  # setup checked that these are integer counts
        a[start : start + len(chunk)] = rng.binomial(chunk, 0.5)
    shape, structure = counts.shape, (counts.indices, counts.indptr)
    half = sp.csr_matrix((a, *structure), shape=shape)
    other = sp.csr_matrix((np.asarray(data, dtype=np.float32) - a, *structure), shape=shape)  # exact below 2**24
    return half, other


def passes_criterion(
    module: SENCAModule,
    counts: sp.csr_matrix,
    keys: torch.Tensor | None,
    index: torch.Tensor,
    seed: int,
    n_splits: int | None = None,
) -> np.ndarray:
    """Held-out loss of ``1 .. max_passes`` attention passes (lower is better), summed over count splits.

    For each binomial split of the counts into halves A and B (each normalised by its own total), the top
    ``N_CRITERION_PCS`` principal components of half A are fitted (on at most ``N_CRITERION_FIT`` spots), both halves
    are projected on them, half A is mixed by the network's first ``p`` attention layers at their initial state and
    compared with half B: the mean squared distance per spot. Too few passes leave half A's noise in; too many average
    over spots whose expression differs. Neighbourhoods never cross samples, so sections are compared as they are
    mixed. ``n_splits=None`` averages about ``N_CRITERION_SPOTS`` spot-splits (two splits of a her2st section, one of
    a section of 50,000 spots or more).
    """
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    device = index.device
    n = counts.shape[0]
    losses = np.zeros(module.max_passes)
    n_pcs = int(min(N_CRITERION_PCS, counts.shape[1] - 1, n - 1))
    if n_pcs < 1:
        return losses
    if n_splits is None:
        n_splits = int(np.clip(np.ceil(N_CRITERION_SPOTS / max(n, 1)), 1, 2))
    with torch.inference_mode():  # the initial layers: the expression term is closed, so no tokens are needed
        weights = module.attentions(keys, torch.zeros((n, 0), device=device), index, module.max_passes, True)
    for _ in range(int(n_splits)):
        a, b = split_counts(counts, rng)
        xa, xb = log_normalise_counts(a), log_normalise_counts(b)  # each half normalised by its own total
        fit_rows = np.sort(rng.choice(n, N_CRITERION_FIT, replace=False)) if n > N_CRITERION_FIT else slice(None)
        pca = PCA(n_components=n_pcs, svd_solver="arpack", random_state=int(rng.integers(2**31))).fit(xa[fit_rows])
        axes = pca.components_.T.astype(np.float32)
        offset = (np.asarray(pca.mean_).ravel() @ axes).astype(np.float32)
        za = torch.as_tensor(np.asarray(xa @ axes) - offset, device=device)
        zb = torch.as_tensor(np.asarray(xb @ axes) - offset, device=device)
        with torch.inference_mode():
            for p, a_p in enumerate(weights):
                za = module.smooth(za, index, [a_p])
                losses[p] += float(((za - zb) ** 2).sum(1).mean())
    return losses


def half_libraries(counts: sp.csr_matrix, library: np.ndarray | None, half: sp.csr_matrix) -> np.ndarray:
    """A half's library: the whole library scaled by the half's share of the model genes' counts."""
    total = np.asarray(counts.sum(1)).ravel()
    part = np.asarray(half.sum(1)).ravel()
    if library is None:
        return part
    return library * np.where(total > 0, part / np.maximum(total, 1e-12), 0.5)


class CountSplitBatches(torch.utils.data.IterableDataset):
    """Whole-section batches of expression tokens of two count halves, drawn anew at every pass over the data.

    Each item is one section: ``expression`` (half A through the gene head, mapped onto the cohort's Harmony reference
    in cohort mode), ``target`` (half B, likewise), ``h`` (histology tokens, when there is an image) and ``nbr`` (the
    section's neighbour index, in its own row numbers): the inputs of :meth:`senca.module.SENCAModule.loss`. A seeded
    generator makes the sequence of splits reproducible. Every process of a multi-process (DDP) run sees every
    section: the gradients agree, but the work is not divided.
    """

    def __init__(
        self,
        module: SENCAModule,
        counts: sp.csr_matrix,
        library: np.ndarray | None,
        keys: torch.Tensor | None,
        index: torch.Tensor,
        samples: np.ndarray | None,
        seed: int,
        fixed: bool = False,
    ):
        super().__init__()
        self.module, self.counts, self.library, self.keys = module, counts, library, keys
        self.fixed, self.seed = fixed, int(seed)
        self.rng = np.random.default_rng(self.seed)
        codes = np.zeros(counts.shape[0], dtype=np.int64) if samples is None else np.asarray(samples)
        self.sections = []
        index = index.cpu().numpy()
        for code in np.unique(codes):
            rows = np.flatnonzero(codes == code)
            local = np.full(counts.shape[0], -1, dtype=np.int64)
            local[rows] = np.arange(len(rows))
            self.sections.append((rows, torch.as_tensor(local[index[rows]], dtype=torch.long)))

    def _tokens(self, half: sp.csr_matrix, rows: np.ndarray) -> torch.Tensor:
        from ._senca_fit import expression_tokens

        lib = half_libraries(self.counts[rows], None if self.library is None else self.library[rows], half)
        # the section's tokens mapped onto the cohort's Harmony reference, as the embedding maps them
        return self.module.integrate(expression_tokens(self.module, half, lib)).clone().cpu()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng(self.seed) if self.fixed else self.rng
        for rows, nbr in self.sections:
            a, b = split_counts(self.counts[rows], rng)
            item = {
                MODULE_KEYS.EXPRESSION_KEY: self._tokens(a, rows),
                MODULE_KEYS.TARGET_KEY: self._tokens(b, rows),
                MODULE_KEYS.NBR_KEY: nbr,
            }
            if self.keys is not None:
                item[MODULE_KEYS.H_KEY] = self.keys[rows].detach().cpu()
            yield item


class CountSplitDataModule(pl.LightningDataModule):
    """Lightning data module over whole-section count-split batches (training splits drawn anew, validation fixed)."""

    def __init__(self, train: CountSplitBatches, validation: CountSplitBatches):
        super().__init__()
        self.train_batches, self.validation_batches = train, validation

    def train_dataloader(self):
        """One batch per section, new splits at every epoch."""
        return torch.utils.data.DataLoader(self.train_batches, batch_size=None)

    def val_dataloader(self):
        """One batch per section, the same splits at every epoch."""
        return torch.utils.data.DataLoader(self.validation_batches, batch_size=None)


def validation_loss(module: SENCAModule, batches: CountSplitBatches) -> float:
    """Mean fine-tuning loss of the module over the (fixed) validation splits."""
    total, n = 0.0, 0
    was_training = module.training
    module.eval()
    device = module.kernel_bandwidth.device
    with torch.inference_mode():
        for item in batches:
            item = {k: v.to(device) for k, v in item.items()}
            out = module.loss(item, module.inference(**module._get_inference_input(item)), {})
            total += float(out.loss) * int(out.n_obs_minibatch)
            n += int(out.n_obs_minibatch)
    module.train(was_training)
    return total / max(n, 1)
