"""Run folders and checkpoints on the command line: where ``last``/``best`` are, which run goes on.

Runs live in ``<save_dir>/<name>/<version>`` (``./lightning_logs/version_N`` by default), each
with its ``config.yaml`` and ``checkpoints/``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch.loggers import TensorBoardLogger

from linreg.errors import UserInputError


def option_value(argv: list[str], option: str) -> str | None:
    """The value given to ``option`` on a command line (``--opt value`` or ``--opt=value``)."""
    for index, arg in enumerate(argv):
        if arg == option and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def peek_run_folder(argv: list[str]) -> Path:
    """Where ``last``/``best`` are looked for, as the command line (or its ``--config``) says.

    The named run's folder with ``--trainer.logger.init_args.version``, else the folder of all
    runs (``./lightning_logs`` by default).
    """
    logger: dict[str, Any] = {}
    with contextlib.suppress(KeyError, TypeError):
        logger = dict(peek_config(argv)["trainer"]["logger"]["init_args"])
    options = {
        key: option_value(argv, f"--trainer.logger.init_args.{key}") or logger.get(key)
        for key in ("save_dir", "name", "version")
    }
    runs = Path(options["save_dir"] or ".") / (options["name"] or "lightning_logs")
    return named_run(runs, options["version"])


def peek_config(argv: list[str]) -> dict[str, Any]:
    """The ``--config`` file given on the command line, read ahead of parsing (else empty)."""
    config = option_value(argv, "--config")
    if not config or not Path(config).is_file():
        return {}
    try:
        content = yaml.safe_load(Path(config).read_text())
    except yaml.YAMLError:
        return {}  # the parser reports it
    return content if isinstance(content, dict) else {}


def named_run(runs: Path, version: Any) -> Path:
    """The folder of run ``version`` (``version_N`` for a number) under ``runs``; else ``runs``."""
    if version in (None, ""):
        return runs
    return runs / (f"version_{version}" if isinstance(version, int) else str(version))


def resolve_checkpoint(subcommand: str, ckpt_path: str, runs: Path | None) -> Path | None:
    """A path; ``last``/``best`` name that file of the named run, or else of the newest run."""
    if ckpt_path not in ("last", "best"):
        return Path(ckpt_path)
    run = runs if runs is not None and (runs / "checkpoints").is_dir() else None
    if run is None and runs is not None:
        run = newest_run(runs)
    found = run / "checkpoints" / f"{ckpt_path}.ckpt" if run is not None else None
    if found is not None and found.is_file():
        return found
    if run is not None:
        why = " (it had no validation split to pick a best by)" if ckpt_path == "best" else ""
        problem = f"the run {run} has no {ckpt_path}.ckpt{why}"
        advice = "give another checkpoint's path" + (" or --ckpt_path last" if why else "")
    else:
        problem, advice = f"no run with checkpoints under {runs}", "train first with `linreg fit`"
    if subcommand == "fit":
        print(f"linreg: --ckpt_path {ckpt_path}: {problem}: starting a new run.", file=sys.stderr)
        return None
    raise UserInputError(f"--ckpt_path {ckpt_path}: {problem}; {advice}.")


def newest_run(runs: Path) -> Path | None:
    """The run folder under ``runs`` whose checkpoints were written last."""
    written = [p for p in runs.glob("*/checkpoints/*.ckpt") if not p.name.startswith(".")]
    return max(written, key=lambda path: path.stat().st_mtime).parent.parent if written else None


def logger_args(config: Namespace) -> Namespace | None:
    """The init args of the run's TensorBoardLogger, if that is the logger."""
    logger = config.trainer.get("logger")
    if not isinstance(logger, Namespace) or "class_path" not in logger:
        return None
    module, _, name = logger.class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    return (
        logger.init_args if isinstance(cls, type) and issubclass(cls, TensorBoardLogger) else None
    )


def runs_folder(config: Namespace) -> Path | None:
    """Where the logger puts its ``version_N`` folders (``./lightning_logs`` by default)."""
    args = logger_args(config)
    return Path(args.save_dir) / args.name if args is not None else None


def run_folder(config: Namespace) -> Path | None:
    """The named run's folder if the logger names one, else the folder of all runs."""
    args, runs = logger_args(config), runs_folder(config)
    return named_run(runs, args.get("version")) if args is not None and runs else runs


def run_config(checkpoint: Path | None) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to (``<run>/checkpoints/x.ckpt``)."""
    if checkpoint is None or checkpoint.parent.name != "checkpoints":
        return None
    config = checkpoint.parent.parent / "config.yaml"
    return config if config.is_file() else None


def continue_in_run_folder(config: Namespace, checkpoint: Path) -> None:
    """Log a resumed run into the folder of the run it continues (``.../version_N/checkpoints``)."""
    args = logger_args(config)
    runs = runs_folder(config)
    if args is None or runs is None:
        return
    run_dir = checkpoint.resolve().parent.parent
    if checkpoint.parent.name == "checkpoints" and run_dir.parent == runs.resolve():
        args.version = run_dir.name
