"""The ``linreg`` command: LightningCLI with linreg's defaults, links and end-of-fit summary."""

from __future__ import annotations

import os
import sys
from typing import Any

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from jsonargparse import lazy_instance

from linreg.callbacks import FitPlot, HParamsMetrics, OptimumGap, ParameterLogger
from linreg.data import SyntheticDataModule
from linreg.errors import UserInputError
from linreg.model import LinearRegression

PROGRESS_BAR_REFRESH_RATE = 10
TEACHING_CALLBACKS: dict[str, type[Callback]] = {
    "parameter_logger": ParameterLogger,
    "optimum_gap": OptimumGap,
    "fit_plot": FitPlot,
    "hparams_metrics": HParamsMetrics,
}
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 10,
    "log_every_n_steps": 10,
    "logger": lazy_instance(
        TensorBoardLogger, save_dir=".", name="lightning_logs", default_hp_metric=False
    ),
}


class LinRegCLI(LightningCLI):
    """LightningCLI whose model and data default to linreg's, with the feature counts linked."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link ``in_features``/``out_features`` to the data and set the default classes."""
        parser.link_arguments(
            "data", "model.init_args.in_features", compute_fn=_num_features, apply_on="instantiate"
        )
        parser.link_arguments(
            "data", "model.init_args.out_features", compute_fn=_num_targets, apply_on="instantiate"
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # linreg's own callbacks: configurable (--fit_plot.every_n_epochs 2), removable (--fit_plot null)
        for key, callback in TEACHING_CALLBACKS.items():
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=False)
        parser.set_defaults(
            {
                **{key: {"class_path": _class_path(c)} for key, c in TEACHING_CALLBACKS.items()},
                "model": {"class_path": "linreg.LinearRegression"},
                "data": {"class_path": "linreg.SyntheticDataModule"},
                "checkpoint.monitor": "val/mse",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
            }
        )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Add a progress bar that redraws every few steps, unless the user gave or disabled one.

        Lightning's default redraws after every step, which costs ~0.1 ms: 15% of a step
        at batch 64 (scripts/benchmark.py).
        """
        callbacks = [callback for callback in callbacks if callback is not None]  # switched off
        given = [*(config.get("callbacks") or []), *callbacks]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBar) for callback in given
        ):
            callbacks = [*callbacks, TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_RATE)]
        return super()._instantiate_trainer(config, callbacks)

    def after_fit(self) -> None:
        """Say in plain words what was learned and where to look."""
        if self.trainer.is_global_zero:
            print(_fit_summary(self), flush=True)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _num_features(data: Any) -> int:
    return int(data.num_features)


def _num_targets(data: Any) -> int:
    return int(data.num_targets)


def _fit_summary(cli: LightningCLI) -> str:
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    lines = ["", "linreg: training finished."]
    linear = getattr(model, "linear", None)
    if linear is not None:
        weight = linear.weight.detach().cpu().flatten().tolist()
        lines.append(f"  learned weight: {_fmt(weight)}")
        if linear.bias is not None:
            lines.append(f"  learned bias:   {_fmt(linear.bias.detach().cpu().tolist())}")
        true_weight = getattr(data, "true_weight", None)
        if true_weight is not None:
            lines.append(f"  true weight:    {_fmt(true_weight.flatten().tolist())}")
            lines.append(f"  true bias:      {_fmt(data.true_bias.tolist())}")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if metrics:
        lines.append("  final validation: " + ", ".join(f"{k} = {v:.4g}" for k, v in metrics.items()))
    if trainer.log_dir:
        lines.append(f"  logs: {trainer.log_dir}")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and getattr(checkpoint, "best_model_path", ""):
        lines.append(f"  best checkpoint: {checkpoint.best_model_path}")
        if getattr(checkpoint, "last_model_path", ""):
            lines.append(f"  last checkpoint: {checkpoint.last_model_path}")
    if trainer.logger is not None:
        root = os.path.dirname(os.path.normpath(trainer.logger.log_dir or "."))
        lines.append(f"  see the curves: tensorboard --logdir {root}")
    return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def main(args: ArgsType = None) -> None:
    """Run the ``linreg`` command (``fit``, ``validate``, ``test``, ``predict``)."""
    try:
        LinRegCLI(
            LinearRegression,
            SyntheticDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,
            args=args,
        )
    except Exception as error:
        user_error = _find_user_error(error)
        if user_error is None or os.environ.get("LINREG_DEBUG"):
            raise
        print(f"linreg: error: {user_error}", file=sys.stderr)
        sys.exit(2)


def _find_user_error(error: BaseException | None) -> UserInputError | None:
    """The user mistake behind ``error``, which jsonargparse and Lightning may have wrapped."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserInputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
