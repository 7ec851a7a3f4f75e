"""Data modules: one shared split-and-batch path; the tutorial's line; tensors you already have."""

from __future__ import annotations

import math

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from linreg.batching import Array, ArrayDataset, BatchTransform, batch_loader, index_dtype
from linreg.errors import UserInputError

SPLITS = ("train", "val", "test")
FLOAT32_SQUARE_LIMIT = 1e18  # a squared error of 1e36 is still below float32's 3.4e38


def split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Rows in the train, val and test splits (fractions rounded half up, train gets the rest)."""
    n_val = math.floor(n_rows * val_fraction + 0.5)
    n_test = math.floor(n_rows * test_fraction + 0.5)
    return {"train": n_rows - n_val - n_test, "val": n_val, "test": n_test}


class ArrayDataModule(LightningDataModule):
    """Serves a table ``(x, y)`` as seeded train/val/test splits in fast mini-batches.

    Subclasses say where the rows come from by overriding :meth:`load_arrays` (and
    :attr:`num_features` / :attr:`num_targets`); splitting, batching, shuffling and sharding
    across DDP processes are shared. Each batch is a tuple ``(x, y)`` of float32 tensors of
    shapes ``(batch, num_features)`` and ``(batch, num_targets)``.

    Args:
        batch_size: rows per training step (and per evaluation batch).
        val_fraction: share of the rows held out for validation, in ``[0, 1)``.
        test_fraction: share of the rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the per-epoch shuffling.
    """

    def __init__(
        self,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise UserInputError(f"{name} must be in [0, 1), got {value}.")
        if val_fraction + test_fraction >= 1:
            raise UserInputError(
                f"val_fraction + test_fraction must be below 1 to leave rows for training, got "
                f"{val_fraction} + {test_fraction}."
            )
        self.batch_size = batch_size
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.datasets: dict[str, ArrayDataset] = {}

    # -- what subclasses provide --------------------------------------------------------------

    @property
    def num_features(self) -> int:
        """Columns of ``x``: the model's ``in_features``."""
        raise NotImplementedError

    @property
    def num_targets(self) -> int:
        """Columns of ``y``: the model's ``out_features``."""
        return 1

    def load_arrays(self) -> tuple[Array, Array | None]:
        """All rows as ``(x, y)``: tensors or (memory-mapped) numpy arrays, same row count.

        ``y`` may be ``None`` for data without targets, which can only be predicted on.
        """
        raise NotImplementedError

    @property
    def source(self) -> str:
        """How error messages name the data (a file's path, for file data)."""
        return "the data"

    def check(self, stage: str) -> None:
        """Validate the data for ``stage`` now (the ``linreg`` command calls this before a run).

        The default checks that ``validate`` and ``test`` have a split to run on;
        ``FileDataModule`` also reads and checks its file here, so a bad file fails before any
        log folder is created.
        """
        split = {"validate": "val", "test": "test"}.get(stage)
        if split is not None and getattr(self, f"{split}_fraction") == 0:
            verb = "validate" if split == "val" else "test"
            raise UserInputError(
                f"{self.source} has no {split} split to {verb} on ({split}_fraction is 0). "
                f"Hold one out when training (--data.{split}_fraction 0.1), or give other data."
            )

    def batch_transform(self) -> BatchTransform | None:
        """A function applied to every fetched batch ``(x, y)`` (e.g. standardization), or None."""
        return None

    # -- Lightning hooks ----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Load the rows once; split them unless predicting. Splits are views of the same arrays."""
        if "all" not in self.datasets:
            x, y = self._place(*self.load_arrays())
            self.datasets["all"] = ArrayDataset(x, y, transform=self.batch_transform())
        if stage == "predict" or "train" in self.datasets:
            return
        everything = self.datasets["all"]
        if everything.y is None:
            raise UserInputError(f"{self.source} has no target values to {stage} on.")
        self.check_split_sizes(len(everything), source=self.source)
        for name, rows in self._split_rows(len(everything)).items():
            self.datasets[name] = ArrayDataset(
                everything.x, everything.y, rows.to(_device_of(everything.x)), everything.transform
            )

    def train_dataloader(self) -> DataLoader:
        """Training batches, reshuffled every epoch, this process's share under DDP."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in a fixed order (none when ``val_fraction`` is 0)."""
        return self._loader("val", shuffle=False) if self.val_fraction > 0 else []

    def test_dataloader(self) -> DataLoader | list:
        """Test batches in a fixed order (none when ``test_fraction`` is 0)."""
        return self._loader("test", shuffle=False) if self.test_fraction > 0 else []

    def predict_dataloader(self) -> DataLoader:
        """Every row, in the source's order."""
        return self._loader("all", shuffle=False)

    # -- helpers ------------------------------------------------------------------------------

    def check_split_sizes(self, n_rows: int, source: str) -> dict[str, int]:
        """Fail with a clear message when ``n_rows`` cannot fill the splits and one batch."""
        sizes = split_sizes(n_rows, self.val_fraction, self.test_fraction)
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        for split, fraction in fractions.items():
            if fraction > 0 and sizes[split] == 0:
                raise UserInputError(
                    f"{source} has {n_rows} rows, too few for {split}_fraction={fraction}: the "
                    f"{split} split would be empty. Use more rows or set {split}_fraction to 0."
                )
        if sizes["train"] < self.batch_size:
            raise UserInputError(
                f"{source} has {n_rows} rows, which leaves {sizes['train']} for training, fewer "
                f"than batch_size={self.batch_size}. Use more rows or set batch_size to at most "
                f"{max(sizes['train'], 1)}."
            )
        return sizes

    def _split_rows(self, n_rows: int) -> dict[str, Tensor]:
        """Row numbers of each split: a permutation seeded by ``seed``, cut by the fractions."""
        sizes = split_sizes(n_rows, self.val_fraction, self.test_fraction)
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(n_rows, generator=generator, dtype=index_dtype(n_rows))
        cuts = order.split([sizes[name] for name in SPLITS])
        return {name: rows.sort().values for name, rows in zip(SPLITS, cuts, strict=True)}

    @property
    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _place(self, x: Array, y: Array | None) -> tuple[Array, Array | None]:
        """Keep in-memory data on the accelerator when it fits, so batches never cross PCIe."""
        device = self._device
        tensors = [a for a in (x, y) if a is not None]
        if device.type != "cuda" or not all(isinstance(a, Tensor) for a in tensors):
            return x, y
        free, _ = torch.cuda.mem_get_info(device)
        if sum(a.nbytes for a in tensors) * 4 > free:  # leave room for the batches and the model
            return x, y
        assert isinstance(x, Tensor)
        return x.to(device), (y.to(device) if isinstance(y, Tensor) else None)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        trainer = self.trainer
        return batch_loader(
            dataset,
            self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            pin_memory=_device_of(dataset.x).type == "cpu" and self._device.type == "cuda",
        )


