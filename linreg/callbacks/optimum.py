"""How far is training from the exact least-squares solution? Computed once, logged every epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from linreg.errors import UserInputError
from linreg.model import LinearRegression


@dataclass
class Moments:
    """Sufficient statistics of a split for any linear fit: ``Σ z zᵀ``, ``Σ z yᵀ``, ``Σ y²``.

    ``z`` is a row of ``x`` with a trailing 1 when the model fits an intercept. Float64.
    """

    gram: Tensor
    cross: Tensor
    target_squares: Tensor
    rows: int

    def mse(self, theta: Tensor, reference: Tensor, reference_mse: Tensor) -> Tensor:
        """MSE of ``theta`` as ``reference_mse`` plus the exact difference (no cancellation)."""
        delta = theta - reference
        scale = self.rows * theta.shape[1]
        change = (delta * (self.gram @ delta)).sum() + 2 * (
            delta * (self.gram @ reference - self.cross)
        ).sum()
        return reference_mse + change / scale

    def mse_from_scratch(self, theta: Tensor) -> Tensor:
        """MSE of ``theta`` from the sums alone (used once, for the optimum itself)."""
        total = (
            self.target_squares.sum()
            - 2 * (theta * self.cross).sum()
            + (theta * (self.gram @ theta)).sum()
        )
        return torch.clamp(total / (self.rows * theta.shape[1]), min=0)


class OptimumGap(Callback):
    """Solve least squares exactly on the training split once; log the gap every training epoch.

    The normal equations are accumulated chunk by chunk (so data that is not all in memory
    works) and summed across DDP processes, then solved in float64 with the model's L2 penalty.
    Tags: ``optimum/mse`` (the optimum's training MSE), ``optimum/train_mse`` (the model's exact
    MSE on the whole training split), ``optimum/train_excess`` (training objective minus the
    optimum's, ≥ 0) and ``optimum/val_excess`` (validation MSE minus the optimum's, when there is
    a validation split). At the end of fit it prints both objectives and the gap. Skipped, with a
    note, for models that are not plain least squares (their own ``forward``, ``loss`` or
    ``penalty``, an L1 penalty, a layer that is not fed ``x`` directly).

    Args:
        chunk_rows: rows per chunk when accumulating the normal equations.
    """

    def __init__(self, chunk_rows: int = 65536) -> None:
        if chunk_rows < 1:
            raise UserInputError(f"chunk_rows must be at least 1, got {chunk_rows}.")
        self.chunk_rows = chunk_rows
        self.solution: Tensor | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Accumulate the training (and validation) moments and solve for the optimum."""
        self.solution = None
        reason = _not_least_squares(pl_module)
        if reason:
            rank_zero_info(f"OptimumGap: no exact optimum to compare with ({reason}).")
            return
        fit_intercept = pl_module.linear.bias is not None
        self.train = _moments(trainer, "train", fit_intercept, self.chunk_rows)
        self.val = _moments(trainer, "val", fit_intercept, self.chunk_rows)
        if self.train is None or self.train.gram.shape[0] != _theta(pl_module).shape[0]:
            rank_zero_info(
                "OptimumGap: the model's layer is not fed the data's x directly; skipped."
            )
            return
        self.hessian = self.train.gram / (self.train.rows * self.train.cross.shape[1])
        penalty = torch.full((self.hessian.shape[0],), float(pl_module.l2), dtype=torch.float64)
        if fit_intercept:
            penalty[-1] = 0.0  # the bias is not penalized
        self.hessian = self.hessian + torch.diag(penalty)
        rhs = self.train.cross / (self.train.rows * self.train.cross.shape[1])
        self.solution = torch.linalg.lstsq(self.hessian, rhs, driver="gelsd").solution
        self.optimum_mse = self.train.mse_from_scratch(self.solution)
        self.optimum_objective = self.optimum_mse + _l2(self.solution, penalty)
        self.val_optimum_mse = self.val.mse_from_scratch(self.solution) if self.val else None

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
        """Say in one line how close training came to the exact optimum."""
        if self.solution is None or not trainer.is_global_zero:
            return
        gaps = self.gaps(pl_module)
        reached = float(self.optimum_objective + gaps["optimum/train_excess"])
        optimizer = type(trainer.optimizers[0]).__name__ if trainer.optimizers else "Training"
        what, exact = ("MSE", "least-squares")
        if getattr(pl_module, "l2", 0):  # the objective includes the penalty: say so
            what, exact = ("MSE + L2 penalty", "ridge")
        print(
            f"{optimizer} reached a training {what} of {reached:.6g}; the exact {exact} optimum "
            f"is {float(self.optimum_objective):.6g} (gap "
            f"{float(gaps['optimum/train_excess']):.3g}).",
            flush=True,
        )

    def gaps(self, pl_module: LightningModule) -> dict[str, Tensor]:
        """The optimum's MSE and the model's distance from it, as float64 scalars."""
        assert self.solution is not None and self.train is not None
        theta = _theta(pl_module)
        delta = theta - self.solution
        values = {
            "optimum/mse": self.optimum_mse,
            "optimum/train_mse": self.train.mse(theta, self.solution, self.optimum_mse),
            "optimum/train_excess": (delta * (self.hessian @ delta)).sum(),
        }
        if self.val is not None and self.val_optimum_mse is not None:
            val_mse = self.val.mse(theta, self.solution, self.val_optimum_mse)
            values["optimum/val_excess"] = val_mse - self.val_optimum_mse
        return values


