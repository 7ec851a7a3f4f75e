"""Train until converged: stop when the objective is within a tolerance of the exact optimum."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping

from linreg import exact
from linreg.callbacks.optimum import OptimumGap
from linreg.errors import UserInputError

MONITOR = "optimum/relative_excess"


class Convergence(EarlyStopping):
    """Lightning's ``EarlyStopping`` on :class:`OptimumGap`'s ``optimum/relative_excess``.

    Training stops at the end of the first epoch whose training objective is within
    :class:`OptimumGap`'s ``rtol`` of the exact least-squares optimum's (relative; for data a
    line fits exactly, relative to the target's variance), or after ``patience`` epochs without
    getting closer (SGD's mini-batch noise can keep it from going further). The tolerance is
    one option, ``--optimum_gap.rtol``, so that the stop and the end-of-fit verdict agree.
    ``linreg fit`` registers it unless ``--trainer.max_epochs`` is given, which then means
    exactly that many epochs. Without an exact optimum to measure against (a model of another
    kind, ``--optimum_gap null``), training stops after ``epochs_without_optimum`` epochs.

    Args:
        patience: epochs without a new closest gap before stopping.
        epochs_without_optimum: epochs to train when there is no gap to watch.
    """

    def __init__(self, patience: int = 100, epochs_without_optimum: int = 10) -> None:
        for name, value in (
            ("patience", patience),
            ("epochs_without_optimum", epochs_without_optimum),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{name} must be a positive integer, got {value!r}.")
        super().__init__(
            monitor=MONITOR, mode="min", stopping_threshold=exact.RTOL, patience=patience,
            strict=False, check_on_train_epoch_end=True,
        )  # fmt: skip
        self.epochs_without_optimum = epochs_without_optimum

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Take the tolerance from :class:`OptimumGap`, the one place it is set."""
        gap = next((c for c in trainer.callbacks if isinstance(c, OptimumGap)), None)
        if gap is not None:
            self.stopping_threshold = gap.rtol

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop when close enough or stuck; without a gap to watch, after a few epochs."""
        if MONITOR not in trainer.callback_metrics:
            if trainer.current_epoch + 1 >= self.epochs_without_optimum:
                trainer.should_stop = True
            return
        super().on_train_epoch_end(trainer, pl_module)
