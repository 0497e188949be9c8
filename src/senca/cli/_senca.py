"""SENCA as the commands run it: gene selection, setup, seeded training, scores against known regions."""

from __future__ import annotations

import time
from typing import Any

from ._console import quiet_libraries, say, step, torch_threads


def train_senca(
    adata: Any,
    *,
    n_latent: int,
    max_epochs: int | None,
    accelerator: str,
    seed: int,
    n_top_genes: int = 0,
    **setup: Any,
) -> Any:
    """Set up SENCA on ``adata`` (or on its ``n_top_genes`` most variable genes) and fit it; return the model.

    ``setup`` are the arguments of :meth:`senca.model.SENCA.setup_anndata` (``layer``, ``image_key``,
    ``spatial_key``, ``sample_key``, ``n_neighbors``); the whole library is used when genes were selected.
    """
    quiet_libraries()
    adata = top_genes(adata, n_top_genes, setup.get("layer"), setup.get("sample_key"))
    with step("importing scvi-tools"):
        from senca.model import SENCA
    quiet_libraries()
    torch_threads()
    from senca._utils import set_seed

    set_seed(seed)
    library_key = "library_size" if "library_size" in adata.obs else None
    SENCA.setup_anndata(adata, library_key=library_key, **setup)
    model = SENCA(adata, n_latent=n_latent)
    say(
        f"fitting SENCA on {adata.n_obs} spots x {adata.n_vars} genes"
        + ("" if setup.get("image_key") else " (no histology)")
    )
    t0 = time.perf_counter()
    model.train(max_epochs=max_epochs, accelerator=accelerator, seed=seed)
    tuned = model.finetune_
    note = "" if tuned is None else f", fine-tuning {'kept' if tuned['kept'] else 'discarded: held-out loss not lower'}"
    passes = model.selection_["passes"]
    say(f"fitted SENCA: {passes} attention passes{note} ({time.perf_counter() - t0:.1f} s)", done=True)
    return model


def top_genes(adata: Any, n_top_genes: int, layer: str | None, sample_key: str | None) -> Any:
    """A copy of ``adata`` restricted to its most variable genes, with ``obs["library_size"]`` over all genes."""
    if not n_top_genes:
        return adata
    from senca.pp import select_genes

    with step(f"selecting the {min(n_top_genes, adata.n_vars)} most variable of {adata.n_vars} genes"):
        return select_genes(adata, n_top_genes=n_top_genes, layer=layer, sample_key=sample_key, overwrite=True)


def scores_against(truth: Any, pred: Any, drop: tuple[str, ...] = ()) -> dict[str, float]:
    import numpy as np

    truth = truth.astype(str).to_numpy()
    pred = pred.astype(str).to_numpy()
    keep = ~np.isin(truth, drop) & (truth != "nan")
    try:
        from senca.metrics import region_scores
    except ImportError:  # pragma: no cover - senca.metrics.region_scores is part of the package
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        return {
            "ari": float(adjusted_rand_score(truth[keep], pred[keep])),
            "nmi": float(normalized_mutual_info_score(truth[keep], pred[keep])),
        }
    return {k: v for k, v in region_scores(truth[keep], pred[keep]).items() if np.isscalar(v)}
