"""Run folders: claiming a new one, finding ``last``/``best``, the run a checkpoint belongs to.

Runs live in ``<save_dir>/<name>/<version>`` (``./lightning_logs/version_N`` by default), each
with its ``config.yaml`` and ``checkpoints/``. A new run's folder is claimed with ``mkdir``,
which only one process can win, so runs started together never share a folder.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

from linreg.errors import UserInputError
from linreg.notes import note

CHECKPOINT_NAMES = ("last", "best")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")


def run_name(version: Any) -> str:
    """The folder name of run ``version``: ``version_N`` for a number, else the name itself."""
    return f"version_{version}" if isinstance(version, int) else str(version)


def check_version(version: Any) -> None:
    """A run name is a plain folder name: no path, nothing that leaves the runs folder."""
    if isinstance(version, int) and version >= 0:
        return
    if not isinstance(version, str) or not PLAIN_NAME.fullmatch(version) or version in (".", ".."):
        raise UserInputError(
            f"--trainer.logger.init_args.version {version!r} is not a plain run name: give a "
            f"name of letters, digits, '_', '-' or '.', such as exp1 (runs live in the logger's "
            f"save_dir and name folders; set those to put them elsewhere)."
        )


def claim_run_folder(runs: Path, version: Any = None, prefix: str = "version") -> str:
    """Create the folder of a new run under ``runs`` and return its name.

    With ``version`` None, the next free ``<prefix>_N``; else that name, which must not exist.
    """
    try:
        runs.mkdir(parents=True, exist_ok=True)
        if version is not None:
            check_version(version)
            name = run_name(version)
            _claim(runs / name)
            return name
        number = 1 + max((_number(p.name, prefix) for p in runs.iterdir()), default=-1)
        while True:
            try:
                _claim(runs / f"{prefix}_{number}")
                return f"{prefix}_{number}"
            except FileExistsError:
                number += 1
    except FileExistsError:
        folder = runs / run_name(version)
        what = "a file" if folder.is_file() else "the folder of another run"
        raise UserInputError(
            f"{folder} is {what} (--trainer.logger.init_args.version {version}): choose another "
            f"name, or continue that run with --ckpt_path {folder / 'checkpoints' / 'last.ckpt'}."
        ) from None
    except PermissionError as error:
        raise UserInputError(
            f"cannot create a run folder in {runs}: permission denied. Run from a folder you can "
            f"write to, or set --trainer.logger.init_args.save_dir to one."
        ) from error
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserInputError(
            f"cannot create a run folder in {runs}: {(error.strerror or 'failed').lower()}. Set "
            f"--trainer.logger.init_args.save_dir to a folder with room to write."
        ) from error


def _claim(folder: Path) -> None:
    os.mkdir(folder)  # atomic: exactly one process creates it


def _number(name: str, prefix: str) -> int:
    match = re.fullmatch(rf"{prefix}_(\d+)", name)
    return int(match.group(1)) if match else -1


def resolve_checkpoint(subcommand: str, ckpt_path: str, runs: Path) -> Path | None:
    """A path; ``last``/``best`` name that file of the named run, else of the newest run.

    For ``fit`` a missing ``last``/``best`` starts a new run (``None``, with a note).
    """
    if ckpt_path not in CHECKPOINT_NAMES:
        return Path(ckpt_path)
    if (runs / "checkpoints").is_dir():  # a named run
        found = runs / "checkpoints" / f"{ckpt_path}.ckpt"
        if found.is_file():
            return found
        problem = f"the run {runs} has no {ckpt_path}.ckpt" + _why_missing(ckpt_path)
    else:
        ordered = runs_newest_first(runs)
        candidates = (run / "checkpoints" / f"{ckpt_path}.ckpt" for run in ordered)
        newest = next((path for path in candidates if path.is_file()), None)
        if newest is not None:
            if newest.parent.parent != ordered[0]:
                note(
                    f"the newest run, {ordered[0]}, has no {ckpt_path}.ckpt"
                    f"{_why_missing(ckpt_path)}; using {newest}."
                )
            return newest
        problem = f"no run with a {ckpt_path}.ckpt under {runs}"
    if subcommand == "fit":
        note(f"--ckpt_path {ckpt_path}: {problem}: starting a new run.")
        return None
    advice = "give the path of a .ckpt file"
    if ckpt_path == "best":
        advice += ", or --ckpt_path last"
    if not any(runs.glob("*/checkpoints/*.ckpt")) and not (runs / "checkpoints").is_dir():
        advice = "train first with `linreg fit`, or give the path of a .ckpt file"
    raise UserInputError(f"--ckpt_path {ckpt_path}: {problem}; {advice}.")


def _why_missing(ckpt_path: str) -> str:
    if ckpt_path != "best":
        return ""
    return " (no validation split to pick a best by, or it diverged before one was kept)"


def runs_newest_first(runs: Path) -> list[Path]:
    """The run folders under ``runs`` that hold checkpoints, the most recently written first."""
    written: dict[Path, float] = {}
    for checkpoint in runs.glob("*/checkpoints/*.ckpt"):
        run = checkpoint.parent.parent
        written[run] = max(written.get(run, 0.0), checkpoint.stat().st_mtime)
    return sorted(written, key=lambda run: written[run], reverse=True)


def run_config(checkpoint: Path) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to (``<run>/checkpoints/x.ckpt``)."""
    if checkpoint.parent.name != "checkpoints":
        return None
    config = checkpoint.parent.parent / "config.yaml"
    return config if config.is_file() else None


def run_of(checkpoint: Path, runs: Path) -> str | None:
    """The name of the run under ``runs`` that ``checkpoint`` belongs to, if it is one."""
    run_dir = checkpoint.resolve().parent.parent
    if checkpoint.parent.name == "checkpoints" and run_dir.parent == runs.resolve():
        return run_dir.name
    return None


__all__ = [
    "check_version",
    "claim_run_folder",
    "resolve_checkpoint",
    "run_config",
    "run_name",
    "run_of",
    "runs_newest_first",
]
