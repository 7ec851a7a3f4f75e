"""The ``linreg`` command: LightningCLI with linreg's defaults, safe checkpoints and summary."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from linreg.callbacks import (
    Convergence,
    DivergenceGuard,
    FitPlot,
    GracefulStop,
    HParamsMetrics,
    OptimumGap,
    ParameterLogger,
)
from linreg.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from linreg.errors import UserInputError, find_user_error
from linreg.model import DEFAULT_OPTIMIZER, LinearModel
from linreg.notes import note
from linreg.parsing import CommandLine, one_line, read_command_line
from linreg.preflight import (
    check_checkpoint_fits,
    check_epochs_left,
    check_intercept,
    check_kinds,
    check_optimizer,
    check_predictions_path,
    check_training_length,
)
from linreg.runs import check_version, claim_run_folder, resolve_checkpoint, run_config, run_of
from linreg.summary import fit_summary, save_statistics
from linreg.trainer import LinRegTrainer
from linreg.trust import DATA, MODEL, check_hyperparameters, check_run_config

PROGRESS_BAR_REFRESH_RATE = 10
# linreg's own callbacks for fit, each configurable (--fit_plot.every_n_epochs 10) and
# removable (--fit_plot null)
FIT_CALLBACKS: dict[str, type[Callback]] = {
    "divergence_guard": DivergenceGuard,
    "parameter_logger": ParameterLogger,
    "optimum_gap": OptimumGap,
    "convergence": Convergence,  # after optimum_gap: it watches what that logs
    "fit_plot": FitPlot,
    "hparams_metrics": HParamsMetrics,
}
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 1000,  # a cap: training stops once converged (Convergence)
    "log_every_n_steps": 25,
    # a plain config, not jsonargparse's lazy_instance, which costs 0.1 s at import
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": ".", "name": "lightning_logs", "default_hp_metric": False},
    },
}
# linreg compare's default data: the tutorial's 50 points of y = 3x + 0.8, all to train on
COMPARE_DATA = {
    "class_path": "linreg.SyntheticDataModule",
    "init_args": {"n_samples": 50, "val_fraction": 0.0, "test_fraction": 0.0},
}
# Set from the data when the model is built, so never taken from a checkpoint.
LINKED = ("in_features", "out_features")
DESCRIPTION = (
    "Train, evaluate and use linear regression models with PyTorch Lightning. "
    "Start with `linreg fit`; `linreg fit --help` lists every option."
)


class LinRegCLI(LightningCLI):
    """LightningCLI with linreg's model, data, callbacks and checkpoint handling as defaults."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's four, and ``compare`` (``LinRegTrainer.compare``)."""
        return {**LightningCLI.subcommands(), "compare": {"model", "datamodule"}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_class", LinRegTrainer)
        self.command_line = CommandLine()
        self.checkpoint: Path | None = None
        self.checkpoint_content: dict[str, Any] = {}
        self.claimed: Path | None = None  # the run folder this command created
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the model's size to the data; add linreg's callbacks and defaults."""
        for target, compute in (("in_features", _num_features), ("out_features", _num_targets)):
            parser.link_arguments(
                "data", f"model.init_args.{target}", compute_fn=compute, apply_on="instantiate"
            )
        parser.add_class_arguments(ModelCheckpoint, "checkpoint")
        for key, callback in FIT_CALLBACKS.items():
            parser.add_subclass_arguments(callback, key, required=False)
        parser.set_defaults(
            {
                **{key: {"class_path": _class_path(c)} for key, c in FIT_CALLBACKS.items()},
                "model": {
                    "class_path": "linreg.LinearRegression",
                    "init_args": {"optimizer": DEFAULT_OPTIMIZER},
                },
                "data": {"class_path": "linreg.SyntheticDataModule"},
                "checkpoint.monitor": "val/mse",
                "checkpoint.filename": "best",
                "checkpoint.enable_version_counter": False,
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse; with ``--ckpt_path``, the checkpoint's model and data settings are the defaults.

        So ``linreg predict --ckpt_path C --data.path new.csv`` rebuilds the model and the data
        module from the checkpoint alone, and whatever the command line gives wins. A fit that
        continues a run also starts from that run's ``config.yaml`` (epochs, callbacks, seed).
        What is read from disk is checked first (:mod:`linreg.trust`): it may only name classes
        linreg has loaded, of the kind expected where they stand.
        """
        if isinstance(args, (dict, Namespace)):
            return super().parse_arguments(parser, args)
        argv = list(sys.argv[1:] if args is None else args)
        line = self.command_line = read_command_line(argv, self.subcommands())
        if line.subcommand is not None:
            at = argv.index(line.subcommand) + 1
            argv[at:at] = self._settings_from_disk(line)
        try:  # what LightningCLI.parse_arguments does, without its warning about sys.argv
            self.config = parser.parse_args(argv)
        except argparse.ArgumentError as error:
            raise UserInputError(self._parse_error(error)) from None
        if self.checkpoint is not None:
            config = self.config[line.subcommand]
            config.ckpt_path = str(self.checkpoint)
            logger = _logger_args(config)
            run = run_of(self.checkpoint, _runs_folder(logger)) if logger is not None else None
            if line.subcommand == "fit" and logger is not None and run is not None:
                logger.version = run  # a resumed fit logs into the run it continues
        return None

    def _settings_from_disk(self, line: CommandLine) -> list[str]:
        """``--config`` arguments holding the checkpoint's (or its run's) settings, checked."""
        assert line.subcommand is not None
        injected: list[str] = []
        # a data class the user chose starts from its own defaults, unless it is the
        # checkpoint's own (named to trust it): then it keeps the checkpoint's settings
        reset_data = ["--config", "data: null"] if line.data_class is not None else []
        if line.subcommand == "compare" and not reset_data:  # the tutorial's 50 points
            injected += ["--config", yaml.safe_dump({"data": COMPARE_DATA})]
        if not line.ckpt_path:
            return injected + reset_data
        self.checkpoint = resolve_checkpoint(line.subcommand, line.ckpt_path, line.run_folder())
        if self.checkpoint is None:
            return injected + reset_data
        self.checkpoint_content = checkpoint = load_checkpoint(self.checkpoint)
        own_config = run_config(self.checkpoint) if line.subcommand == "fit" else None
        if own_config is not None:
            content = _yaml(own_config)
            check_run_config(content, own_config, line.trusted, FIT_CALLBACKS)
            content.pop("ckpt_path", None)
            return ["--config", yaml.safe_dump(content), *injected, *reset_data]
        settings: dict[str, Any] = {}
        sources = {
            "model": (MODEL, "hyper_parameters"),
            "data": (DATA, "datamodule_hyper_parameters"),
        }
        for key, (kind, entry) in sources.items():
            hparams = checkpoint.get(entry)
            default = "linreg.LinearRegression" if kind is MODEL else "linreg.SyntheticDataModule"
            if not hparams:
                continue
            if key == "data" and line.data_class is not None:
                if line.data_class != hparams.get("_class_path", default):
                    continue  # another class: its own defaults (the checkpoint's, named: kept)
                reset_data = []
            check_hyperparameters(hparams, key, self.checkpoint, default, line.trusted)
            settings[key] = _class_config(hparams, default)
        config = ["--config", yaml.safe_dump(settings)] if settings else []
        return config + injected + reset_data

    def _parse_error(self, error: argparse.ArgumentError) -> str:
        problem = one_line(str(error))
        broken = next((c for c in self.command_line.configs if not _valid_yaml(c)), None)
        if broken is not None and problem.startswith("the config file"):
            problem = problem.replace("the config file", f"--config {broken}", 1)
        subcommand = self.command_line.subcommand
        return f"{problem} (see: linreg {subcommand + ' ' if subcommand else ''}--help)"

    def _parse_ckpt_path(self) -> None:
        """Do nothing: :meth:`parse_arguments` has applied the checkpoint's settings already.

        Lightning 2.6's own version parses the checkpoint's hyperparameters over the command
        line (so ``--model.*`` options given with ``--ckpt_path`` are lost: Lightning PR #21455)
        and hands whatever class they name to jsonargparse unchecked. There is no public hook
        for this yet (``adapt_checkpoint_hparams``, Lightning PR #21408, is not released), so
        this private method is overridden; tests/test_cli.py fails loudly if Lightning renames
        it or adds the public hook.
        """

    def before_instantiate_classes(self) -> None:
        """Refuse, before anything is built or written, runs that cannot do what was asked."""
        subcommand = self.subcommand
        assert subcommand is not None
        config = self.config[subcommand]
        check_kinds(config)
        if subcommand not in ("fit", "compare") and not config.get("ckpt_path"):
            raise UserInputError(
                f"linreg {subcommand} needs a trained model: add --ckpt_path best (the best "
                f"checkpoint of the newest run), last, or the path of a .ckpt file."
            )
        if subcommand in ("validate", "test") and _data_path_given(self.command_line):
            split, other = ("val", "test") if subcommand == "validate" else ("test", "val")
            fraction = config.data.init_args.get(f"{split}_fraction")
            note(
                f"{subcommand} scores only the {split} split of {_data_path(config)}: "
                f"{split}_fraction={fraction} of its rows, drawn with --data.seed, as in "
                f"training. To score most of a new file's rows: --data.{other}_fraction 0 "
                f"--data.{split}_fraction 0.9."
            )
        if subcommand == "predict":
            inputs = [config.get("ckpt_path"), _data_path(config), *self.command_line.configs]
            check_predictions_path(config.get("predictions"), [i for i in inputs if i])
        logger = _logger_args(config)
        if logger is not None and logger.get("version") not in (None, ""):
            check_version(logger.version)
        if subcommand == "fit":
            check_training_length(config.trainer)
            if self.checkpoint is not None:
                check_epochs_left(self.checkpoint, self.checkpoint_content, config.trainer)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Check data and model, claim the run folder, build the Trainer with linreg's parts.

        Everything that can fail on the user's input fails here, before any folder is created.
        """
        subcommand = self.subcommand
        assert subcommand is not None
        self._check_instances(subcommand)
        config, given = self.config[subcommand], self.config_init[subcommand]
        trainer = given["trainer"]
        own = trainer.get("callbacks") or []  # `--trainer.callbacks X` gives one, not a list
        callbacks = [*(own if isinstance(own, (list, tuple)) else [own]), GracefulStop()]
        if subcommand == "fit":
            callbacks += [given[key] for key in FIT_CALLBACKS if given.get(key) is not None]
            if "--trainer.max_epochs" in self.command_line.options:  # exactly that many
                callbacks = [c for c in callbacks if not isinstance(c, Convergence)]
            if trainer.get("enable_checkpointing") is not False:  # false: no checkpoint at all
                callbacks += self._checkpoints(given["checkpoint"])
        to_stdout = subcommand == "predict" and config.get("predictions") == "-"
        if to_stdout:  # standard output carries the predictions: no progress bar there
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
            kwargs["enable_progress_bar"] = False
        elif trainer.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBar) for callback in callbacks
        ):
            callbacks.append(TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_RATE))
        kwargs["callbacks"] = callbacks
        if subcommand != "fit":  # nothing to save, and no state of the old run to restore
            kwargs["enable_checkpointing"] = False
        if subcommand in ("predict", "compare"):  # no run folder here (compare makes its own)
            kwargs["logger"] = False
            self.save_config_callback = None
        else:
            kwargs.update(self._run_folder(config))
        plugins = trainer.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(hasattr(plugin, "save_checkpoint") for plugin in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        try:
            return super().instantiate_trainer(**kwargs)
        except BaseException:  # e.g. a Trainer option Lightning refuses: leave no empty folder
            if self.claimed is not None:
                with contextlib.suppress(OSError):
                    self.claimed.rmdir()
                    self.claimed.parent.rmdir()  # the runs folder too, if it holds nothing else
            raise

    def instantiate_classes(self) -> None:
        """Build model, data and Trainer; a bad data file the user did not name is not quoted."""
        try:
            super().instantiate_classes()
        except Exception as error:  # jsonargparse wraps errors raised while linking arguments
            problem = find_user_error(error)
            if not isinstance(problem, UserInputError):
                raise
            raise self._data_error(problem) from error

    def _check_instances(self, subcommand: str) -> None:
        """Check data, checkpoint and optimizer, as built, for this subcommand."""
        check = getattr(self.datamodule, "check", None)
        if callable(check):
            check(subcommand)
        if self.checkpoint is not None:
            check_checkpoint_fits(
                self.checkpoint, self.checkpoint_content, self.model, self.datamodule
            )
        if subcommand == "fit":
            check_optimizer(self.model, self.datamodule)
        if subcommand in ("fit", "compare"):
            check_intercept(self.model, self.datamodule)

    def _data_error(self, error: UserInputError) -> UserInputError:
        """A data file the checkpoint names, not the user: say so, never quote its contents."""
        path = _data_path(self.config[self.subcommand]) if self.subcommand else None
        named = path is not None and str(path) in str(error)
        if self.checkpoint is None or not named or _data_path_given(self.command_line):
            return error
        return UserInputError(
            f"the data file {path}, which the checkpoint {self.checkpoint} was trained on, cannot "
            f"be used as it is now: give the data to use with --data.path FILE."
        )

    def _checkpoints(self, best: ModelCheckpoint) -> list[Callback]:
        """``last.ckpt`` every epoch; the best by ``--checkpoint.monitor`` when there is validation.

        Two plain ``ModelCheckpoint``s with their public options: Lightning 2.6 rewrites a
        ``save_last`` file only when a top-k file is saved at the same step, and its version
        counter forks ``last-v1.ckpt`` when options change between a run and its resume.
        """
        last = ModelCheckpoint(
            filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=True,
            enable_version_counter=False,
        )  # fmt: skip
        validates = getattr(self.datamodule, "val_fraction", None) != 0
        if best.monitor is not None and not validates:
            return [last]  # no validation split: nothing to pick a best by
        return [last, best]

    def _run_folder(self, config: Namespace) -> dict[str, Any]:
        """Trainer arguments that put this run in a folder of its own, claimed atomically.

        A new run claims ``version_N`` (or its given name) with ``mkdir``, which only one process
        can win; a resumed fit goes on in its run's folder. Without a logger, the run's files
        (config.yaml, fit.png, checkpoints) still get a fresh folder: linreg never writes over
        files it did not create.
        """
        logger = _logger_args(config)
        first = rank_zero_only.rank == 0  # other DDP processes are handed rank 0's folder
        if logger is None:
            if config.trainer.get("logger") not in (False, None) or config.trainer.get(
                "default_root_dir"
            ):
                return {}
            if not first:
                return {}
            self.claimed = Path("lightning_logs") / claim_run_folder(Path("lightning_logs"))
            return {"default_root_dir": str(self.claimed)}
        cls = _logger_class(config)
        arguments = dict(logger)
        resumed = self.subcommand == "fit" and self.checkpoint is not None
        version = logger.get("version")
        if first and not (resumed and version is not None):
            version = claim_run_folder(_runs_folder(logger), version if version != "" else None)
            self.claimed = _runs_folder(logger) / version
        if resumed and issubclass(cls, TensorBoardLogger):  # hide the killed run's later points
            arguments["purge_step"] = int(self.checkpoint_content.get("global_step", 0))
        return {"logger": cls(**{**arguments, "version": version})}

    def after_fit(self) -> None:
        """Say in plain words what was learned and where to look."""
        log_dir = self.trainer.log_dir  # a collective call under DDP: every process makes it
        if self.trainer.is_global_zero:
            save_statistics(self.model, log_dir)
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


def _class_config(hparams: dict[str, Any], default: str) -> dict[str, Any]:
    """A checkpoint's saved hyperparameters as a ``class_path``/``init_args`` config."""
    init_args = {
        key: value
        for key, value in hparams.items()
        if not key.startswith("_") and key not in LINKED
    }
    return {"class_path": hparams.get("_class_path", default), "init_args": init_args}


def _yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserInputError(f"{path}, the run's saved config, cannot be read: {error}") from error
    return content if isinstance(content, dict) else {}


def _valid_yaml(config: str) -> bool:
    try:
        yaml.safe_load(Path(config).read_text() if Path(config).is_file() else config)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return False
    return True


def _logger_args(config: Namespace) -> Namespace | None:
    """The init args of the run's logger, if it keeps runs in versioned folders."""
    logger = config.trainer.get("logger")
    if not isinstance(logger, Namespace) or "class_path" not in logger:
        return None
    return (
        logger.init_args
        if issubclass(_logger_class(config), (TensorBoardLogger, CSVLogger))
        else None
    )


def _logger_class(config: Namespace) -> type:
    from linreg.trust import resolve

    kind = ("a Lightning logger", (TensorBoardLogger, CSVLogger))
    return resolve(config.trainer.logger.class_path, kind, import_allowed=True) or type(None)


def _runs_folder(logger: Namespace) -> Path:
    return Path(logger.get("save_dir") or ".") / (logger.get("name") or "lightning_logs")


def _data_path(config: Namespace) -> str | None:
    data = config.get("data")
    init_args = data.get("init_args") if isinstance(data, Namespace) else None
    return init_args.get("path") if isinstance(init_args, Namespace) else None


def _data_path_given(line: CommandLine) -> bool:
    return bool({"--data.path", "--data.init_args.path"} & line.options)


def _quiet_lightning() -> None:
    """Drop Lightning's advertisements and a deprecation warning it raises itself each run."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡 Tip")
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # a whole-split batch is one step per epoch; linreg logs at every epoch's end anyway
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller")
    # a resumed run's checkpoint folder holds its earlier checkpoints, as it should
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # no validation split (val_fraction 0): an empty list of validation batches, on purpose
    warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
    # test/predict from a fit's checkpoint: the fit-only callbacks it names have nothing to do
    warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")


def debugging() -> bool:
    """``LINREG_DEBUG=1`` (or true, yes, on): show tracebacks instead of one-line errors."""
    return os.environ.get("LINREG_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _disk_error(error: BaseException) -> str | None:
    """A full, read-only or forbidden place to write, said in one line."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (
            errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
        ):  # fmt: skip
            where = f" while writing {error.filename}" if error.filename else ""
            return f"{error.strerror}{where}. Free some space or choose another place to write."
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return None


