"""Ctrl-C and SIGTERM end a run at the end of the current batch and say what was kept."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class GracefulStop(Callback):
    """Stop at a batch boundary on Ctrl-C (SIGINT) or SIGTERM; keep the last checkpoint.

    Ctrl-C is taken at the end of the current batch, not wherever the signal lands (inside a lock
    of the logger's writer thread, teardown could then wait forever); a second Ctrl-C stops at
    once. SIGTERM (what ``timeout``, SLURM, Kubernetes and CI send) is noted by Lightning's own
    handler, which stops fit, validate and test at the next batch; predict is stopped here. Either
    way Lightning shuts down gracefully: checkpoints and outputs already written stay intact, a
    half-written prediction file is removed, and the message says how to continue.
    """

    def __init__(self) -> None:
        self._interrupted = False
        self._previous_handler: Any = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Take Ctrl-C at batch ends from now on (main thread only: signals are delivered there)."""
        self._interrupted = False
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._note_interrupt)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Ctrl-C is Python's own again."""
        self._restore_handler()

    def on_train_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """Stop here if Ctrl-C was pressed during the batch."""
        self._stop_if_asked(trainer)

    def on_validation_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """Stop here if Ctrl-C was pressed during the batch."""
        self._stop_if_asked(trainer)

    def on_test_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """Stop here if Ctrl-C was pressed during the batch."""
        self._stop_if_asked(trainer)

    def on_predict_batch_end(self, trainer: Trainer, *args: Any, **kwargs: Any) -> None:
        """Stop here on Ctrl-C or SIGTERM (Lightning's predict loop does not watch SIGTERM)."""
        if trainer.received_sigterm:
            raise SIGTERMException
        self._stop_if_asked(trainer)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        """After Ctrl-C or SIGTERM, say what was kept and how to continue."""
        self._restore_handler()
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if not trainer.is_global_zero:
            return
        cause = "SIGTERM" if isinstance(exception, SIGTERMException) else "Ctrl-C"
        if trainer.state.fn != "fit":
            print(f"linreg: stopped by {cause}; nothing was written.", file=sys.stderr, flush=True)
            return
        kept = kept_checkpoint(trainer)
        print(
            f"linreg: interrupted by {cause}; the last checkpoint is kept: {kept}. Continue with: "
            f"linreg fit --ckpt_path {kept}"
            if kept
            else f"linreg: interrupted by {cause} before the first checkpoint; nothing was saved.",
            file=sys.stderr,
            flush=True,
        )

    def _note_interrupt(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # pressed twice: stop now
            raise KeyboardInterrupt
        self._interrupted = True

    def _stop_if_asked(self, trainer: Trainer) -> None:
        if self._interrupted:
            self._interrupted = False
            raise KeyboardInterrupt

    def _restore_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


def kept_checkpoint(trainer: Trainer) -> str:
    """The checkpoint to continue from: the last one written, else the best ("" if none)."""
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    # an unmonitored ModelCheckpoint keeps the newest state: linreg's last.ckpt
    callbacks.sort(key=lambda callback: callback.monitor is not None)
    for callback in callbacks:
        for path in (callback.last_model_path, callback.best_model_path):
            if path and Path(path).is_file():
                return path
    return ""
