"""Parallel training on CPU: Lightning DDP (two gloo processes) and data-loader worker processes."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

import senca


def _data():
    adata = senca.datasets.synthetic(n_spots=400, n_genes=50, n_histology=12, seed=0)
    senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
    return adata


def _train(adata, strategy: str, callbacks=(), seed: int = 3):
    model = senca.model.SENCA(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's few-batches / gloo notices
        model.train(
            max_epochs=2,
            lr=0.05,
            seed=seed,
            strategy=strategy,
            devices=2,
            accelerator="cpu",
            enable_progress_bar=False,
            callbacks=list(callbacks),
        )
    return model


def test_senca_fine_tunes_with_ddp_on_two_cpu_processes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # under DDP, scvi-tools writes the loss history to ./lightning_logs

    class Snapshot(Callback):  # ddp_notebook forks, so this local class needs no pickling
        def on_train_start(self, trainer, pl_module):
            if trainer.global_rank == 0:
                torch.save(pl_module.module.state_dict(), tmp_path / "start.pt")

        def on_train_end(self, trainer, pl_module):
            torch.save(pl_module.module.state_dict(), tmp_path / f"end{trainer.global_rank}.pt")

    adata = _data()
    forked = _train(adata, "ddp_notebook", callbacks=[Snapshot()])
    start, end0, end1 = (torch.load(tmp_path / f) for f in ("start.pt", "end0.pt", "end1.pt"))
    mine = forked.module.state_dict()
    assert set(mine) == set(end0)
    kept = forked.finetune_["kept"]
    for key, value in mine.items():
        torch.testing.assert_close(end0[key], end1[key], rtol=0, atol=0)  # DDP kept the two replicas equal
        # the fine-tuned weights came back, or the network returned to its state before fine-tuning
        torch.testing.assert_close(value, (end0 if kept else start)[key], rtol=0, atol=0)
    assert any(not torch.equal(start[k], end0[k]) for k in start)  # and they were trained
    losses = forked.history["train_loss"].to_numpy(dtype=float).ravel()
    assert losses.shape == (2,)
    assert np.isfinite(losses).all()

    z = forked.get_latent_representation()
    assert np.isfinite(z).all()

    # fresh worker processes (ddp_spawn) re-import scvi-tools, yet split and train exactly as the forked ones
    spawned = _train(adata, "ddp_spawn")
    np.testing.assert_array_equal(spawned.get_latent_representation(), z)
    assert spawned.finetune_ == forked.finetune_


def test_spacrd_trains_with_ddp_on_two_cpu_processes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    adata = senca.datasets.synthetic(n_spots=300, n_genes=50, n_histology=8, layout="stripes", seed=0)
    adata.obs["cancer"] = (adata.obs["region"] == "R1").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        senca.model.SpaCRD.setup_anndata(adata, layer="counts", image_key="X_histology", labels_key="cancer")
        det = senca.model.SpaCRD(adata, n_hidden=32, n_embed=16, n_heads=2, n_latent=4)
        # both stages (alignment, then detection) run under DDP; each leaves part of the network unused
        det.train(
            max_epochs=2,
            align_epochs=1,
            seed=0,
            strategy="ddp_notebook",
            devices=2,
            accelerator="cpu",
            enable_progress_bar=False,
        )
    t = adata.copy()
    t.obs = t.obs[[]]
    det.predict(t, adapt_epochs=2)
    score = t.obs["spacrd_score"].to_numpy()
    assert np.isfinite(score).all()
    assert score.min() == 0.0
    assert score.max() == 1.0
