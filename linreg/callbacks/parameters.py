"""Log the line's parameters as they move: weights, bias, and the distance to the truth."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from linreg.errors import UserInputError


class ParameterLogger(Callback):
    """Scalars of the weights and bias at the logging interval, a weight histogram per epoch.

    Tags: ``params/weight`` and ``params/bias`` (one input and output), else
    ``params/weight_<out>_<in>`` for up to ``max_scalars`` weights and ``params/weight_norm``;
    ``params/distance_to_true`` (``‖θ - θ*‖`` over weights and bias) when the data module knows
    the true parameters (``true_weight``/``true_bias``, as ``SyntheticDataModule`` does);
    ``params/weight_histogram`` once per epoch when there is more than one weight. The scalars
    are also written at the end of every epoch, so a short run still shows its final values.
    Steps are Lightning's, as for ``train/loss``: the index of the last step taken.

    Args:
        max_scalars: above this many weights, log only their norm (and the histogram).
    """

    def __init__(self, max_scalars: int = 10) -> None:
        if max_scalars < 0:
            raise UserInputError(f"max_scalars must be 0 or more, got {max_scalars}.")
        self.max_scalars = max_scalars

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: object, **kwargs: object
    ) -> None:
        """At the logger's interval, write the parameters (a handful of scalars)."""
        every = trainer.log_every_n_steps
        if not every or trainer.global_step % every or not hasattr(pl_module, "linear"):
            return
        self._log_scalars(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The epoch's final parameters (unless just written), and a histogram of the weights."""
        if not hasattr(pl_module, "linear") or not trainer.global_step:
            return
        every = trainer.log_every_n_steps
        if not every or trainer.global_step % every:  # else on_train_batch_end just wrote them
            self._log_scalars(trainer, pl_module)
        if pl_module.linear.weight.numel() < 2 or not trainer.is_global_zero:
            return
        weight = pl_module.linear.weight.detach().cpu()
        if not torch.isfinite(weight).all():
            return  # a diverged run has no histogram; DivergenceGuard reports it
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_histogram(
                    "params/weight_histogram", weight, trainer.global_step - 1
                )

    def _log_scalars(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        weight, bias = _parameters(pl_module)
        values: dict[str, Tensor] = {}
        if weight.numel() == 1:
            values["params/weight"] = weight.flatten()[0]
        else:
            values["params/weight_norm"] = weight.norm()
            if weight.numel() <= self.max_scalars:
                for (out, inp), value in _indexed(weight):
                    values[f"params/weight_{out}_{inp}"] = value
        if bias is not None:
            if bias.numel() == 1:
                values["params/bias"] = bias[0]
            else:
                values.update({f"params/bias_{i}": value for i, value in enumerate(bias)})
        distance = _distance_to_true(trainer, weight, bias)
        if distance is not None:
            values["params/distance_to_true"] = distance
        # Straight to the loggers: pl_module.log costs ~0.3 ms per value, more than a step.
        # The step matches Lightning's for train/loss (steps completed before this one).
        scalars = {name: float(value) for name, value in values.items()}
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step - 1)


def _parameters(pl_module: LightningModule) -> tuple[Tensor, Tensor | None]:
    linear = pl_module.linear
    bias = linear.bias.detach() if linear.bias is not None else None
    return linear.weight.detach(), bias


def _indexed(weight: Tensor) -> list[tuple[tuple[int, int], Tensor]]:
    return [((o, i), weight[o, i]) for o in range(weight.shape[0]) for i in range(weight.shape[1])]


def _distance_to_true(trainer: Trainer, weight: Tensor, bias: Tensor | None) -> Tensor | None:
    """``‖θ - θ*‖`` when the data module knows the true line and the shapes match."""
    data = trainer.datamodule
    true_weight = getattr(data, "true_weight", None)
    true_bias = getattr(data, "true_bias", None)
    if true_weight is None or true_weight.shape != weight.shape:
        return None
    squared = (weight - true_weight.to(weight.device)).square().sum()
    if bias is not None and true_bias is not None:
        squared = squared + (bias - true_bias.to(bias.device)).square().sum()
    return torch.sqrt(squared)
