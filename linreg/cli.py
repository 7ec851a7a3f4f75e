"""The ``linreg`` command: LightningCLI with linreg's defaults, links, safe resume and summary."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from jsonargparse import Namespace, lazy_instance
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from linreg.callbacks import DivergenceGuard, FitPlot, HParamsMetrics, OptimumGap, ParameterLogger
from linreg.checkpointing import AtomicCheckpointIO, find_checkpoint, load_checkpoint
from linreg.data import SyntheticDataModule
from linreg.errors import UserInputError, find_user_error, one_line
from linreg.model import DEFAULT_LR, LinearRegression
from linreg.run_logger import RunLogger
from linreg.summary import fit_summary

PROGRESS_BAR_REFRESH_RATE = 10
# linreg's own callbacks: each configurable (--fit_plot.every_n_epochs 2), removable (--fit_plot null)
SWITCHABLE_CALLBACKS: dict[str, type[Callback]] = {
    "divergence_guard": DivergenceGuard,
    "parameter_logger": ParameterLogger,
    "optimum_gap": OptimumGap,
    "fit_plot": FitPlot,
    "hparams_metrics": HParamsMetrics,
}
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 10,
    "log_every_n_steps": 10,
    "logger": lazy_instance(RunLogger, save_dir=".", name="lightning_logs", default_hp_metric=False),
}
# Set from the checkpoint when one is given, so they must not be restored from it.
LINKED = ("in_features", "out_features")


class LinRegParser(LightningArgumentParser):
    """LightningCLI's parser, with mistakes reported in one line (``LINREG_DEBUG=1``: in full)."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        """Print ``linreg: error: <option>: <problem>`` and exit with status 2."""
        if os.environ.get("LINREG_DEBUG") or not self.exit_on_error:
            return super().error(message, ex)
        print(f"linreg: error: {one_line(message)} (see: linreg --help)", file=sys.stderr)
        sys.exit(2)


class LinRegCLI(LightningCLI):
    """LightningCLI with linreg's model, data, callbacks and checkpoint handling as defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parser_class", LinRegParser)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the feature counts to the data; add linreg's callbacks and defaults."""
        for target, compute in (("in_features", _num_features), ("out_features", _num_targets)):
            parser.link_arguments(
                "data", f"model.init_args.{target}", compute_fn=compute, apply_on="instantiate"
            )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        for key, callback in SWITCHABLE_CALLBACKS.items():
            parser.add_lightning_class_args(callback, key, subclass_mode=True, required=False)
        sgd = {"class_path": "torch.optim.SGD", "init_args": {"lr": DEFAULT_LR}}
        parser.set_defaults(
            {
                **{key: {"class_path": _class_path(c)} for key, c in SWITCHABLE_CALLBACKS.items()},
                "model": {"class_path": "linreg.LinearRegression", "init_args": {"optimizer": sgd}},
                "data": {"class_path": "linreg.SyntheticDataModule"},
                "checkpoint.monitor": "val/mse",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse, remembering the arguments so a checkpoint's settings can sit beneath them."""
        self._args = args
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Take the model's and data's settings from ``--ckpt_path``; the command line wins.

        ``--ckpt_path last`` (fit) means the newest ``last.ckpt`` under the logger's folder.
        Resuming a checkpoint of ``lightning_logs/version_N`` continues logging into that folder.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path:
            return
        path = self._resolve_ckpt_path(subcommand, ckpt_path)
        if path is None:
            self.config[subcommand].ckpt_path = None
            return
        checkpoint = load_checkpoint(path)
        defaults = {
            key: _class_config(checkpoint.get(hparams_key))
            for key, hparams_key in (
                ("model", "hyper_parameters"),
                ("data", "datamodule_hyper_parameters"),
            )
            if checkpoint.get(hparams_key)
        }
        self._parser(subcommand).set_defaults(defaults)
        super().parse_arguments(self.parser, self._args)
        self.config[subcommand].ckpt_path = str(path)
        if subcommand == "fit":
            _continue_in_run_folder(self.config[subcommand], path)

    def _resolve_ckpt_path(self, subcommand: str, ckpt_path: str) -> Path | None:
        """A path, or for ``last``/``best`` that file in the newest run folder that has one."""
        if ckpt_path not in ("last", "best"):
            return Path(ckpt_path)
        runs = _runs_folder(self.config[subcommand])
        found = find_checkpoint(runs, f"{ckpt_path}.ckpt") if runs else None
        if found is None and subcommand == "fit":
            print(f"linreg: no {ckpt_path}.ckpt under {runs}: starting a new run.", file=sys.stderr)
        elif found is None:
            raise UserInputError(
                f"--ckpt_path {ckpt_path}: no {ckpt_path}.ckpt under {runs}. Train first with "
                f"`linreg fit`, or give the path of a checkpoint."
            )
        return found

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Drop switched-off callbacks; add the atomic checkpoint writer and a light progress bar.

        Lightning's default bar redraws after every step, which costs ~0.1 ms: 15% of a step
        at batch 64 (scripts/benchmark.py). Ours redraws every few steps.
        """
        callbacks = [callback for callback in callbacks if callback is not None]
        given = [*(config.get("callbacks") or []), *callbacks]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBar) for callback in given
        ):
            callbacks.append(TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_RATE))
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(hasattr(plugin, "save_checkpoint") for plugin in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        return super()._instantiate_trainer(config, callbacks)

    def after_fit(self) -> None:
        """Say in plain words what was learned and where to look."""
        log_dir = self.trainer.log_dir  # a collective call under DDP: every process makes it
        if self.trainer.is_global_zero:
            print(fit_summary(self.trainer, self.model, self.datamodule, log_dir), flush=True)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _num_features(data: Any) -> int:
    return int(data.num_features)


def _num_targets(data: Any) -> int:
    return int(data.num_targets)


def _class_config(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's saved hyperparameters as a ``class_path``/``init_args`` config."""
    init_args = {
        key: value
        for key, value in hparams.items()
        if not key.startswith("_") and key not in LINKED
    }
    config: dict[str, Any] = {"init_args": init_args}
    if "_class_path" in hparams:
        config["class_path"] = hparams["_class_path"]
    return config


def _logger_args(config: Namespace) -> Namespace | None:
    """The init args of the run's TensorBoardLogger, if that is the logger."""
    logger = config.trainer.get("logger")
    if not isinstance(logger, Namespace) or "class_path" not in logger:
        return None
    module, _, name = logger.class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    return logger.init_args if isinstance(cls, type) and issubclass(cls, TensorBoardLogger) else None


def _runs_folder(config: Namespace) -> Path | None:
    """Where the logger puts its ``version_N`` folders (``./lightning_logs`` by default)."""
    args = _logger_args(config)
    return Path(args.save_dir) / args.name if args is not None else None


def _continue_in_run_folder(config: Namespace, checkpoint: Path) -> None:
    """Log a resumed run into the folder of the run it continues (``.../version_N/checkpoints``)."""
    args = _logger_args(config)
    runs = _runs_folder(config)
    if args is None or runs is None or args.get("version") is not None:
        return
    run_dir = checkpoint.resolve().parent.parent
    if checkpoint.parent.name == "checkpoints" and run_dir.parent == runs.resolve():
        args.version = run_dir.name


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
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None or os.environ.get("LINREG_DEBUG"):
            raise
        print(f"linreg: error: {user_error}", file=sys.stderr)
        sys.exit(2)


__all__ = ["LinRegCLI", "UserInputError", "main"]
