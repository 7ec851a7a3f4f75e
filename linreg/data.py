"""Data modules: one shared split-and-batch path; the tutorial's line; tensors you already have."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from linreg.batching import (
    Array,
    ArrayDataset,
    BatchTransform,
    batch_loader,
    chunks,
    index_dtype,
    served_dtype,
)
from linreg.errors import UserInputError
from linreg.memory import available_memory, gib
from linreg.notes import note

SPLITS = ("train", "val", "test")
FLOAT32_SQUARE_LIMIT = 1e18  # a squared error of 1e36 is still below float32's 3.4e38
CHUNK_ROWS = 65536  # rows per chunk of chunks(), and per evaluation batch with batch_size="full"
# batch_size="auto": all training rows up to this many (rows, and values in a batch), else
# batches of it: big batches pay Lightning's per-step cost rarely and carry little noise
AUTO_BATCH, AUTO_BATCH_VALUES = 65536, 2**22


def split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Rows in the train, val and test splits (fractions rounded half up, train gets the rest)."""
    n_val = math.floor(n_rows * val_fraction + 0.5)
    n_test = math.floor(n_rows * test_fraction + 0.5)
    return {"train": n_rows - n_val - n_test, "val": n_val, "test": n_test}


class ArrayDataModule(LightningDataModule):
    """Serves a table ``(x, y)`` as seeded train/val/test splits in fast mini-batches.

    Subclasses say where the rows come from by overriding :meth:`load_arrays` (and
    :attr:`num_features` / :attr:`num_targets`); splitting, batching, shuffling and sharding
    across DDP processes are shared. Each batch is a tuple ``(x, y)`` of tensors of shapes
    ``(batch, num_features)`` and ``(batch, num_targets)``, in the source's precision (float64
    data stays float64; other numbers come as float32). :meth:`chunks` serves a whole split in
    big chunks, for exact solvers.

    Args:
        batch_size: rows per training step (and per evaluation batch); ``"full"``: all the
            training rows of this process in one batch (batch gradient descent: one step per
            epoch), evaluation in batches of 65,536 rows; ``"auto"``: ``"full"`` up to 65,536
            training rows (fewer when rows are wide: at most 2²² values a batch), else batches
            of that many (big batches pay Lightning's per-step cost rarely and carry little
            mini-batch noise). A number above the training rows is lowered to them, with a
            note.
        val_fraction: share of the rows held out for validation, in ``[0, 1)``.
        test_fraction: share of the rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the per-epoch shuffling.
    """

    def __init__(
        self,
        batch_size: int | Literal["auto", "full"] = "auto",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size not in ("full", "auto") and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise UserInputError(
                f"batch_size must be a positive integer, got {batch_size!r}. Give a number of "
                f"rows, 'full' for all the training rows in one batch, or 'auto'."
            )
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
        self._train_batch = batch_size if isinstance(batch_size, int) else 1  # set by setup
        self._eval_batch = batch_size if isinstance(batch_size, int) else CHUNK_ROWS

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
        """Load the rows once; split them unless predicting. Splits are views of the same arrays.

        The split is made once; then the batch sizes are settled (a ``batch_size`` above the
        training rows is lowered to them, with a note) and a validation split of one or two
        rows gets a note.
        """
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
            if rows is not None:
                rows = rows.to(_device_of(everything.x))
            self.datasets[name] = ArrayDataset(
                everything.x, everything.y, rows, everything.transform
            )
        self._settle_batch_sizes(len(everything))

    def train_dataloader(self) -> DataLoader:
        """Training batches, reshuffled every epoch, this process's share under DDP."""
        return self._loader("train", self._train_batch, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in a fixed order (none when ``val_fraction`` is 0)."""
        return self._loader("val", self._eval_batch, shuffle=False) if self.val_fraction > 0 else []

    def test_dataloader(self) -> DataLoader | list:
        """Test batches in a fixed order (none when ``test_fraction`` is 0)."""
        if self.test_fraction == 0:
            return []
        return self._loader("test", self._eval_batch, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Every row, in the source's order."""
        return self._loader("all", self._eval_batch, shuffle=False)

    # -- big chunks, for exact solvers --------------------------------------------------------

    def chunks(
        self, split: str, rows: int = CHUNK_ROWS, transform: bool = True
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """This process's share of a split, in row order, in big contiguous chunks ``(x, y)``.

        Every row of the split once, no padding: under DDP (``trainer.world_size > 1``) each
        process gets a disjoint contiguous block (rank order is row order), and the blocks
        together cover the split; a process whose block is empty gets no chunk. Chunks are in
        the source's precision (float64 stays float64) with the batch transform (e.g.
        standardization) applied. A memory-mapped ``.npy`` file is read sequentially, one chunk
        in memory at a time. Sets the data up for the split if that has not been done.

        Args:
            split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (every row, unsplit).
            rows: rows per chunk (the last one may be smaller).
            transform: apply :meth:`batch_transform`; ``False`` gives the rows as stored.

        Example:
            >>> data = SyntheticDataModule(n_samples=100)
            >>> [len(x) for x, y in data.chunks("train", rows=32)]
            [32, 32, 16]
        """
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}.")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be a positive integer, got {rows!r}.")
        if split not in self.datasets:
            self.setup("predict" if split == "all" else "fit")
        dataset = self.datasets[split]
        if dataset.y is None:
            raise UserInputError(f"{self.source} has no target values to serve in chunks.")
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        for batch in chunks(dataset, rows, rank=rank, num_replicas=world, transform=transform):
            x, y = batch  # the dataset has targets: pairs
            yield x, y

    # -- helpers ------------------------------------------------------------------------------

    def check_split_sizes(self, n_rows: int, source: str) -> dict[str, int]:
        """Fail with a clear message when ``n_rows`` leaves a split with a fraction empty."""
        sizes = split_sizes(n_rows, self.val_fraction, self.test_fraction)
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        for split, fraction in fractions.items():
            if fraction > 0 and sizes[split] == 0:
                raise UserInputError(
                    f"{source} has {n_rows} rows, too few for {split}_fraction={fraction}: the "
                    f"{split} split would be empty. Use more rows or set {split}_fraction to 0."
                )
        if sizes["train"] == 0:
            raise UserInputError(
                f"{source} has {n_rows} rows, which leaves none for training. Use more rows or "
                f"smaller val_fraction and test_fraction."
            )
        return sizes

    def _settle_batch_sizes(self, n_rows: int) -> None:
        """Training and evaluation batch sizes for these rows; notes about what is too small."""
        sizes = split_sizes(n_rows, self.val_fraction, self.test_fraction)
        train = sizes["train"]
        auto = min(AUTO_BATCH, max(1, AUTO_BATCH_VALUES // (self.num_features + self.num_targets)))
        if self.batch_size == "full" or (self.batch_size == "auto" and train <= auto):
            self._train_batch, self._eval_batch = train, CHUNK_ROWS
            self._check_full_batch(train)
        elif self.batch_size == "auto":
            self._train_batch = self._eval_batch = auto
        elif self.batch_size > train:
            note(
                f"batch_size={self.batch_size} is more than the {train} training rows of "
                f"{self.source}: each training batch has all {train} (one step per epoch)."
            )
            self._train_batch = train
        if 0 < sizes["val"] <= 2:
            note(
                f"the validation split of {self.source} has only {sizes['val']} row(s) "
                f"(val_fraction={self.val_fraction} of {n_rows} rows): its metrics, R² above "
                f"all, say little. Use more rows or a larger val_fraction."
            )

    @property
    def train_batch_size(self) -> int:
        """Rows per training batch, as settled by :meth:`setup` (``"full"``/``"auto"`` resolved)."""
        return self._train_batch

    def _check_full_batch(self, train_rows: int) -> None:
        """A ``"full"`` batch is read into memory whole: refuse one that cannot fit there."""
        x, available = self.datasets["train"].x, available_memory()
        if _device_of(x).type != "cpu" or available is None:
            return
        value_bytes = torch.empty((), dtype=served_dtype(x)).element_size()
        per_row = (self.num_features + self.num_targets) * value_bytes
        trainer = self.trainer
        rows = math.ceil(train_rows / (trainer.world_size if trainer else 1))
        if 3 * rows * per_row > available:  # the batch, and its transformed copies
            raise UserInputError(
                f"batch_size='full' puts all {rows} training rows of {self.source} in one batch, "
                f"about {gib(3 * rows * per_row)} of memory with its transformed copies, but "
                f"only {gib(available)} is available. Use a batch size such as 65536."
            )

    def _split_rows(self, n_rows: int) -> dict[str, Tensor | None]:
        """Row numbers of each split: a permutation seeded by ``seed``, cut by the fractions.

        ``None`` is every row, in order: the training split when nothing is held out (no
        permutation of a 100-million-row file to draw, sort and keep).
        """
        sizes = split_sizes(n_rows, self.val_fraction, self.test_fraction)
        if sizes["train"] == n_rows:
            empty = torch.empty(0, dtype=index_dtype(n_rows))
            return {"train": None, "val": empty, "test": empty}
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

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        trainer = self.trainer
        return batch_loader(
            dataset,
            batch_size,
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
        batch_size: rows per training step, ``"full"`` (all the training rows) or ``"auto"``
            (all of them up to 65,536, else batches of 65,536).
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
        batch_size: int | Literal["auto", "full"] = "auto",
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
        _check_memory_to_generate(n_samples, n_features)
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


def _check_memory_to_generate(n_samples: int, n_features: int) -> None:
    """Refuse, before generating anything, rows that would not fit in memory."""
    index_bytes = torch.empty((), dtype=index_dtype(n_samples)).element_size()
    # x and y (float32), a temporary of y's size, the split's permutation and its sorted parts
    per_row = 4 * (n_features + 2) + 2 * index_bytes + 8
    available = available_memory()
    if available is not None and n_samples * per_row > available:
        raise UserInputError(
            f"n_samples={n_samples} rows of {n_features} feature(s) need about "
            f"{gib(n_samples * per_row)} of memory to generate, but only {gib(available)} is "
            f"available. Use fewer samples: at most about {available // per_row:,} here."
        )


class TensorDataModule(ArrayDataModule):
    """Rows you already hold in memory (tensors or numpy arrays), split and batched.

    Args:
        x: features, shape ``(n_rows, n_features)``.
        y: targets, shape ``(n_rows,)`` or ``(n_rows, n_targets)``.
        batch_size: rows per training step, ``"full"`` (all the training rows) or ``"auto"``
            (all of them up to 65,536, else batches of 65,536).
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the shuffling.
    """

    def __init__(
        self,
        x: Array,
        y: Array,
        batch_size: int | Literal["auto", "full"] = "auto",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters(ignore=["x", "y"])  # the data itself is no hyperparameter
        self.x, self.y = as_table(x, y, source="the given arrays")
        for name, array in (("x", self.x), ("y", self.y)):
            _check_values(array, name)
        self.check_split_sizes(len(self.x), source=self.source)

    @property
    def source(self) -> str:
        """How error messages and notes name the data."""
        return "the given arrays"

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


def _check_values(array: Array, name: str) -> None:
    """Finite, and small enough that the float32 model can square it (the squared error)."""
    values = torch.as_tensor(array)
    if not values.is_floating_point() or values.numel() == 0:
        return
    low, high = torch.aminmax(values)
    if torch.isfinite(low) and torch.isfinite(high) and max(-low, high) <= FLOAT32_SQUARE_LIMIT:
        return
    bad = ~torch.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in bad.nonzero()[0])
        raise UserInputError(
            f"the given arrays: {name}[{row}, {column}] is {float(values[row, column])} "
            f"({int(bad.sum())} value(s) of {name} are NaN or infinite). Remove or fill those rows."
        )
    row, column = (int(i) for i in (values.abs() > FLOAT32_SQUARE_LIMIT).nonzero()[0])
    raise UserInputError(
        f"the given arrays: {name}[{row}, {column}] is {float(values[row, column]):g}, too large "
        f"for linreg's float32 model (at most {FLOAT32_SQUARE_LIMIT:.0e} in size, so that its "
        f"square fits in float32). Rescale that column (change its units)."
    )


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