def _device_of(array: Array) -> torch.device:
    return array.device if isinstance(array, Tensor) else torch.device("cpu")


class SyntheticDataModule(ArrayDataModule):
    """The tutorial's problem as data: ``x ~ U(0, 1)``, ``y = x · weight + bias + noise``.

    The rows are generated in :meth:`setup` from ``seed``, identically on every process.

    Args:
        n_samples: rows to generate (train, val and test together).
        n_features: columns of ``x``.
        weight: the true weight; one number, or one per feature when ``n_features > 1``
            (a single number is then used for every feature).
        bias: the true intercept.
        noise: standard deviation of the Gaussian noise added to ``y`` (0 = exact line).
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the data, the split and the shuffling.
    """

    def __init__(
        self,
        n_samples: int = 1000,
        n_features: int = 1,
        weight: float | list[float] = 3.0,
        bias: float = 0.8,
        noise: float = 0.0,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 42,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters()
        for name, value in (("n_samples", n_samples), ("n_features", n_features)):
            if value < 1:
                raise UserInputError(f"{name} must be at least 1, got {value}.")
        weights = weight if isinstance(weight, list) else [float(weight)] * n_features
        if len(weights) != n_features:
            raise UserInputError(
                f"weight has {len(weights)} values but n_features is {n_features}: give one "
                f"weight per feature, or a single number for all of them."
            )
        if noise < 0:
            raise UserInputError(f"noise is a standard deviation and must be >= 0, got {noise}.")
        largest = sum(abs(w) for w in weights) + abs(bias) + 6 * noise  # the targets' bound
        if not largest <= FLOAT32_SQUARE_LIMIT:
            raise UserInputError(
                f"weight, bias and noise make targets up to {largest:.3g}, whose squares overflow "
                f"float32, the precision linreg trains in: keep them below "
                f"{FLOAT32_SQUARE_LIMIT:.0e} (change the units)."
            )
        self.check_split_sizes(n_samples, source=f"n_samples={n_samples}")
        self.n_samples, self.n_features, self.noise = n_samples, n_features, noise
        self.true_weight = torch.tensor([weights], dtype=torch.float32)
        self.true_bias = torch.tensor([float(bias)])

    @property
    def num_features(self) -> int:
        """Columns of ``x``: ``n_features``."""
        return self.n_features

    def load_arrays(self) -> tuple[Tensor, Tensor]:
        """Generate ``(x, y)`` from ``seed``: ``(n_samples, n_features)`` and ``(n_samples, 1)``."""
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.rand(self.n_samples, self.n_features, generator=generator)
        y = x @ self.true_weight.T + self.true_bias
        if self.noise > 0:
            y += self.noise * torch.randn(y.shape, generator=generator)
        return x, y


class TensorDataModule(ArrayDataModule):
    """Rows you already hold in memory (tensors or numpy arrays), split and batched.

    Args:
        x: features, shape ``(n_rows, n_features)``.
        y: targets, shape ``(n_rows,)`` or ``(n_rows, n_targets)``.
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the shuffling.
    """

    def __init__(
        self,
        x: Array,
        y: Array,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters(ignore=["x", "y"])  # the data itself is no hyperparameter
        self.x, self.y = as_table(x, y, source="the given arrays")
        self.check_split_sizes(len(self.x), source="the given arrays")

    @property
    def num_features(self) -> int:
        """Columns of ``x``."""
        return int(self.x.shape[1])

    @property
    def num_targets(self) -> int:
        """Columns of ``y``."""
        return int(self.y.shape[1])

    def load_arrays(self) -> tuple[Array, Array]:
        """The arrays as given (``y`` as a column when it was 1-D)."""
        return self.x, self.y


def as_table(x: Array, y: Array, source: str) -> tuple[Array, Array]:
    """``x`` as ``(n, d)`` and ``y`` as ``(n, k)`` (a 1-D ``y`` becomes a column), checked."""
    if not isinstance(x, (Tensor, np.ndarray)) or not isinstance(y, (Tensor, np.ndarray)):
        raise UserInputError(f"{source}: x and y must be tensors or numpy arrays.")
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if x.ndim != 2 or y.ndim != 2:
        raise UserInputError(
            f"{source}: x must be 2-D (rows, features) and y 1-D or 2-D, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}."
        )
    if len(x) != len(y):
        raise UserInputError(f"{source}: x has {len(x)} rows but y has {len(y)}.")
    return x, y
