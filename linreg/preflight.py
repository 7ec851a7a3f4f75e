"""Checks the ``linreg`` command makes before a run: what would fail later fails now, in one line.

Each raises :class:`~linreg.errors.UserInputError` before any run folder is created or touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningModule

from linreg.errors import UserInputError
from linreg.runs import logger_args, run_folder


def check_predictions_path(predictions: str | None) -> None:
    """``predict`` needs ``--predictions``, a file (not a folder) to write."""
    if not predictions:
        raise UserInputError(
            "linreg predict writes its predictions to a CSV file: add --predictions out.csv."
        )
    if Path(predictions).is_dir():
        raise UserInputError(
            f"--predictions {predictions} is a folder; give a file name, e.g. "
            f"{Path(predictions) / 'predictions.csv'}."
        )


def check_new_run_folder(config: Namespace) -> None:
    """A new run named with ``--trainer.logger.init_args.version`` must not reuse a folder."""
    args, folder = logger_args(config), run_folder(config)
    if args is None or folder is None or args.get("version") in (None, ""):
        return
    version = args.version
    if folder.is_dir() and any(folder.iterdir()):
        raise UserInputError(
            f"the run folder {folder} already holds a run (--trainer.logger.init_args.version "
            f"{version}): choose another name, or continue that run with --ckpt_path "
            f"{folder / 'checkpoints' / 'last.ckpt'}."
        )


def check_checkpoint_fits(
    path: Path, checkpoint: dict[str, Any], model: LightningModule, data: Any
) -> None:
    """The data must have the shape the checkpoint's model was trained on."""
    state = checkpoint.get(type(data).__qualname__)
    if state and callable(getattr(data, "load_state_dict", None)):
        data.load_state_dict(state)  # file data names the columns it misses
    weights, needed = checkpoint["state_dict"], model.state_dict()
    if set(weights) != set(needed):
        raise UserInputError(
            f"{path} is not a checkpoint of {type(model).__name__}: it holds "
            f"{', '.join(sorted(weights)) or 'no weights'}, the model has "
            f"{', '.join(sorted(needed))}. Give a checkpoint written by `linreg fit`, or choose "
            f"the model class it was trained with (--model)."
        )
    for name, expected in needed.items():
        saved = weights[name]
        if isinstance(saved, torch.Tensor) and saved.shape != expected.shape:
            raise UserInputError(
                f"{path} was trained on data of another shape: its {name} has shape "
                f"{list(saved.shape)}, but this data gives {list(expected.shape)} "
                f"(features and targets differ). Use data with the columns it was trained on."
            )


def check_intercept(model: LightningModule, data: Any) -> None:
    """A line through the origin cannot be fitted to centred features."""
    linear = getattr(model, "linear", None)
    if linear is not None and linear.bias is None and getattr(data, "normalize", False):
        raise UserInputError(
            "--model.fit_intercept false fits a line through the origin, but --data.normalize "
            "(on by default) centres the features, which puts an intercept back: add "
            "--data.normalize false."
        )


def check_optimizer(model: LightningModule, data: Any) -> None:
    """Build optimizer and scheduler once on copies of the parameters: bad arguments fail now."""
    build_optimizer = getattr(model, "optimizer", None)
    build_scheduler = getattr(model, "lr_scheduler", None)
    if not callable(build_optimizer):
        return
    copies = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
    for copy in copies:
        copy.grad = torch.zeros_like(copy)
    try:
        optimizer = build_optimizer(copies)
        optimizer.step(lambda: torch.zeros(()))  # one step: e.g. SparseAdam refuses dense grads
    except (ValueError, TypeError, RuntimeError) as error:
        raise UserInputError(f"--model.optimizer: {error}") from error
    if not callable(build_scheduler):
        return
    try:
        scheduler = build_scheduler(optimizer)
    except (ValueError, TypeError) as error:
        raise UserInputError(f"--model.lr_scheduler: {error}") from error
    watches_validation = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if watches_validation and getattr(data, "val_fraction", None) == 0:
        raise UserInputError(
            "--model.lr_scheduler ReduceLROnPlateau watches val/mse, but there is no validation "
            "split (--data.val_fraction 0): set a validation fraction or choose another scheduler."
        )


def check_epochs_left(checkpoint: Path, content: dict[str, Any], trainer: Namespace) -> None:
    """Continuing a run needs epochs left to train: fail before the run's folder is touched."""
    progress = content.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    done = progress.get("current", {}).get("processed", content.get("epoch", 0) + 1)
    max_epochs = trainer.get("max_epochs")
    if max_epochs not in (None, -1) and trainer.get("max_steps", -1) == -1 and done >= max_epochs:
        raise UserInputError(
            f"{checkpoint} has already trained {done} epoch(s) and --trainer.max_epochs is "
            f"{max_epochs}: nothing is left to train. Give a larger --trainer.max_epochs."
        )
