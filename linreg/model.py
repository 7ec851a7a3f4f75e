"""The LightningModules: a linear layer with its metrics, and the one SGD trains on the MSE.

:class:`LinearModel` holds what every linreg model shares: ``nn.Linear``, the evaluation and
prediction steps, the metrics. :class:`LinearRegression` trains it by gradient descent with any
``torch.optim`` optimizer; :class:`~linreg.least_squares.LeastSquares` solves it exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable, instantiate_class
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from linreg.checkpoint_io import load_checkpoint
from linreg.errors import UserInputError
from linreg.trust import OPTIMIZER, SCHEDULER, Kind, check_hyperparameters, resolve

DEFAULT_LR = 0.5


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """Plain SGD at lr 0.5: stable for features in [0, 1] and fast (see the README's "Defaults")."""
    return torch.optim.SGD(params, lr=DEFAULT_LR)


class LinearModel(LightningModule):
    """``y = x Wᵀ + b`` as ``nn.Linear``, with validation, test and prediction steps and metrics.

    Subclasses say how it is fitted (``training_step``, ``configure_optimizers``). Checkpoints
    of every subclass have the same ``linear.weight``/``linear.bias`` state.

    Args:
        in_features: columns of ``x`` (linked to the data module on the command line).
        out_features: columns of ``y``, one output per target.
        fit_intercept: learn the bias ``b`` (``nn.Linear``'s ``bias``); named as in scikit-learn
            so it cannot clash with the data module's true ``bias``.
        dtype: the layer's precision: float32 for SGD, float64 for the exact solver.
    """

    def __init__(
        self,
        in_features: int = 1,
        out_features: int = 1,
        fit_intercept: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{name} must be at least 1, got {value!r}.")
        self.linear = nn.Linear(in_features, out_features, bias=fit_intercept, dtype=dtype)
        metrics = self.configure_metrics()
        self.val_metrics = metrics.clone(prefix="val/").set_dtype(dtype)
        self.test_metrics = metrics.clone(prefix="test/").set_dtype(dtype)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        """Lightning's ``load_from_checkpoint``, after checking that the file names no code.

        A checkpoint is plain data, but its hyperparameters name classes (the optimizer's, the
        model's) that loading would import; see :mod:`linreg.trust`.
        """
        if isinstance(checkpoint_path, (str, Path)):
            hparams = load_checkpoint(checkpoint_path).get("hyper_parameters") or {}
            check_hyperparameters(
                hparams, "model", Path(checkpoint_path), f"{cls.__module__}.{cls.__qualname__}"
            )
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Predictions ``(batch, out_features)`` for ``x`` of shape ``(batch, in_features)``.

        ``x`` is taken in the model's precision, whatever the data's (a CSV is read as float64).
        """
        return self.linear(x.to(self.linear.weight.dtype))

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Accumulate the validation metrics; they are computed and logged at epoch end."""
        x, y = batch
        self.val_metrics.update(self(x), y)

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Accumulate the test metrics; they are computed and logged at epoch end."""
        x, y = batch
        self.test_metrics.update(self(x), y)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Predictions for the batch's ``x`` (a target column, if present, is ignored)."""
        return self(batch[0])

    def on_validation_epoch_end(self) -> None:
        """Log ``val/mse``, ``val/mae``, ``val/r2`` (and per output ``val/mse_0``, … if several)."""
        self._log_metrics(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        """Log ``test/mse``, ``test/mae``, ``test/r2`` (and per output when several)."""
        self._log_metrics(self.test_metrics)

    def configure_metrics(self) -> MetricCollection:
        """The evaluation metrics, cloned for validation and test; override to change them.

        Each may return one value per output; the mean is logged as ``val/<name>`` and, with
        several outputs, each as ``val/<name>_<i>``. Called from ``__init__`` once ``linear``
        exists (a subclass's hyperparameters may not be saved yet: use ``self.linear``).
        """
        outputs = self.linear.out_features
        return MetricCollection(
            {
                "mse": MeanSquaredError(num_outputs=outputs),
                "mae": MeanAbsoluteError(num_outputs=outputs),
                "r2": R2Score(multioutput="raw_values"),
            }
        )

    def _log_metrics(self, metrics: MetricCollection) -> None:
        """Compute a stage's metrics (reduced across processes by torchmetrics), log, reset."""
        for name, values in metrics.compute().items():
            values = values.flatten()
            # torchmetrics already reduced across processes; sync_dist keeps Lightning quiet
            self.log(name, values.mean(), prog_bar=name.endswith("mse"), sync_dist=True)
            if values.numel() > 1:
                per_output = {f"{name}_{i}": value for i, value in enumerate(values)}
                self.log_dict(per_output, sync_dist=True)
        metrics.reset()


class LinearRegression(LinearModel):
    """Linear regression ``y = x Wᵀ + b`` trained by mini-batch gradient descent on the MSE.

    Args:
        in_features: columns of ``x`` (linked to the data module on the command line).
        out_features: columns of ``y``, one output per target.
        fit_intercept: learn the bias ``b`` (``nn.Linear``'s ``bias``); named as in scikit-learn
            so it cannot clash with the data module's true ``bias``.
        optimizer: a callable that builds any ``torch.optim`` optimizer from the parameters, e.g.
            ``--model.optimizer Adam --model.optimizer.lr 0.01``; ``None`` means SGD at lr 0.5.
        lr_scheduler: optional callable that builds a scheduler from the optimizer, e.g.
            ``--model.lr_scheduler StepLR --model.lr_scheduler.step_size 5``
            (``ReduceLROnPlateau`` watches ``val/mse``).
        l1: weight of the L1 penalty ``l1 · Σ|W|`` added to the loss (bias not penalized).
        l2: weight of the L2 penalty ``l2 · Σ W²`` added to the loss (bias not penalized).
        lr_scheduler_interval: step the scheduler every ``"epoch"`` or every ``"step"`` (for
            per-batch schedules such as ``OneCycleLR``).
    """

    def __init__(
        self,
        in_features: int = 1,
        out_features: int = 1,
        fit_intercept: bool = True,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        l1: float = 0.0,
        l2: float = 0.0,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__(in_features, out_features, fit_intercept)
        self.save_hyperparameters()
        for name, penalty in (("l1", l1), ("l2", l2)):
            if penalty < 0:
                raise UserInputError(f"{name} is a penalty weight and must be >= 0, got {penalty}.")
        # Checkpoints keep plain hyperparameters only, so they load with weights_only=True.
        for key in ("optimizer", "lr_scheduler"):
            self.hparams[key] = _plain_factory(self.hparams[key])
        if lr_scheduler_interval not in ("epoch", "step"):
            raise UserInputError(
                f"lr_scheduler_interval must be 'epoch' or 'step', got {lr_scheduler_interval!r}."
            )
        self.l1, self.l2 = l1, l2
        self.lr_scheduler_interval = lr_scheduler_interval
        self.optimizer = _callable_factory(optimizer, OPTIMIZER) or default_optimizer
        self.lr_scheduler = _callable_factory(lr_scheduler, SCHEDULER)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Loss of one mini-batch: data loss plus penalties; logged at the logger's interval."""
        x, y = batch
        loss = self.loss(self(x), y) + self.penalty()
        # self.log costs more than this whole step on small batches: only call it when the
        # logger will write (Lightning writes when (step + 1) % log_every_n_steps == 0).
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        """The configured optimizer, and scheduler if any."""
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": "val/mse",
                "interval": self.lr_scheduler_interval,
            },
        }

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """The data loss, mean squared error over all outputs; override for another loss."""
        return F.mse_loss(prediction, target.to(prediction.dtype))

    def penalty(self) -> Tensor | float:
        """``l1 · Σ|W| + l2 · Σ W²`` over the weights (not the bias); 0 when both are off."""
        penalty: Tensor | float = 0.0
        if self.l1:
            penalty = penalty + self.l1 * self.linear.weight.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * self.linear.weight.square().sum()
        return penalty


def _plain_factory(factory: Any) -> Any:
    """A plain-data description of an optimizer or scheduler factory, for the checkpoint.

    ``functools.partial(torch.optim.Adam, lr=0.01)`` becomes ``{"class_path":
    "torch.optim.Adam", "init_args": {"lr": 0.01}}``; plain values are kept.
    """
    if factory is None or isinstance(factory, (dict, str)):
        return factory
    target, kwargs = factory, {}
    if isinstance(factory, functools.partial) and not factory.args:
        target, kwargs = factory.func, dict(factory.keywords)
    if isinstance(target, type):
        return {"class_path": f"{target.__module__}.{target.__qualname__}", "init_args": kwargs}
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _callable_factory(factory: Any, kind: Kind) -> Any:
    """The factory itself, or one built from a ``{"class_path", "init_args"}`` description."""
    if isinstance(factory, dict):
        return functools.partial(_instantiate_from, factory, kind)
    if isinstance(factory, str):
        return functools.partial(_cannot_rebuild, factory)
    return factory


def _instantiate_from(description: dict[str, Any], kind: Kind, *args: Any) -> Any:
    """Build the optimizer or scheduler a plain description names, if linreg has it loaded."""
    if resolve(str(description.get("class_path")), kind) is None:
        raise UserInputError(
            f"{description.get('class_path')!r} is not {kind[0]} linreg has loaded: pass one "
            f"explicitly, e.g. --model.optimizer SGD --model.optimizer.lr 0.1."
        )
    return instantiate_class(args, description)


def _cannot_rebuild(description: str, *args: Any) -> Any:
    raise UserInputError(
        f"the checkpoint names the optimizer or scheduler {description!r}, which cannot be rebuilt "
        f"from plain data: pass one again, e.g. --model.optimizer SGD --model.optimizer.lr 0.1."
    )
