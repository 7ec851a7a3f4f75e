"""The HPARAMS tab with real numbers: each run's hyperparameters next to its final metrics."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

METRICS = {"val/mse": "hparams/val_mse", "val/r2": "hparams/val_r2"}


class HParamsMetrics(Callback):
    """At the end of fit, log the hyperparameters with the final ``val/mse`` and ``val/r2``.

    TensorBoard's HPARAMS tab then compares runs by these metrics (tags ``hparams/val_mse``,
    ``hparams/val_r2``) instead of Lightning's placeholder ``hp_metric = -1``.
    """

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the hyperparameters and the final validation metrics."""
        metrics = {
            tag: float(trainer.callback_metrics[name])
            for name, tag in METRICS.items()
            if name in trainer.callback_metrics
        }
        if not metrics:
            return
        params = {**pl_module.hparams}
        if trainer.datamodule is not None:
            params.update(trainer.datamodule.hparams)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(params, metrics=metrics)
