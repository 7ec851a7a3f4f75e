"""The HPARAMS tab with real numbers: each run's hyperparameters next to its final metrics."""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

METRICS = {"val/mse": "hparams/val_mse", "val/r2": "hparams/val_r2"}


class HParamsMetrics(Callback):
    """At the end of fit, log the hyperparameters with the final ``val/mse`` and ``val/r2``.

    TensorBoard's HPARAMS tab then compares runs by these metrics (tags ``hparams/val_mse``,
    ``hparams/val_r2``) instead of Lightning's placeholder ``hp_metric = -1``. The
    hyperparameters are the model's and the data module's ``__init__`` arguments (a data
    argument whose name the model already uses is called ``data.<name>``), ``model`` and
    ``data`` (their class paths) and ``seed_everything`` when a global seed was set.
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
        params: dict[str, Any] = {**_public(pl_module.hparams), "model": _class_path(pl_module)}
        data = trainer.datamodule
        if data is not None:
            params.update(
                {f"data.{k}" if k in params else k: v for k, v in _public(data.hparams).items()}
            )
            params["data"] = _class_path(data)
        if "PL_GLOBAL_SEED" in os.environ:  # set by Lightning's seed_everything
            params["seed_everything"] = int(os.environ["PL_GLOBAL_SEED"])
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(params, metrics=metrics)


def _class_path(instance: object) -> str:
    return f"{type(instance).__module__}.{type(instance).__qualname__}"


def _public(hparams: dict[str, Any]) -> dict[str, Any]:
    """Without LightningCLI's internal entries (``_class_path``, ``_instantiator``)."""
    return {key: value for key, value in hparams.items() if not key.startswith("_")}
