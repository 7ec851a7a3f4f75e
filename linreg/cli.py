"""The ``linreg`` command: LightningCLI with linreg's defaults, links, safe resume and summary."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from linreg.callbacks import DivergenceGuard, PredictionWriter, TrainingInsights
from linreg.checkpointing import (
    AtomicCheckpointIO,
    RunCheckpoint,
    load_checkpoint,
)
from linreg.errors import UserInputError, find_user_error, one_line
from linreg.model import DEFAULT_LR, LinearRegression
from linreg.preflight import (
    check_checkpoint_fits,
    check_epochs_left,
    check_intercept,
    check_new_run_folder,
    check_optimizer,
    check_predictions_path,
)
from linreg.run_logger import RunLogger
from linreg.runs import (
    continue_in_run_folder,
    option_value,
    peek_config,
    peek_run_folder,
    resolve_checkpoint,
    run_config,
    run_folder,
)
from linreg.summary import fit_summary

PROGRESS_BAR_REFRESH_RATE = 10
# linreg's own callbacks: configurable (--insights.optimum_gap false), removable (--insights null)
SWITCHABLE_CALLBACKS: dict[str, type[Callback]] = {
    "divergence_guard": DivergenceGuard,
    "insights": TrainingInsights,
}
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 10,
    "log_every_n_steps": 25,
    # a plain config, not jsonargparse's lazy_instance, which costs 0.1 s at import
    "logger": {
        "class_path": f"{RunLogger.__module__}.{RunLogger.__qualname__}",
        "init_args": {"save_dir": ".", "name": "lightning_logs", "default_hp_metric": False},
    },
}
# Set from the checkpoint when one is given, so they must not be restored from it.
LINKED = ("in_features", "out_features")
DESCRIPTION = (
    "Train, evaluate and use linear regression models with PyTorch Lightning. "
    "Start with `linreg fit`; `linreg fit --help` lists every option."
)


class LinRegParser(LightningArgumentParser):
    """LightningCLI's parser, with mistakes reported in one line (``LINREG_DEBUG=1``: in full)."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        """Print ``linreg: error: <option>: <problem>`` and exit with status 2."""
        if os.environ.get("LINREG_DEBUG") or not self.exit_on_error:
            return super().error(message, ex)
        problem = one_line(message)
        config = option_value(sys.argv[1:], "--config")
        if config and problem.startswith("the config file"):
            problem = problem.replace("the config file", f"--config {config}", 1)
        subcommand = next((a for a in sys.argv[1:] if a in LinRegCLI.subcommands()), None)
        help_command = f"linreg {subcommand} --help" if subcommand else "linreg --help"
        print(f"linreg: error: {problem} (see: {help_command})", file=sys.stderr)
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
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
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
        """Parse; with ``--ckpt_path``, the checkpoint's model and data settings are the defaults.

        So ``linreg predict --ckpt_path C --data.path new.csv`` rebuilds the model and the data
        module from the checkpoint alone, and whatever the command line gives wins. A fit that
        continues a run also starts from that run's ``config.yaml`` (epochs, callbacks, seed).
        """
        self._args = args
        argv = (
            list(args) if isinstance(args, (list, tuple)) else sys.argv[1:] if args is None else []
        )
        subcommand = next((arg for arg in argv if arg in self.subcommands()), None)
        ckpt_path = option_value(argv, "--ckpt_path") or peek_config(argv).get("ckpt_path")
        self._checkpoint_resolved = bool(subcommand and ckpt_path)
        self._checkpoint: Path | None = None
        self._checkpoint_content: dict[str, Any] | None = None
        self._data_given = option_value(argv, "--data") is not None
        if subcommand and self._data_given:
            # A data class chosen on the command line starts from its own defaults: otherwise
            # jsonargparse would carry SyntheticDataModule's values for same-named options
            # (seed, noise, ...) over to it.
            self._parser(subcommand).set_defaults({"data": None})
        if subcommand and ckpt_path:
            self._use_checkpoint(subcommand, ckpt_path, peek_run_folder(argv))
            own_config = run_config(self._checkpoint) if subcommand == "fit" else None
            if own_config is not None:  # the run's own settings first; the command line wins
                at = argv.index(subcommand) + 1
                args = self._args = [*argv[:at], "--config", str(own_config), *argv[at:]]
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Point ``ckpt_path`` at the resolved file; a resumed fit logs into its run's folder."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path:
            return
        if not self._checkpoint_resolved:  # ckpt_path came from a config file: same, after the fact
            self._use_checkpoint(subcommand, ckpt_path, run_folder(self.config[subcommand]))
            super().parse_arguments(self.parser, self._args)
        config = self.config[subcommand]
        config.ckpt_path = str(self._checkpoint) if self._checkpoint is not None else None
        if subcommand == "fit" and self._checkpoint is not None:
            continue_in_run_folder(config, self._checkpoint)

    def _use_checkpoint(self, subcommand: str, ckpt_path: str, runs: Path | None) -> None:
        """Resolve ``ckpt_path``, load it safely, make its settings the subcommand's defaults.

        ``runs`` is where ``last``/``best`` are looked for: a named run's folder, or the folder
        of all runs.
        """
        self._checkpoint = resolve_checkpoint(subcommand, ckpt_path, runs)
        if self._checkpoint is not None:
            checkpoint = self._checkpoint_content = load_checkpoint(self._checkpoint)
            sources = {"model": "hyper_parameters", "data": "datamodule_hyper_parameters"}
            if self._data_given:  # the command line chose the data class itself
                del sources["data"]
            defaults = {
                key: _class_config(checkpoint[hparams])
                for key, hparams in sources.items()
                if checkpoint.get(hparams)
            }
            self._parser(subcommand).set_defaults(defaults)

    def before_instantiate_classes(self) -> None:
        """Refuse, before anything is built or written, runs that cannot do what was asked."""
        subcommand = self.config["subcommand"]
        config = self.config[subcommand]
        if subcommand != "fit" and not config.get("ckpt_path"):
            raise UserInputError(
                f"linreg {subcommand} needs a trained model: add --ckpt_path best (the best "
                f"checkpoint of the newest run), last, or the path of a .ckpt file."
            )
        if subcommand == "predict":
            check_predictions_path(config.get("predictions"))
        if subcommand == "fit" and self._checkpoint is None:
            check_new_run_folder(config)
        if subcommand == "fit" and self._checkpoint and self._checkpoint_content is not None:
            check_epochs_left(self._checkpoint, self._checkpoint_content, config.trainer)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Drop switched-off callbacks; add the atomic checkpoint writer and a light progress bar.

        Lightning's default bar redraws after every step, which costs ~0.1 ms: 15% of a step
        at batch 64 (scripts/benchmark.py). Ours redraws every few steps.
        """
        callbacks = [callback for callback in callbacks if callback is not None]
        if self.subcommand != "fit":  # nothing to save, and no state of the old run to restore
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
            config["enable_checkpointing"] = False
        given = [*(config.get("callbacks") or []), *callbacks]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBar) for callback in given
        ):
            callbacks.append(TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_RATE))
        if self.subcommand == "predict":  # nothing to log: no run folder, no config.yaml
            config["logger"] = False
            self.save_config_callback = None
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(hasattr(plugin, "save_checkpoint") for plugin in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        return super()._instantiate_trainer(config, callbacks)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
        """Give ``predict`` a ``--predictions FILE.csv`` option."""
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            parser.add_argument(
                "--predictions",
                type=str | None,
                default=None,
                help="CSV file to write the predictions to (one row per input row, in order).",
            )
        return parser

    def after_instantiate_classes(self) -> None:
        """Check data, checkpoint and optimizer before anything is written; add the writer."""
        check = getattr(self.datamodule, "check", None)
        if self.subcommand and callable(check):
            check(self.subcommand)
        if self._checkpoint is not None and self._checkpoint_content is not None:
            check_checkpoint_fits(
                self._checkpoint, self._checkpoint_content, self.model, self.datamodule
            )
        if self.subcommand == "fit":
            check_optimizer(self.model, self.datamodule)
            check_intercept(self.model, self.datamodule)
        if self.subcommand != "predict":
            return
        output = Path(self.config[self.subcommand].predictions)
        source = getattr(self.datamodule, "path", None)
        if source is not None and output.resolve() == Path(source).resolve():
            raise UserInputError(
                f"--predictions {output} is the input file itself; write to another file."
            )
        self.trainer.callbacks.append(PredictionWriter(str(output)))
        self.config_init[self.subcommand].return_predictions = False  # stream, do not keep

    def after_fit(self) -> None:
        """Say in plain words what was learned and where to look."""
        log_dir = self.trainer.log_dir  # a collective call under DDP: every process makes it
        if self.trainer.is_global_zero:
            print(fit_summary(self.trainer, self.model, self.datamodule, log_dir), flush=True)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _num_features(data: Any) -> int:
    return int(_data_attribute(data, "num_features"))


def _num_targets(data: Any) -> int:
    return int(_data_attribute(data, "num_targets"))


def _data_attribute(data: Any, name: str) -> Any:
    if not hasattr(data, name):
        raise UserInputError(
            f"the data module {type(data).__name__} has no `{name}`, which sets the model's size: "
            f"subclass linreg.ArrayDataModule, or give it `num_features` and `num_targets`."
        )
    return getattr(data, name)


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


def _quiet_lightning() -> None:
    """Drop Lightning's advertisements and a deprecation warning it raises itself each run."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡 Tip")
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def main(args: ArgsType = None) -> None:
    """Run the ``linreg`` command (``fit``, ``validate``, ``test``, ``predict``)."""
    _quiet_lightning()
    try:
        LinRegCLI(
            LinearRegression,
            LightningDataModule,  # any data module; SyntheticDataModule by default
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"description": DESCRIPTION, "prog": "linreg"},
            args=args,
        )
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None or os.environ.get("LINREG_DEBUG"):
            raise
        print(f"linreg: error: {user_error}", file=sys.stderr)
        sys.exit(2)


__all__ = ["LinRegCLI", "UserInputError", "main"]
