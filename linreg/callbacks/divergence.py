"""Stop at the first non-finite training loss, before it reaches a checkpoint."""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from linreg.errors import UserInputError

# A loss that starts above HUGE_LOSS points at the data's scale, not the learning rate. A loss
# that grows GROWTH times above its start (and above 1) is diverging even while still finite.
HUGE_LOSS, GROWTH = 1e10, 1e6


class TrainingDiverged(UserInputError):
    """The training loss became NaN or infinite (usually: the learning rate is too high)."""


class DivergenceGuard(Callback):
    """Watch every training loss without a device sync per step; stop when training diverges.

    Each step copies the loss into a small buffer on the device; the buffer is inspected (one
    sync) every ``check_every_n_steps`` steps, before every validation, at the end of every epoch
    and before any checkpoint is written, so a diverged model never overwrites a good checkpoint.
    Diverged means a NaN or infinite loss, or one a million times above the first loss (and
    above 1). The run then ends with :class:`TrainingDiverged`, which names the step and the
    learning rate, and suggests standardizing the data when the loss was huge from the start.

    Args:
        check_every_n_steps: inspect the buffer this often (default: the logging interval).
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise UserInputError(
                f"check_every_n_steps must be at least 1 (or null: the logging interval), got "
                f"{check_every_n_steps}."
            )
        self.check_every_n_steps = check_every_n_steps
        self._losses: Tensor | None = None
        self._first_step = 0
        self._count = 0
        self._first_loss: float | None = None  # the run's first loss: is the data's scale sane?

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, *args: Any
    ) -> None:
        """Record this step's loss; inspect the record every ``check_every_n_steps`` steps."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, Tensor):
            return
        every = self._interval(trainer)
        if self._losses is None or self._losses.device != loss.device:
            self._losses = torch.zeros(every, device=loss.device)
            self._first_step, self._count = trainer.global_step - 1, 0
        self._losses[self._count].copy_(loss.detach())
        self._count += 1
        if self._count == every:
            self.check(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Never validate (and then checkpoint) a diverged model."""
        if not trainer.sanity_checking:
            self.check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Inspect the steps since the last check."""
        self.check(trainer)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Refuse to write a checkpoint of a model whose training loss went non-finite."""
        self.check(trainer)

    def check(self, trainer: Trainer) -> None:
        """Raise :class:`TrainingDiverged` if a recorded loss is NaN or infinite; else reset."""
        if self._losses is None or self._count == 0:
            return
        losses = self._losses[: self._count]
        if self._first_loss is None:
            self._first_loss = float(losses[0])
        ceiling = GROWTH * max(self._first_loss, 1.0)
        healthy = torch.isfinite(losses) & (losses <= ceiling)
        if bool(healthy.all()):
            self._first_step, self._count = trainer.global_step, 0
            return
        bad = int((~healthy).nonzero()[0])
        step = self._first_step + bad + 1
        value = float(losses[bad])
        became = (
            f"became {value}"
            if not math.isfinite(value)
            else (f"grew from {self._first_loss:.3g} to {value:.3g}")
        )
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        self._count = 0
        saved = getattr(trainer.checkpoint_callback, "last_model_path", "") or getattr(
            trainer.checkpoint_callback, "best_model_path", ""
        )
        kept = f"the last good checkpoint is kept: {saved}" if saved else "no checkpoint written"
        why, scale = "", ""
        inner = getattr(trainer.lightning_module, "inner_steps", lambda: 1)()
        if not self._first_loss < HUGE_LOSS and inner > 1:  # seen after a batch's many steps
            why = f"; the loss was already {self._first_loss:.3g} after the first {inner} steps"
        elif not self._first_loss < HUGE_LOSS:  # before any step could grow it: the data
            why = f"; the loss was already {self._first_loss:.3g} at the first step"
            scale = f", so check the data's scale: {_standardize(trainer.datamodule)}"
        advice = (
            f"Try a smaller learning rate, e.g. --model.optimizer.lr {lr / 10:g}"
            if lr > 0
            else "A rate that is not positive climbs the loss: check --model.lr_scheduler.*"
        )
        raise TrainingDiverged(
            f"training diverged: the training loss {became} at step {step} (epoch "
            f"{trainer.current_epoch}) with learning rate {lr:g}. {advice}{why}{scale}; {kept}."
        )

    def _interval(self, trainer: Trainer) -> int:
        return max(1, self.check_every_n_steps or trainer.log_every_n_steps or 50)


def _standardize(data: object) -> str:
    """How to put the data on a scale of about 1: the file data's switches if they are off."""
    off = [name for name in ("normalize", "normalize_target") if getattr(data, name, None) is False]
    if off:
        return "standardize it with " + " ".join(f"--data.{name} true" for name in off)
    return "standardize the features and targets (mean 0, std 1), or change their units"
