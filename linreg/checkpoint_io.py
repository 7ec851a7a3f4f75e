"""Checkpoint files that survive a crash and load without running anyone's code.

* ``AtomicCheckpointIO`` writes each checkpoint to a temporary file in the same folder, syncs it to
  disk and renames it into place: a run killed at any moment leaves the old or the new file,
  never a truncated one. It loads with ``weights_only=True`` whatever the caller asks.
* ``load_checkpoint`` is the one way linreg reads a checkpoint: safe, and with a clear
  message when the file is missing, is not a checkpoint, or would run code when unpickled.
* ``atomic_write`` does the same for any other file a run writes (``fit.png``, predictions).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from linreg.errors import UserInputError

LIGHTNING_KEYS = {"state_dict", "pytorch-lightning_version"}  # what restoring a run reads


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file, ``fsync``, ``os.replace``; loads only plain data."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (same folder, so the rename is atomic)."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options.")
        with atomic_write(Path(path)) as file:
            torch.save(checkpoint, file)

    def load_checkpoint(
        self,
        path: str | os.PathLike,
        map_location: Callable | None = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Load with ``weights_only=True`` semantics, always."""
        return load_checkpoint(path, map_location=map_location)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint safely: tensors and plain data only, nothing executed.

    Raises:
        UserInputError: the file is missing, unreadable, would run code, or is not a checkpoint.
    """
    file = Path(path)
    if file.is_dir():
        inside = sorted(file.rglob("*.ckpt"), key=lambda path: path.stat().st_mtime)
        example = f", e.g. {inside[-1]}" if inside else " (it holds none)"
        raise UserInputError(
            f"checkpoint {file} is a folder; give the path of a .ckpt file{example}, or "
            f"--ckpt_path last."
        )
    if not file.is_file():
        raise UserInputError(
            f"checkpoint {file} does not exist. Give the path of a .ckpt file, e.g. "
            f"lightning_logs/version_0/checkpoints/last.ckpt, or --ckpt_path last."
        )
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as error:  # torch.load's parsers raise anything on a file of another kind
        code = re.search(r"GLOBAL ([\w.]+)", str(error))
        if code:
            raise UserInputError(
                f"refused to load {file}: it is not a plain linreg checkpoint (loading it would "
                f"run code it names: {code.group(1)}). Only load checkpoints written by linreg or "
                f"Lightning."
            ) from error
        raise UserInputError(
            f"{file} is not a linreg checkpoint (torch.load cannot read it: "
            f"{type(error).__name__}). Give a .ckpt file written by `linreg fit`, completely "
            f"written."
        ) from error
    if not isinstance(checkpoint, dict) or not set(checkpoint) >= LIGHTNING_KEYS:
        raise UserInputError(
            f"{file} is not a linreg checkpoint (no Lightning model state in it). Give a .ckpt "
            f"file written by `linreg fit`."
        )
    return checkpoint


@contextlib.contextmanager
def atomic_write(target: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file to write that appears at ``target`` complete, or not at all.

    Written to a temporary file beside ``target``, synced to disk, then renamed over it; on any
    failure (a full disk, Ctrl-C) the temporary file is removed and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, mode.replace("w", "x")) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
