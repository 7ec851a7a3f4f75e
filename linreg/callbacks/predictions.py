"""Write predictions to a CSV file: one row per input row, in order, all or nothing."""

from __future__ import annotations

import csv
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.data import sized_len
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from linreg.errors import UserInputError


class PredictionWriter(BasePredictionWriter):
    """Stream each process's predictions to a part file; merge them in order at the end.

    Rows come out in the input's order and count, also under multi-process DDP (each process
    predicts a contiguous block of rows, written back in rank order). The header names the
    target(s), from the data module's ``target_names`` when it has them. The file is assembled
    next to ``path`` and renamed into place at the end, so a failed run leaves no partial file
    and an existing file at ``path`` is only replaced by a complete one. Predictions are turned
    back into the target's units with the data module's ``inverse_target`` when it has one.

    Args:
        path: the CSV file to write.
    """

    def __init__(self, path: str) -> None:
        super().__init__(write_interval="batch")
        # rows are written in order, so Lightning's batch-index bookkeeping is not needed
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
        self.path = Path(path)
        self._token = uuid.uuid4().hex[:8]
        self._part: Any = None

    def _part_path(self, rank: int) -> Path:
        return self.path.with_name(f".{self.path.name}.{self._token}.part{rank}")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Fail early, on every process alike, when a process would get no rows to predict.

        Lightning skips prediction on such a process, which then never joins the merge.
        """
        if stage != "predict" or trainer.world_size == 1 or trainer.datamodule is None:
            return
        batches = sized_len(trainer.datamodule.predict_dataloader())
        if batches is None:
            return
        device = trainer.strategy.root_device
        fewest = trainer.strategy.reduce(torch.tensor(batches, device=device), reduce_op="min")
        if int(fewest) == 0:
            raise UserInputError(
                f"the data has fewer rows than the {trainer.world_size} processes predicting it, "
                f"so some would get none: predict with --trainer.devices 1."
            )

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Open this process's part file (all processes agree on the name: rank 0's token)."""
        self._token = trainer.strategy.broadcast(self._token)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = open(self._part_path(trainer.global_rank), "w")  # noqa: SIM115

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Append this batch's predictions, in the target's units."""
        inverse = getattr(trainer.datamodule, "inverse_target", None)
        values: Tensor = inverse(prediction) if callable(inverse) else prediction
        np.savetxt(self._part, values.detach().float().cpu().numpy().reshape(len(values), -1),
                   delimiter=",", fmt="%.9g")  # fmt: skip

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Close the parts; rank 0 joins them under a header and renames the result into place."""
        self._part.close()
        trainer.strategy.barrier("prediction parts written")
        if trainer.is_global_zero:
            parts = [self._part_path(rank) for rank in range(trainer.world_size)]
            names = getattr(trainer.datamodule, "target_names", None) or _default_names(parts[0])
            assembled = self.path.with_name(f".{self.path.name}.{self._token}.tmp")
            with open(assembled, "w") as output:
                csv.writer(output, lineterminator="\n").writerow(names)  # quotes "a,b" names
                for part in parts:
                    with open(part) as source:
                        shutil.copyfileobj(source, output)
                output.flush()
                os.fsync(output.fileno())
            os.replace(assembled, self.path)
            for part in parts:
                part.unlink(missing_ok=True)
            with open(self.path) as written:
                rows = sum(1 for _ in csv.reader(written)) - 1
            noun = "prediction" if rows == 1 else "predictions"
            print(f"linreg: wrote {rows} {noun} to {self.path}", flush=True)
        trainer.strategy.barrier("predictions file written")

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Leave nothing half-written behind."""
        if self._part is not None and not self._part.closed:
            self._part.close()
        for leftover in self.path.parent.glob(f".{self.path.name}.{self._token}.*"):
            leftover.unlink(missing_ok=True)


def _default_names(part: Path) -> list[str]:
    with open(part) as file:
        first = file.readline()
    width = first.count(",") + 1 if first else 1
    return ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