def main(args: ArgsType = None) -> None:
    """Run the ``linreg`` command (``fit``, ``validate``, ``test``, ``predict``)."""
    _quiet_lightning()
    # errors reach LinRegCLI.parse_arguments, which says them in one line
    # no abbreviated options: --trainer.max_epoch must not pass as --trainer.max_epochs
    strict: dict[str, Any] = {"exit_on_error": False, "allow_abbrev": False}
    strict.update(
        {name: {"exit_on_error": False, "allow_abbrev": False} for name in LinRegCLI.subcommands()}
    )
    try:
        LinRegCLI(
            LinearModel,  # any linreg model: LinearRegression by default
            LightningDataModule,  # any data module; SyntheticDataModule by default
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"description": DESCRIPTION, "prog": "linreg", **strict},
            args=args,
        )
    except SIGTERMException:
        sys.exit(128 + 15)  # as if SIGTERM had ended the process, after a graceful stop
    except BrokenPipeError:  # `linreg predict --predictions - | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as error:
        problem = find_user_error(error)
        message = str(problem) if problem is not None else _disk_error(error)
        if message is None or debugging():
            raise
        if rank_zero_only.rank == 0:  # under DDP every process fails alike: say it once
            print(f"linreg: error: {message}", file=sys.stderr)
        sys.exit(2)


__all__ = ["LinRegCLI", "UserInputError", "main"]
