"""Checkpoints that survive a crash and load without running anyone's code.

* ``RunCheckpoint`` keeps the best checkpoint and rewrites ``last.ckpt`` at every epoch end.
* ``AtomicCheckpointIO`` writes each checkpoint to a temporary file in the same folder, syncs it to
  disk and renames it into place: a run killed at any moment leaves the old or the new file,
  never a truncated one. It loads with ``weights_only=True`` whatever the caller asks.
* ``load_checkpoint`` is the one way linreg reads a checkpoint: safe, and with a clear
  message when the file is missing, is not a checkpoint, or would run code when unpickled.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from linreg.errors import UserInputError

LIGHTNING_KEYS = {"state_dict", "pytorch-lightning_version"}  # what restoring a run reads


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, with ``last.ckpt`` rewritten at the end of every epoch.

    Since Lightning 2.6, ``save_last=True`` rewrites ``last.ckpt`` only at steps where a top-k
    checkpoint is saved too; with a ``monitor`` that is only when the metric improves, so a
    killed run would resume from its best epoch, not its last. Here ``last.ckpt`` follows every
    epoch (and every ``every_n_train_steps`` steps, as in Lightning). Without validation there is
    nothing to monitor: only ``last.ckpt`` is written, and Lightning's warning is spared.

    Ctrl-C while training is taken at the end of the current batch, not wherever the signal
    lands (inside a lock of the logger's writer thread, teardown could then wait forever); a
    second Ctrl-C stops at once. Either way Lightning shuts down gracefully, and the message
    says which checkpoint was kept.
    """

    _interrupted = False
    _previous_handler: Any = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Take Ctrl-C at batch ends from now on."""
        super().on_train_start(trainer, pl_module)
        self._interrupted = False
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._note_interrupt)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        """Stop here if Ctrl-C was pressed during the batch; else Lightning's step saving."""
        self._raise_if_interrupted()
        super().on_train_batch_end(trainer, pl_module, *args)

    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        """Stop here if Ctrl-C was pressed during the batch."""
        self._raise_if_interrupted()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's last saving; Ctrl-C is Python's own again."""
        self._restore_handler()
        super().on_train_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's saving, then ``last.ckpt`` if it was not written at this step already."""
        super().on_train_epoch_end(trainer, pl_module)
        # Lightning validates before this hook, so this is the true end of the epoch.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """After Ctrl-C, say which checkpoint was kept and how to continue from it."""
        self._restore_handler()
        super().on_exception(trainer, pl_module, exception)
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero:
            kept = self.last_model_path or self.best_model_path
            print(
                f"linreg: interrupted; the last checkpoint is kept: {kept}. Continue with: "
                f"linreg fit --ckpt_path {kept}"
                if kept
                else "linreg: interrupted before the first checkpoint; nothing was saved.",
                file=sys.stderr,
                flush=True,
            )

    def _note_interrupt(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # pressed twice: stop now
            raise KeyboardInterrupt
        self._interrupted = True

    def _raise_if_interrupted(self) -> None:
        if self._interrupted:
            self._interrupted = False
            raise KeyboardInterrupt

    def _restore_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _save_topk_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Any]) -> None:
        if self.monitor not in (None, *monitor_candidates) and not _validates(trainer):
            return  # no validation split: no metric to pick the best model by
        super()._save_topk_checkpoint(trainer, monitor_candidates)


def _validates(trainer: Trainer) -> bool:
    batches = trainer.num_val_batches
    return bool(sum(batches) if isinstance(batches, list) else batches)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file, ``fsync``, ``os.replace``; loads only plain data."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (same folder, so the rename is atomic)."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options.")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temporary, "xb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    def load_checkpoint(
        self,
        path: str | os.PathLike,
        map_location: Callable | None = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Load with ``weights_only=True`` semantics, always."""
        return load_checkpoint(path, map_location=map_location)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint safely: tensors and plain data only, nothing executed.

    Raises:
        UserInputError: the file is missing, unreadable, would run code, or is not a checkpoint.
    """
    file = Path(path)
    if file.is_dir():
        inside = sorted(file.rglob("*.ckpt"), key=lambda path: path.stat().st_mtime)
        example = f", e.g. {inside[-1]}" if inside else " (it holds none)"
        raise UserInputError(
            f"checkpoint {file} is a folder; give the path of a .ckpt file{example}, or "
            f"--ckpt_path last."
        )
    if not file.is_file():
        raise UserInputError(
            f"checkpoint {file} does not exist. Give the path of a .ckpt file, e.g. "
            f"lightning_logs/version_0/checkpoints/last.ckpt, or --ckpt_path last."
        )
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as error:  # torch.load's parsers raise anything on a file of another kind
        code = re.search(r"GLOBAL ([\w.]+)", str(error))
        if code:
            raise UserInputError(
                f"refused to load {file}: it is not a plain linreg checkpoint (loading it would "
                f"run code it names: {code.group(1)}). Only load checkpoints written by linreg or "
                f"Lightning."
            ) from error
        raise UserInputError(
            f"{file} is not a linreg checkpoint (torch.load cannot read it: "
            f"{type(error).__name__}). Give a .ckpt file written by `linreg fit`, completely "
            f"written."
        ) from error
    if not isinstance(checkpoint, dict) or not set(checkpoint) >= LIGHTNING_KEYS:
        raise UserInputError(
            f"{file} is not a linreg checkpoint (no Lightning model state in it). Give a .ckpt "
            f"file written by `linreg fit`."
        )
    return checkpoint


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
