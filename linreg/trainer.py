"""Lightning's Trainer with what the ``linreg`` command adds to its methods.

LightningCLI builds each subcommand's options from the Trainer method of the same name, so an
option of ``linreg predict`` is an argument of :meth:`LinRegTrainer.predict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer

from linreg.callbacks.predictions import PredictionWriter


class LinRegTrainer(Trainer):
    """``Trainer`` whose ``predict`` can write the predictions to a CSV file as they come."""

    def predict(
        self,
        model: LightningModule | None = None,
        dataloaders: Any | None = None,
        datamodule: LightningDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | Path | None = None,
        weights_only: bool | None = None,
        predictions: str | None = None,
    ) -> Any:
        """Run inference on your data, and write the predictions to a file.

        Args:
            model: the model to predict with.
            dataloaders: the data to predict on, if not ``datamodule``'s.
            datamodule: the data module whose ``predict_dataloader`` gives the data.
            return_predictions: also return the predictions (default: not when writing them).
            ckpt_path: the checkpoint whose weights to predict with.
            weights_only: load the checkpoint with ``torch.load(weights_only=...)``.
            predictions: CSV file to write the predictions to (one row per input row, in
                order; ``-`` for standard output).
        """
        if predictions is not None:
            self.callbacks.append(PredictionWriter(predictions))
            return_predictions = bool(return_predictions)
        return super().predict(
            model, dataloaders, datamodule, return_predictions, ckpt_path, weights_only
        )
