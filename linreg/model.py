"""The LightningModules: a linear layer with its metrics, and the one SGD trains on the MSE.

:class:`LinearModel` holds what every linreg model shares: ``nn.Linear``, the evaluation and
prediction steps, the metrics. :class:`LinearRegression` trains it by gradient descent with any
``torch.optim`` optimizer; :class:`~linreg.least_squares.LeastSquares` solves it exactly.
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable, instantiate_class
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, R2Score

from linreg import exact
from linreg.checkpoint_io import load_checkpoint
from linreg.errors import UserInputError
from linreg.learning_rate import Choice, Curvature, choose, steps_needed
from linreg.notes import note
from linreg.statistics import not_identifiable
from linreg.trust import OPTIMIZER, SCHEDULER, Kind, check_hyperparameters, resolve

AUTO = math.nan  # an optimizer argument left to linreg: chosen from the data's curvature
DEFAULT_OPTIMIZER: dict[str, Any] = {
    "class_path": "torch.optim.SGD",
    "init_args": {"lr": AUTO, "momentum": AUTO},
}
FALLBACK_LR = 0.01  # when the data's curvature is unknown (another data module, huge data)
FIXED_DEFAULT = "a fixed default"
AUTO_STEPS_PER_BATCH = 50  # optimizer steps per Lightning step when a batch is the whole split

# what gradient descent does with a dependent column: some value, one of many as good
ARBITRARY = (
    "gradient descent gives it one of many values that fit equally well "
    "(--model linreg.LeastSquares leaves it out)",
    "gradient descent gives them some of many values that fit equally well "
    "(--model linreg.LeastSquares leaves them out)",
)


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
        """Predictions ``(batch, out_features)`` for the rows ``x``: ``linear(features(x))``.

        Taken in the model's precision, whatever the data's (a CSV is read as float64).
        """
        return self.linear(self.features(x).to(self.linear.weight.dtype))

    def features(self, x: Tensor) -> Tensor:
        """The linear layer's inputs for the rows ``x``: ``x`` itself; override for a feature
        map (polynomial terms, ...), which the exact solutions then use too."""
        return x

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
        for name, metric in metrics.items():
            values = _compute(metric).flatten()
            # torchmetrics already reduced across processes; sync_dist keeps Lightning quiet
            self.log(name, values.mean(), prog_bar=name.endswith("mse"), sync_dist=True)
            if values.numel() > 1:
                per_output = {f"{name}_{i}": value for i, value in enumerate(values)}
                self.log_dict(per_output, sync_dist=True)
        metrics.reset()

    def _attached(self) -> Any:
        """The Trainer this model is attached to, or None (built alone, or in a preflight)."""
        try:
            return self.trainer
        except RuntimeError:
            return None


def _compute(metric: Metric) -> Tensor:
    """The metric's value; R² of fewer than two rows, which has none, is NaN instead of an error."""
    try:
        return metric.compute()
    except ValueError:  # torchmetrics: "Needs at least two samples to calculate r2 score."
        if not isinstance(metric, R2Score):
            raise
        return torch.full_like(metric.sum_squared_error, float("nan"))  # one per output


