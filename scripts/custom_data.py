"""Your own data in linreg: a data module over tensors you already have, or over a saved file.

``linreg.TensorDataModule`` takes ``x`` and ``y`` (tensors or numpy arrays) and serves them
through linreg's split-and-batch path. Tensors cannot be typed on a command line, so this file
shows how to write your own data module for them: ``SavedTensorsDataModule`` subclasses
``ArrayDataModule``, which takes three members (``num_features``, ``num_targets``,
``load_arrays``), and reads a ``torch.save``d dict ``{"x": ..., "y": ...}`` with
``weights_only=True`` (plain tensors only, no pickled code), memory-mapped, so asking for its
shape reads little.

Run, from the repository root:

    .venv/bin/python scripts/custom_data.py [--epochs 10] [--save my_data.pt]

    # with a saved file, e.g. the one --save wrote:
    PYTHONPATH=scripts .venv/bin/linreg fit \\
        --data custom_data.SavedTensorsDataModule --data.path my_data.pt
"""

from __future__ import annotations

import argparse
import functools
import pickle
from typing import Any

import lightning.pytorch as pl
import torch

from linreg import ArrayDataModule, LinearRegression, TensorDataModule
from linreg.batching import Array
from linreg.data import as_table
from linreg.errors import UserInputError


class SavedTensorsDataModule(ArrayDataModule):
    """Rows read from a ``torch.save``d dict of two tensors: usable from the ``linreg`` command.

    The file is opened on first use, not in ``__init__``: the command asks for
    ``num_features`` right after building the module, before ``setup``, so the file is
    memory-mapped then and only its shapes are read.

    Args:
        path: file written by ``torch.save({"x": x, "y": y}, path)``.
        x_key: key of the features in the dict.
        y_key: key of the targets in the dict.
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the shuffling.
    """

    def __init__(
        self,
        path: str,
        x_key: str = "x",
        y_key: str = "y",
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters()
        self._table: tuple[Array, Array] | None = None

    @property
    def num_features(self) -> int:
        """Columns of the saved ``x``."""
        return int(self._load()[0].shape[1])

    @property
    def num_targets(self) -> int:
        """Columns of the saved ``y``."""
        return int(self._load()[1].shape[1])

    def load_arrays(self) -> tuple[Array, Array]:
        """The saved ``x`` and ``y`` (memory-mapped; ``y`` as a column when it was 1-D)."""
        return self._load()

    def _load(self) -> tuple[Array, Array]:
        """Read the file once; fail with one clear message when it is not what we expect."""
        if self._table is None:
            path, keys = self.hparams.path, (self.hparams.x_key, self.hparams.y_key)
            try:
                saved: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except (OSError, RuntimeError, pickle.UnpicklingError) as error:
                reason = str(error).strip().splitlines()[0]  # torch's own advice runs long
                raise UserInputError(f"cannot read tensors from {path}: {reason}") from error
            if not isinstance(saved, dict) or any(key not in saved for key in keys):
                raise UserInputError(
                    f"{path} must hold a dict with the keys {keys[0]!r} and {keys[1]!r}, as "
                    f"written by torch.save({{{keys[0]!r}: x, {keys[1]!r}: y}}, path)."
                )
            self._table = as_table(saved[keys[0]], saved[keys[1]], source=path)
        return self._table


def main() -> None:
    """Fit a 3-feature linear model on tensors made here; print the weights next to the truth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--save", help="also save the tensors here, for the linreg command")
    args = parser.parse_args()

    pl.seed_everything(0)
    # Stand-in for your own data: 2,000 rows, 3 features, y = x · [2, -1, 0.5] + 1 + noise.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 3, generator=generator)
    true_weight, true_bias = torch.tensor([2.0, -1.0, 0.5]), 1.0
    y = x @ true_weight + true_bias + 0.1 * torch.randn(2000, generator=generator)
    if args.save:
        torch.save({"x": x, "y": y}, args.save)
        print(f"saved x {tuple(x.shape)} and y {tuple(y.shape)} to {args.save}")

    data = TensorDataModule(x, y, batch_size=64)
    # Standard-normal features have curvature 2 per direction: lr 0.1 is stable and fast.
    model = LinearRegression(
        in_features=data.num_features,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
    )
    trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False)
    trainer.fit(model, data)
    trainer.test(model, data)

    weight = ", ".join(f"{w:.4f}" for w in model.linear.weight.detach().flatten().tolist())
    print(f"learned weight: [{weight}], bias: {model.linear.bias.item():.4f}")
    print(f"true weight:    [2, -1, 0.5], bias: {true_bias}")


if __name__ == "__main__":
    main()
