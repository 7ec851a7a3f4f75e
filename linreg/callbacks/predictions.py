"""Write predictions to a CSV file (or standard output): one row per input row, all or nothing."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from lightning.fabric.utilities.data import sized_len
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from linreg.checkpoint_io import atomic_write
from linreg.errors import UserInputError

STDOUT = "-"


class PredictionWriter(Callback):
    """Stream each process's predictions to a part file; join them in order at the end.

    Rows come out in the input's order and count, also under multi-process DDP (each process
    predicts a contiguous block of rows, written back in rank order). The header names the
    target(s), from the data module's ``target_names`` when it has them. The file is assembled
    next to ``path``, synced and renamed into place at the end, so a failed or interrupted run
    leaves no partial file and an existing file at ``path`` is only replaced by a complete one.
    Part files left by a run that was killed (``kill -9``) are removed by the next run to the
    same output. ``path`` ``-`` writes to standard output instead. Predictions are turned back
    into the target's units with the data module's ``inverse_target`` when it has one; a
    prediction that is not finite (a float32 overflow) stops the run with a clear message.

    Args:
        path: the CSV file to write, or ``-`` for standard output.
    """

    def __init__(self, path: str) -> None:
        self.to_stdout = path == STDOUT
        self.path = Path("predictions.csv" if self.to_stdout else path)
        if self.to_stdout:  # the parts go to the working folder, which preflight checked
            self.path = Path.cwd() / "linreg-stdout.csv"
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._part: IO[str] | None = None
        self._rows = 0

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
        """Remove parts of killed runs; open this process's part (named after rank 0's token)."""
        self._token = trainer.strategy.broadcast(self._token)
        if trainer.is_global_zero:
            remove_stale_parts(self.path)
        trainer.strategy.barrier("stale prediction parts removed")
        self._part = open(self._part_path(trainer.global_rank), "w")  # noqa: SIM115
        self._rows = 0

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, *args: Any
    ) -> None:
        """Append this batch's predictions, in the target's units."""
        inverse = getattr(trainer.datamodule, "inverse_target", None)
        values: Tensor = inverse(outputs) if callable(inverse) else outputs
        values = values.detach().double().cpu()
        if not torch.isfinite(values).all():
            row = self._rows + int((~torch.isfinite(values)).any(dim=-1).nonzero()[0]) + 1
            where = f"row {row}" + (
                f" of process {trainer.global_rank}'s share" if trainer.world_size > 1 else ""
            )
            raise UserInputError(
                f"the prediction for {where} is not a finite number: the input is too large for "
                f"the model's float32 arithmetic. Rescale the data, or train with --data.normalize "
                f"true and --data.normalize_target true; nothing was written."
            )
        assert self._part is not None
        table = values.numpy().reshape(len(values), -1)
        np.savetxt(self._part, table, delimiter=",", fmt="%.9g")
        self._rows += len(table)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Close the parts; rank 0 joins them under a header and puts the result in place."""
        assert self._part is not None
        self._part.close()
        device = trainer.strategy.root_device
        rows = trainer.strategy.reduce(
            torch.tensor(float(self._rows), device=device), reduce_op="sum"
        )
        trainer.strategy.barrier("prediction parts written")
        if trainer.is_global_zero:
            parts = [self._part_path(rank) for rank in range(trainer.world_size)]
            names = getattr(trainer.datamodule, "target_names", None) or _default_names(parts[0])
            if self.to_stdout:
                self._join(parts, names, sys.stdout)
                sys.stdout.flush()
            else:
                with atomic_write(self.path, "w") as output:
                    self._join(parts, names, output)
            for part in parts:
                part.unlink(missing_ok=True)
            count = int(rows)
            noun = "prediction" if count == 1 else "predictions"
            # a report on standard error when the predictions themselves go to standard output
            where, report = (
                ("standard output", sys.stderr) if self.to_stdout else (self.path, sys.stdout)
            )
            print(f"linreg: wrote {count} {noun} to {where}", file=report, flush=True)
        trainer.strategy.barrier("predictions file written")

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """Leave nothing half-written behind, even when closing fails again (a full disk)."""
        if self._part is not None and not self._part.closed:
            with contextlib.suppress(OSError):
                self._part.close()
        for leftover in self.path.parent.glob(f".{self.path.name}.{self._token}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _part_path(self, rank: int) -> Path:
        return self.path.with_name(f".{self.path.name}.{self._token}.part{rank}")

    @staticmethod
    def _join(parts: list[Path], names: list[str], output: IO[str]) -> None:
        csv.writer(output, lineterminator="\n").writerow(names)  # quotes "a,b" names
        for part in parts:
            with open(part) as source:
                shutil.copyfileobj(source, output)


def remove_stale_parts(path: Path) -> None:
    """Remove part files of earlier runs to ``path`` whose process no longer exists."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)[-.][0-9a-f]+\.(part\d+|tmp)")
    for leftover in path.parent.glob(f".{path.name}.*"):
        match = pattern.fullmatch(leftover.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _default_names(part: Path) -> list[str]:
    with open(part) as file:
        first = file.readline()
    width = first.count(",") + 1 if first else 1
    return ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
