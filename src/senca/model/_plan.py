"""Training plans of the senca models.

scvi-tools' plan, logging metrics so that Lightning DDP can sync them; the epoch-aware plan of SpaCRD's staged
training.
"""

from __future__ import annotations

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
