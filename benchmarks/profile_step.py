"""Where one SENCA training step spends its time (one CPU thread, synthetic data); prints, writes nothing.

Two measurements on ``senca.datasets.synthetic`` set up as in ``benchmarks/scaling.py``:

1. *Lightning*: ``model.train(max_epochs=1)`` with a callback that times every minibatch (forward, backward, optimiser,
   logging), as the ``step (ms)`` column of the scaling table;
2. *parts*: the same module, minibatches from :class:`senca.data.NeighborhoodDataLoader`, timed by hand without
   Lightning: loading (neighbour gather), forward + loss, backward, Adam. The difference to (1) is Lightning's and
   scvi-tools' per-step overhead (metric logging, hooks).

``--cprofile`` adds the 25 most expensive functions of the Lightning run.

Usage::

    python -m benchmarks.profile_step                      # 10,000 spots, 200 genes
    python -m benchmarks.profile_step --genes 3000 --cprofile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spots", type=int, default=10_000)
    p.add_argument("--genes", type=int, default=200)
    p.add_argument("--batches", type=int, default=60, help="minibatches timed by hand in part 2")
    p.add_argument("--cprofile", action="store_true")
    args = p.parse_args(argv)

    from benchmarks._common import single_thread

    single_thread()
    import torch
    from lightning.pytorch.callbacks import Callback

    import senca
    from senca.data import NeighborhoodDataLoader

    class Timer(Callback):
        def __init__(self):
            self.steps, self._t = [], None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append(time.perf_counter() - self._t)

    adata = senca.datasets.synthetic(n_spots=args.spots, n_genes=args.genes, n_histology=32, seed=0)
    senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", spatial_key="spatial")
    model = senca.model.SENCA(adata)
    timer = Timer()
    prof = cProfile.Profile() if args.cprofile else None
    if prof:
        prof.enable()
    model.train(max_epochs=1, seed=0, enable_progress_bar=False, callbacks=[timer])
    if prof:
        prof.disable()
    lightning_ms = 1e3 * float(np.mean(timer.steps[2:]))

    module = model.module
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=1e-3, eps=0.01, weight_decay=1e-6)
    loader = iter(NeighborhoodDataLoader(model.adata_manager, batch_size=128, shuffle=True))
    parts = []
    for _ in range(args.batches):
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        inf = module.inference(**module._get_inference_input(batch))
        gen = module.generative(**module._get_generative_input(batch, inf))
        loss = module.loss(batch, inf, gen).loss
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        parts.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))
    load, fwd, bwd, adam = 1e3 * np.mean(parts[2:], axis=0)
    print(f"{args.spots:,} spots, {args.genes} genes, batch 128, 6 neighbours, 1 thread")
    print(f"Lightning step (forward, backward, optimiser, logging): {lightning_ms:.1f} ms")
    print(f"by hand: loading {load:.1f} ms, forward + loss {fwd:.1f} ms, backward {bwd:.1f} ms, Adam {adam:.1f} ms")
    print(f"Lightning / scvi-tools overhead per step: {lightning_ms - (fwd + bwd + adam):.1f} ms")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
