"""Checks the ``linreg`` command makes before a run: what would fail later fails now, in one line.

Each raises :class:`~linreg.errors.UserInputError` before any run folder is created or touched.
"""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningModule

from linreg.errors import UserInputError
from linreg.trust import OPTIMIZER, SCHEDULER, resolve


def check_kinds(config: Namespace) -> None:
    """An optimizer must be an optimizer, a scheduler a scheduler, never quietly something else.

    jsonargparse would otherwise fall back to the default (SGD) for an ``optimizer`` given in a
    config file as a class that is not one, e.g. ``os.system``. The user's own classes may be
    imported to check them (they asked for them).
    """
    model = config.get("model")
    init_args = model.get("init_args") if isinstance(model, Namespace) else None
    if not isinstance(init_args, Namespace):
        return
    examples = {"optimizer": "SGD, Adam or torch.optim.AdamW", "lr_scheduler": "StepLR"}
    for key, kind in (("optimizer", OPTIMIZER), ("lr_scheduler", SCHEDULER)):
        value = init_args.get(key)
        path = value.get("class_path") if isinstance(value, Namespace) else value
        if isinstance(path, str) and resolve(path, kind, import_allowed=True) is None:
            raise UserInputError(
                f"--model.{key} {path} is not {kind[0]}: give a class such as {examples[key]}."
            )


CSV_LIKE = ("", ".csv", ".tsv", ".txt")  # an existing file of these may be replaced


def check_predictions_path(predictions: str | None, inputs: list[str]) -> None:
    """``--predictions``: a new or regular file (not a folder, link or device) that is no input.

    ``-`` is standard output. The folder it goes to must be writable, checked before anything
    is loaded, so that a long prediction never ends on a write error.
    """
    if not predictions:
        raise UserInputError(
            "linreg predict writes its predictions to a CSV file: add --predictions out.csv "
            "(or --predictions - for standard output)."
        )
    if predictions == "-":
        target = Path.cwd() / "predictions"  # the part files are written in the working folder
    else:
        target = Path(predictions)
        if target.is_dir():
            raise UserInputError(
                f"--predictions {predictions} is a folder; give a file name, e.g. "
                f"{target / 'predictions.csv'}."
            )
        if target.is_symlink() or (target.exists() and not target.is_file()):
            what = "a link" if target.is_symlink() else "not a regular file"
            raise UserInputError(
                f"--predictions {predictions} is {what}; linreg writes a new file and renames it "
                f"into place, which would replace it: give the path of a regular file (or - for "
                f"standard output)."
            )
        for source in inputs:
            if _same_file(target, Path(source)):
                raise UserInputError(
                    f"--predictions {predictions} is {source}, an input of this command; write "
                    f"the predictions to another file."
                )
        if _in_a_run(target):
            raise UserInputError(
                f"--predictions {predictions} is inside a training run's folder (its "
                f"checkpoints, config and logs); write the predictions elsewhere."
            )
        if target.exists() and target.suffix.lower() not in CSV_LIKE:
            raise UserInputError(
                f"--predictions {predictions} is an existing {target.suffix} file, which a CSV "
                f"of predictions would replace; give a .csv path."
            )
        if not target.parent.is_dir():
            raise UserInputError(
                f"--predictions {predictions}: the folder {target.parent} does not exist; "
                f"create it first (mkdir -p {target.parent}) or choose another place."
            )
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(
            f"--predictions {predictions}: cannot write in {folder} (permission denied); choose "
            f"another place for the predictions."
        )


def _in_a_run(target: Path) -> bool:
    """Whether ``target`` goes in a run folder or its ``checkpoints`` folder.

    A run folder holds ``hparams.yaml`` (the logger's) or ``config.yaml`` beside
    ``checkpoints/`` (a run without a logger).
    """
    try:
        folder = target.resolve().parent
    except OSError:
        return False
    places = (folder, folder.parent) if folder.name == "checkpoints" else (folder,)
    return any(
        (place / "hparams.yaml").is_file()
        or ((place / "config.yaml").is_file() and (place / "checkpoints").is_dir())
        for place in places
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_training_length(trainer: Namespace) -> None:
    """A fit of zero epochs or steps trains nothing: refuse it, never report untrained weights."""
    for option in ("max_epochs", "max_steps"):
        if trainer.get(option) == 0:
            raise UserInputError(
                f"--trainer.{option} 0 trains nothing; give at least 1 (or -1 for no limit)."
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
    """Build optimizer and scheduler once on copies of the parameters: bad arguments fail now.

    Arguments left to the data (NaN) get a placeholder here: the data is not read yet.
    """
    make = getattr(model, "make_optimizer", None)
    build_optimizer = (
        (lambda params: make(params, None)) if callable(make) else getattr(model, "optimizer", None)
    )
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
    closure = inspect.signature(optimizer.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise UserInputError(
            f"--model.optimizer {type(optimizer).__name__} needs a closure that evaluates the "
            f"loss several times a step, which linreg's training step does not give: choose a "
            f"first-order optimizer such as SGD or Adam (for the exact answer, --model "
            f"linreg.LeastSquares)."
        )
    if not callable(build_scheduler):
        return
    try:
        scheduler = build_scheduler(optimizer)
    except (ValueError, TypeError) as error:
        raise UserInputError(f"--model.lr_scheduler: {error}") from error
    watches_validation = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    try:
        with warnings.catch_warnings():  # one step: e.g. StepLR's step_size 0 fails there
            warnings.simplefilter("ignore")
            if not watches_validation:
                scheduler.step()
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as error:
        name = type(scheduler).__name__
        raise UserInputError(
            f"--model.lr_scheduler {name} fails on its first steps ({error}): check its "
            f"arguments (--model.lr_scheduler.*)."
        ) from error
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
