"""Training plans of the senca models and SENCA's default schedule.

scvi-tools' plan, logging metrics so that Lightning DDP can sync them; the epoch-aware plan of SpaCRD's staged
training; the default number of epochs.
"""

from __future__ import annotations

import numpy as np
import torch
from scvi.module.base import LossOutput
from scvi.train import TrainingPlan as _ScviTrainingPlan

from senca._scvi_private import undecorated


class TrainingPlan(_ScviTrainingPlan):
    """:class:`scvi.train.TrainingPlan` whose metrics are logged under ``torch.no_grad`` instead of inference mode.

    scvi-tools logs the losses and the module's ``extra_metrics`` inside ``torch.inference_mode()``. Lightning
    then keeps, for every tensor logged with a mean reduction, a running batch-size counter created in that
    context, i.e. an *inference tensor*. Under DDP the counter is synchronised across processes at the end of
    each epoch, outside inference mode and in place (with the gloo backend: ``all_reduce`` then
    ``copy_(result / world_size)``), which raises "Inplace update to inference tensor outside InferenceMode".
    scvi's own models log no extra metrics and never meet it; SENCA (``nb_loss``, ``histology_loss``,
    ``infonce_loss``) did, at the end of the first epoch. Logging under ``no_grad`` keeps the accumulated
    values identical and out of the autograd graph, and the counters are ordinary tensors.
    """

    def compute_and_log_metrics(self, loss_output: LossOutput, metrics: dict, mode: str) -> None:
        """Log one minibatch's losses and extra metrics, as :meth:`scvi.train.TrainingPlan.compute_and_log_metrics`."""
        body = undecorated(_ScviTrainingPlan.compute_and_log_metrics)
        if body is None:  # a later scvi-tools without the inference-mode decorator
            return super().compute_and_log_metrics(loss_output, metrics, mode)
        with torch.no_grad():
            return body(self, loss_output, metrics, mode)


class EpochAwarePlan(TrainingPlan):
    """:class:`TrainingPlan` that passes the current epoch to the module's loss (SpaCRD's VAE-only warm-up)."""

    def training_step(self, batch, batch_idx):
        """One training step, the loss told the epoch."""
        self.loss_kwargs["epoch"] = int(self.current_epoch)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        """One validation step, the loss told the epoch."""
        self.loss_kwargs["epoch"] = int(self.current_epoch)
        return super().validation_step(batch, batch_idx)


def default_max_epochs(n_obs: int, batch_size: int = 128, train_size: float = 0.9, n_steps: int = 300) -> int:
    """Default number of training epochs: about ``n_steps`` optimiser steps, between 10 and 300 epochs.

    Parameters
    ----------
    n_obs
        Number of spots.
    batch_size
        Spots per minibatch.
    train_size
        Fraction of spots in the training split.
    n_steps
        Target number of optimiser steps.

    Returns
    -------
    ``clip(round(n_steps / ceil(train_size * n_obs / batch_size)), 10, 300)``.

    Examples
    --------
    >>> from senca.model._plan import default_max_epochs
    >>> default_max_epochs(346), default_max_epochs(700), default_max_epochs(4000), default_max_epochs(500_000)
    (100, 60, 10, 10)
    """
    steps_per_epoch = max(int(np.ceil(train_size * max(int(n_obs), 1) / batch_size)), 1)
    return int(np.clip(round(n_steps / steps_per_epoch), 10, 300))
