"""Checkpoints that survive a crash and load without running anyone's code.

* ``AtomicCheckpointIO`` writes each checkpoint to a temporary file in the same folder, syncs it to
  disk and renames it into place: a run killed at any moment leaves the old or the new file,
  never a truncated one. It loads with ``weights_only=True`` whatever the caller asks.
* ``load_checkpoint`` is the one way linreg reads a checkpoint: safe, and with a clear
  message when the file is missing, is not a checkpoint, or would run code when unpickled.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from linreg.errors import UserInputError


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file, ``fsync``, ``os.replace``; loads only plain data."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (same folder, so the rename is atomic)."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options.")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temporary, "xb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

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
    if not file.is_file():
        raise UserInputError(
            f"checkpoint {file} does not exist. Give the path of a .ckpt file, e.g. "
            f"lightning_logs/version_0/checkpoints/last.ckpt, or --ckpt_path last."
        )
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unsafe content"
        raise UserInputError(
            f"refused to load {file}: it is not a plain linreg checkpoint (loading it would need "
            f"to run code it contains: {reason}). Only load checkpoints written by linreg or "
            f"Lightning."
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UserInputError(
            f"cannot read {file} as a checkpoint ({type(error).__name__}: {error}). Is it a "
            f"linreg .ckpt file, completely written?"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserInputError(
            f"{file} is not a linreg checkpoint (no model state in it). Give a .ckpt file "
            f"written by `linreg fit`."
        )
    return checkpoint


def find_checkpoint(runs: Path, name: str = "last.ckpt") -> Path | None:
    """The most recently written ``version_*/checkpoints/<name>`` under ``runs``."""
    candidates = list(runs.glob(f"*/checkpoints/{name}"))
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


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