class LinearRegression(LinearModel):
    """Linear regression ``y = x Wᵀ + b`` trained by mini-batch gradient descent on the MSE.

    Args:
        in_features: columns of ``x`` (linked to the data module on the command line).
        out_features: columns of ``y``, one output per target.
        fit_intercept: learn the bias ``b`` (``nn.Linear``'s ``bias``); named as in scikit-learn
            so it cannot clash with the data module's true ``bias``.
        optimizer: a callable that builds any ``torch.optim`` optimizer from the parameters, e.g.
            ``--model.optimizer Adam --model.optimizer.lr 0.01``. An argument given as NaN (as
            ``lr`` is by default) is chosen from the training data's curvature when training
            starts (see :mod:`linreg.learning_rate`); ``None`` means SGD with the learning rate
            and momentum both chosen that way.
        lr_scheduler: optional callable that builds a scheduler from the optimizer, e.g.
            ``--model.lr_scheduler StepLR --model.lr_scheduler.step_size 5``
            (``ReduceLROnPlateau`` watches ``val/mse``).
        l1: weight of the L1 penalty ``l1 · Σ|W|`` added to the loss (bias not penalized).
        l2: weight of the L2 penalty ``l2 · Σ W²`` added to the loss (bias not penalized).
        lr_scheduler_interval: step the scheduler every ``"epoch"`` or every ``"step"`` (for
            per-batch schedules such as ``OneCycleLR``).
        steps_per_batch: optimizer steps taken on each batch. With one batch per epoch (the
            whole training split: batch gradient descent) every step sees the same rows, so
            ``k`` steps per batch are exactly ``k`` steps of BGD, and Lightning's per-step and
            per-epoch costs are paid once per ``k``. ``"auto"``: 50 then, else 1.
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
        steps_per_batch: int | Literal["auto"] = "auto",
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
        if steps_per_batch != "auto" and (
            isinstance(steps_per_batch, bool)
            or not isinstance(steps_per_batch, int)
            or steps_per_batch < 1
        ):
            raise UserInputError(
                f"steps_per_batch must be a positive integer or auto, got {steps_per_batch!r}."
            )
        self.l1, self.l2 = l1, l2
        self.lr_scheduler_interval = lr_scheduler_interval
        self.steps_per_batch = steps_per_batch
        self.optimizer = _callable_factory(optimizer, OPTIMIZER)
        self.lr_scheduler = _callable_factory(lr_scheduler, SCHEDULER)
        self.learning_rate: Choice | None = None  # how the data chose it, when it did
        self.steps_needed: float | None = None  # SGD's steps to the optimum, when known

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Loss of one mini-batch: data loss plus penalties; logged at the logger's interval.

        With ``steps_per_batch`` k > 1 and nothing in between that needs Lightning's hooks
        (one process, full precision, no gradient clipping), the first k - 1 steps are plain
        PyTorch steps taken here, and this loss (after them) makes Lightning's k-th step.
        """
        x, y = batch
        if self._plain_inner_steps():
            optimizer = self.optimizers().optimizer  # type: ignore[union-attr]
            params = [p for group in optimizer.param_groups for p in group["params"]]
            penalized = (
                bool(self.l1 or self.l2) or type(self).penalty is not LinearRegression.penalty
            )
            for _ in range(self.inner_steps() - 1):
                for param in params:  # zero_grad(set_to_none=True), without its dispatch cost
                    param.grad = None
                objective = self.loss(self.forward(x), y)
                (objective + self.penalty() if penalized else objective).backward()
                optimizer.step()
        loss = self.loss(self(x), y) + self.penalty()
        # self.log costs more than this whole step on small batches: only call it when the
        # logger will write (Lightning writes when (step + 1) % log_every_n_steps == 0), or
        # once an epoch when an epoch has fewer steps than that (a whole-split batch).
        every = self.trainer.log_every_n_steps
        if every and self.trainer.num_training_batches < every:
            self.log("train/loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        elif every and (self.global_step + 1) % every == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        """The configured optimizer (its NaN arguments chosen from the data), and scheduler."""
        curvature = self._curvature()
        if curvature is not None and self._attached() is not None:
            dependent = exact.dependent_columns(self.trainer, float(self.l2))
            if dependent:
                note(not_identifiable(dependent, ARBITRARY))
        optimizer = self.make_optimizer(self.parameters(), curvature)
        if self.learning_rate is not None and curvature is not None:
            self._announce(self.learning_rate, curvature, optimizer)
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

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """``steps_per_batch`` optimizer steps on this batch (the closure recomputes the loss).

        When :meth:`training_step` took the first ones itself, Lightning's one step remains.
        """
        for _ in range(1 if self._plain_inner_steps() else self.inner_steps()):
            optimizer.step(closure=optimizer_closure)

    def make_optimizer(self, params: Any, curvature: Curvature | None) -> torch.optim.Optimizer:
        """The optimizer the configuration describes, its NaN arguments chosen from ``curvature``.

        Without a curvature (another data module, more features than the exact pass affords)
        an automatic learning rate is 0.01, with a note.
        """
        spec = self.hparams.get("optimizer") or DEFAULT_OPTIMIZER
        if not isinstance(spec, dict):  # a callable that plain data cannot describe
            assert self.optimizer is not None
            return self.optimizer(params)
        cls = resolve(str(spec.get("class_path")), OPTIMIZER, import_allowed=True)
        if cls is None:
            raise UserInputError(
                f"--model.optimizer {spec.get('class_path')} is not {OPTIMIZER[0]}."
            )
        kwargs = dict(spec.get("init_args") or {})
        auto = {
            key for key, value in kwargs.items() if isinstance(value, float) and math.isnan(value)
        }
        if not auto:
            return cls(params, **kwargs)
        kwargs.update({key: 0.0 for key in auto})  # momentum (or any other) left to linreg: 0
        if "lr" not in auto:  # the user's learning rate, and no momentum they did not ask for
            return cls(params, **kwargs)
        momentum = None if "momentum" in auto else kwargs.get("momentum")
        batch = (
            getattr(self.trainer.datamodule, "train_batch_size", None) if self._attached() else None
        )
        choice = None
        if curvature is not None:
            choice = choose(cls.__name__, curvature, batch or curvature.rows, momentum)
        if choice is None:
            if self._attached() is not None:
                note(
                    f"{cls.__name__}: no learning rate can be chosen from the data here; using "
                    f"lr {FALLBACK_LR:g} (set --model.optimizer.lr)."
                )
            choice = Choice(FALLBACK_LR, None, FIXED_DEFAULT)
        kwargs["lr"] = choice.lr
        if choice.momentum is not None and "momentum" in auto:
            kwargs["momentum"] = choice.momentum
            if (
                choice.nesterov
                and choice.momentum > 0
                and "nesterov" in inspect.signature(cls).parameters
            ):
                kwargs["nesterov"], kwargs["dampening"] = True, 0.0
        if self._attached() is not None:
            self.learning_rate = choice
            self.hparams["optimizer"] = {"class_path": spec["class_path"], "init_args": kwargs}
        return cls(params, **kwargs)

    def _announce(self, choice: Choice, curvature: Curvature, optimizer: Any) -> None:
        """Say what the data chose, and whether gradient descent can reach the optimum in time."""
        name = type(optimizer).__name__
        if choice.reason == FIXED_DEFAULT:  # said already, with what to do about it
            return
        kind = "Nesterov momentum" if choice.nesterov else "momentum"
        shown = f"{choice.momentum:.3g}" if choice.momentum else ""
        shown = f"{choice.momentum:.6g}" if shown == "1" else shown  # 0.9999 is not 1
        momentum = f", {kind} {shown}" if choice.momentum else ""
        note(f"{name} lr {choice.lr:.3g}{momentum}, from {choice.reason}.")
        if name != "SGD":
            return
        trainer, split = self.trainer, exact.split_of(self.trainer)
        if split is None:
            return
        solution = split.solved(float(self.l2))
        theta = _theta(self)
        target = exact.tolerance(split.qr, float(solution.objective(solution.theta)), exact.RTOL)
        reduction = float(solution.excess(theta)) / target
        momentum_used = float(optimizer.param_groups[0].get("momentum", 0.0))
        batch = getattr(trainer.datamodule, "train_batch_size", curvature.rows)
        needed = steps_needed(choice, momentum_used, curvature, batch, reduction)
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
        batches = trainer.num_training_batches
        batches = batches if isinstance(batches, int) else _batches_per_epoch(trainer.datamodule)
        allowed = epochs * (batches or 1) * self.inner_steps()
        self.steps_needed = needed
        if needed > allowed:
            note(
                f"the training data is ill-conditioned (curvatures {curvature.largest:.3g} to "
                f"{curvature.smallest:.3g}): {name} would need about {needed:.3g} steps to come "
                f"within {exact.RTOL:g} of the least-squares optimum, and this run allows "
                f"{allowed:.3g}. For the exact answer use --model linreg.LeastSquares; or "
                f"rescale or drop the near-dependent columns."
            )

    def inner_steps(self) -> int:
        """Optimizer steps per batch: ``steps_per_batch``, resolved when it is ``"auto"``."""
        if self.steps_per_batch != "auto":
            return int(self.steps_per_batch)
        trainer = self._attached()
        if trainer is None:
            return 1
        batches = trainer.num_training_batches
        if not isinstance(batches, int):  # not known yet (while optimizers are configured)
            batches = _batches_per_epoch(trainer.datamodule)
        return AUTO_STEPS_PER_BATCH if batches == 1 else 1

    def _plain_inner_steps(self) -> bool:
        """Whether the extra steps on a batch can skip Lightning (nothing it adds is needed)."""
        trainer = self._attached()
        return (
            trainer is not None
            and self.inner_steps() > 1
            and trainer.world_size == 1
            and str(trainer.precision) in ("32-true", "64-true", "32", "64")
            and not trainer.gradient_clip_val
        )

    def _curvature(self) -> Curvature | None:
        """The training objective's curvatures, from the exact pass over the training split."""
        trainer = self._attached()
        if trainer is None or trainer.datamodule is None:
            return None
        if type(self).forward is not LinearModel.forward:  # its own function: not a linear fit
            return None
        split = exact.split_of(trainer, "train")
        return split.curvature(self.l2) if split is not None else None

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


def _batches_per_epoch(data: Any) -> int | None:
    """Training batches per epoch of linreg's data modules, before the dataloader exists."""
    datasets, batch = getattr(data, "datasets", {}), getattr(data, "train_batch_size", None)
    if "train" not in datasets or not batch:
        return None
    return math.ceil(len(datasets["train"]) / batch)


def _theta(model: LinearModel) -> Tensor:
    """The layer as one ``(inputs [+ 1], outputs)`` float64 matrix: weights, then bias."""
    linear = model.linear
    parts = [linear.weight.detach().T]
    if linear.bias is not None:
        parts.append(linear.bias.detach().unsqueeze(0))
    return torch.cat(parts).double().cpu()


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