def _not_least_squares(pl_module: LightningModule) -> str:
    if not isinstance(pl_module, LinearRegression):
        return "the model is not a linreg.LinearRegression"
    for hook, reason in (
        ("forward", "the model's forward() is not the plain linear layer"),
        ("loss", "the model's loss() is not the mean squared error"),
        ("penalty", "the model's penalty() is its own, not the L2 penalty"),
    ):
        if getattr(type(pl_module), hook) is not getattr(LinearRegression, hook):
            return reason
    if pl_module.l1:
        return "an L1 penalty has no closed-form solution"
    return ""


def _theta(pl_module: LightningModule) -> Tensor:
    """The model as one ``(inputs [+ 1], outputs)`` float64 matrix: weights, then bias."""
    linear = pl_module.linear
    parts = [linear.weight.detach().T]
    if linear.bias is not None:
        parts.append(linear.bias.detach().unsqueeze(0))
    return torch.cat(parts).double().cpu()


def _l2(theta: Tensor, penalty: Tensor) -> Tensor:
    return (penalty.unsqueeze(1) * theta.square()).sum()


def _moments(trainer: Trainer, split: str, fit_intercept: bool, chunk_rows: int) -> Moments | None:
    """Sum the moments of ``split`` over this process's chunks, then over all processes."""
    sums: list[Tensor] | None = None
    rows = 0
    for x, y in _chunks(trainer, split, chunk_rows):
        z = x.double()
        if fit_intercept:
            z = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], dim=1)
        y = y.double()
        chunk = [z.T @ z, z.T @ y, y.square().sum(dim=0)]
        sums = chunk if sums is None else [a + b for a, b in zip(sums, chunk, strict=True)]
        rows += len(z)
    if sums is None:
        return None
    if trainer.world_size > 1:
        device = trainer.strategy.root_device
        sums = [trainer.strategy.reduce(s.to(device), reduce_op="sum") for s in sums]
        total = trainer.strategy.reduce(torch.tensor(float(rows), device=device), reduce_op="sum")
        rows = int(total.item())
    if rows == 0:
        return None
    gram, cross, squares = (s.cpu() for s in sums)
    return Moments(gram, cross, squares, rows)


def _chunks(trainer: Trainer, split: str, chunk_rows: int) -> Iterator[tuple[Tensor, Tensor]]:
    """This process's share of a split: big slices of linreg's datasets, else the dataloader."""
    datasets = getattr(trainer.datamodule, "datasets", None)
    if isinstance(datasets, dict) and split in datasets:
        dataset = datasets[split]
        step = chunk_rows * trainer.world_size
        starts = range(chunk_rows * trainer.global_rank, len(dataset), step)
        if not starts:  # no chunk for this process, but it must still join the sum
            starts = range(len(dataset), len(dataset) + 1)
        for start in starts:
            x, y = dataset[start : start + chunk_rows][:2]
            yield x, y
        return
    loaders = trainer.train_dataloader if split == "train" else trainer.val_dataloaders
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        for batch in loader or []:
            yield batch[0], batch[1]
