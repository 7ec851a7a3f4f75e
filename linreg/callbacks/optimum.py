"""How far is training from the exact least-squares optimum? Solved once, logged every epoch."""

from __future__ import annotations

from dataclasses import dataclass

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from linreg import exact
from linreg.errors import UserInputError
from linreg.least_squares import LeastSquares
from linreg.model import LinearModel, LinearRegression, _theta
from linreg.solution import LeastSquaresSolution
from linreg.solver import QRFactorization


@dataclass
class Gap:
    """Where training ended, against the optimum: objective values and the verdict."""

    reached: float  # the training objective (MSE, + L2 penalty) of the model
    optimum: float  # the optimum's
    excess: float  # reached - optimum, computed without cancellation (>= 0)
    relative: float  # excess / max(optimum, what counts as 0): the convergence measure
    rtol: float

    @property
    def converged(self) -> bool:
        """Within ``rtol`` of the optimum."""
        return self.relative <= self.rtol


class OptimumGap(Callback):
    """Solve least squares exactly on the training split once; log the gap every training epoch.

    The exact optimum comes from one float64 QR pass over the training split (shared with the
    learning-rate choice, :mod:`linreg.exact`), with the model's L2 penalty. Tags:
    ``optimum/mse`` (the optimum's training MSE), ``optimum/train_mse`` (the model's exact MSE
    on the whole training split), ``optimum/train_excess`` (training objective minus the
    optimum's, ≥ 0), ``optimum/relative_excess`` (that, relative to the optimum: what the
    convergence stop watches) and ``optimum/val_excess`` (validation MSE minus the optimum's,
    when there is a validation split). At the end of fit it prints both objectives and the gap.
    Skipped, with a note, for models that are not plain least squares (their own ``forward``,
    ``loss`` or ``penalty``, an L1 penalty).

    Args:
        rtol: how close to the optimum counts as converged (see :func:`linreg.exact.tolerance`).
    """

    def __init__(self, rtol: float = exact.RTOL) -> None:
        if not 0 < rtol < 1:
            raise UserInputError(f"rtol must be in (0, 1), got {rtol}.")
        self.rtol = rtol
        self.solution: LeastSquaresSolution | None = None
        self.train: QRFactorization | None = None
        self.val: LeastSquaresSolution | None = None  # its factor prices any θ on validation
        self.reference = 1.0  # the objective the excess is relative to
        self.gap: Gap | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Solve the training split exactly (and factorize the validation split)."""
        self.solution, self.gap = None, None
        if isinstance(pl_module, LeastSquares):  # it is the exact optimum
            return
        reason = _not_least_squares(pl_module)
        if reason:
            rank_zero_info(f"OptimumGap: no exact optimum to compare with ({reason}).")
            return
        train, val = exact.split_of(trainer, "train"), exact.split_of(trainer, "val")
        if train is None:
            return
        self.train, self.val = train.qr, val.solved() if val is not None else None
        self.solution = train.solved(float(pl_module.l2))
        optimum = float(self.solution.objective(self.solution.theta))
        self.reference = exact.tolerance(train.qr, optimum, self.rtol) / self.rtol

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the optimum's MSE and how far the model is from it (train and validation).

        Lightning runs this after the epoch's validation, so the gaps come at the same step as
        ``val/mse``; and they come every epoch also when there is no validation split.
        """
        if self.solution is None:
            return
        values = {name: value.float() for name, value in self.gaps(pl_module).items()}
        pl_module.log_dict(values, sync_dist=True)  # equal on every process; keeps Lightning quiet

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Keep the final gap; say in one line how close training came to the exact optimum."""
        if self.solution is None:
            return
        gaps = self.gaps(pl_module)
        optimum = float(self.solution.objective(self.solution.theta))
        excess = float(gaps["optimum/train_excess"])
        self.gap = Gap(optimum + excess, optimum, excess, excess / self.reference, self.rtol)
        if not trainer.is_global_zero:
            return
        optimizer = type(trainer.optimizers[0]).__name__ if trainer.optimizers else "Training"
        what, exact_name = ("MSE", "least-squares")
        if getattr(pl_module, "l2", 0):  # the objective includes the penalty: say so
            what, exact_name = ("MSE + L2 penalty", "ridge")
        print(
            f"{optimizer} reached a training {what} of {self.gap.reached:.6g}; the exact "
            f"{exact_name} optimum is {optimum:.6g} (gap {excess:.3g}).",
            flush=True,
        )

    def gaps(self, pl_module: LightningModule) -> dict[str, Tensor]:
        """The optimum's MSE and the model's distance from it, as float64 scalars."""
        assert self.solution is not None
        theta = _theta(pl_module)  # type: ignore[arg-type]
        cells = self.solution.rows * theta.shape[1]
        excess = self.solution.excess(theta)
        values = {
            "optimum/mse": self.solution.sse.sum() / cells,
            "optimum/train_mse": self.solution.sse_at(theta).sum() / cells,
            "optimum/train_excess": excess,
            "optimum/relative_excess": excess / self.reference,
        }
        if self.val is not None:
            change = self.val.sse_at(theta) - self.val.sse_at(self.solution.theta)
            values["optimum/val_excess"] = change.sum() / (self.val.rows * theta.shape[1])
        return values


def _not_least_squares(pl_module: LightningModule) -> str:
    if not isinstance(pl_module, LinearRegression):
        return "the model is not a linreg.LinearRegression"
    for cls, hook, reason in (
        (LinearModel, "forward", "the model's forward() is not its linear layer on features()"),
        (LinearRegression, "loss", "the model's loss() is not the mean squared error"),
        (LinearRegression, "penalty", "the model's penalty() is its own, not the L2 penalty"),
    ):
        if getattr(type(pl_module), hook) is not getattr(cls, hook):
            return reason
    if pl_module.l1:
        return "an L1 penalty has no closed-form solution"
    return ""
