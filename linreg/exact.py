"""The exact least-squares optimum of a run's training data, computed once and shared.

The SGD model takes its learning rate from the optimum's curvatures, :class:`OptimumGap`
measures training against it, and the convergence stop uses that gap. One streaming pass over
the split (in the model's units: the data module's standardization applied) gives a float64
QR factorization (:mod:`linreg.solver`), combined across DDP processes and cached per trainer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor

from linreg.learning_rate import Curvature
from linreg.notes import note
from linreg.solution import LeastSquaresSolution
from linreg.solver import QRFactorization
from linreg.statistics import INTERCEPT, DroppedTerm, dropped_terms

CHUNK_ROWS = 65536
RTOL = 1e-6  # converged: the training objective within this of the optimum's
FLOAT32_FLOOR = 100 * float(torch.finfo(torch.float32).eps) ** 2  # what float32 can resolve
MAX_COLUMNS = 4096  # the factor is (features + targets)² float64: 134 MB at 4096
_CACHE: weakref.WeakKeyDictionary[Trainer, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


@dataclass
class SplitFactorization:
    """A split's QR factorization, and the largest squared norm of one of its rows of ``Z``."""

    qr: QRFactorization
    largest_row: float  # max ‖z_i‖², z_i = [x_i, 1]: sets the noise of one-row SGD steps
    _solutions: dict[float, LeastSquaresSolution] = field(default_factory=dict, repr=False)

    def solved(self, l2: float = 0.0) -> LeastSquaresSolution:
        """The split's least-squares solution with ridge ``l2``, solved once and kept."""
        if l2 not in self._solutions:
            self._solutions[l2] = self.qr.solve(l2)
        return self._solutions[l2]

    def curvature(self, l2: float = 0.0) -> Curvature:
        """The training objective's curvatures, for the learning-rate rules.

        The largest over all columns (gradient descent moves every weight, a dependent
        column's too); the smallest over the directions the data determines: the ``rank``-th,
        as the others are the zero curvatures of dependent columns.
        """
        solution = self.solved(l2)
        curvatures = solution.curvatures()
        smallest = float(curvatures[max(solution.rank, 1) - 1])
        k = self.qr.n_targets
        scale = float(solution.theta.abs().max()) if solution.theta.numel() else 1.0
        return Curvature(
            float(curvatures[0]), smallest, 2 * self.largest_row / k, solution.rows, scale
        )


def factorize(
    chunks: Iterable[tuple[Tensor, Tensor]],
    features: Callable[[Tensor], Tensor],
    n_features: int,
    n_targets: int,
    fit_intercept: bool,
) -> SplitFactorization:
    """One pass over ``chunks`` of rows ``(x, y)``: the QR of ``[features(x), 1 | y]``.

    Also the largest row of ``Z``, which sets the noise of small-batch SGD steps.
    """
    qr = QRFactorization(n_features, n_targets, fit_intercept)
    largest = 0.0
    for rows, y in chunks:
        x = features(rows)  # the linear layer's inputs
        qr.update(x, y.unsqueeze(1) if y.ndim == 1 else y)
        if len(x):
            largest = max(largest, float(x.double().square().sum(1).max()) + fit_intercept)
    return SplitFactorization(qr, largest)


def factorization(
    trainer: Trainer, split: str, n_features: int, n_targets: int, fit_intercept: bool
) -> SplitFactorization | None:
    """The QR factorization of ``split`` (``"train"`` or ``"val"``) of the trainer's data.

    ``None`` when the split is empty or absent, or when the columns are more than
    :data:`MAX_COLUMNS` (the factor would not fit; a note says so, once).
    """
    key = (id(trainer.datamodule), split, n_features, n_targets, fit_intercept)
    cache = _CACHE.setdefault(trainer, {})
    if key not in cache:
        cache[key] = _factorize(trainer, split, n_features, n_targets, fit_intercept)
    return cache[key]


def split_of(trainer: Trainer, split: str = "train") -> SplitFactorization | None:
    """The factorization of ``split`` for the trainer's model (its size and intercept)."""
    linear = getattr(trainer.lightning_module, "linear", None)
    if linear is None or trainer.datamodule is None:
        return None
    return factorization(
        trainer, split, linear.in_features, linear.out_features, linear.bias is not None
    )


def dependent_columns(trainer: Trainer, l2: float = 0.0) -> list[DroppedTerm]:
    """The training data's linearly dependent columns, named (none under a ridge penalty).

    Found in the model's units: a constant column, standardized, is all zero there; it is
    called constant, as it is in the file.
    """
    split = split_of(trainer)
    if split is None:
        return []
    data = trainer.datamodule
    d = split.qr.n_features
    names = [*(getattr(data, "feature_names", None) or [f"x{i}" for i in range(d)]), INTERCEPT]
    terms = dropped_terms(split.solved(l2).dropped, names)
    if getattr(data, "normalize", False):
        terms = [replace(t, reason="constant") if t.reason == "all-zero" else t for t in terms]
    return terms


def tolerance(qr: QRFactorization, optimum: float, rtol: float = RTOL) -> float:
    """How close to the ``optimum`` objective counts as there.

    ``rtol`` of the optimum; for data a line fits exactly (optimum 0), ``rtol²`` of the
    target's variance; and never finer than float32, the SGD model's precision, resolves.
    """
    cells = qr.rows * qr.n_targets
    variance = float(qr.m2.sum()) / cells
    mean_square = float(qr.squares.sum()) / cells
    return max(rtol * optimum, rtol**2 * variance, FLOAT32_FLOOR * mean_square)


def _factorize(
    trainer: Trainer, split: str, n_features: int, n_targets: int, fit_intercept: bool
) -> SplitFactorization | None:
    if n_features + n_targets > MAX_COLUMNS:
        if split == "train":
            note(
                f"{n_features} features are more than the exact least-squares pass affords "
                f"({MAX_COLUMNS}): no exact optimum to compare with, and a learning rate not "
                f"chosen from the data."
            )
        return None
    features = getattr(trainer.lightning_module, "features", lambda x: x)
    part = factorize(_chunks(trainer, split), features, n_features, n_targets, fit_intercept)
    qr, largest = part.qr, part.largest_row
    if trainer.world_size > 1:
        device = trainer.strategy.root_device
        gathered = trainer.strategy.all_gather(qr.to_tensor().to(device))
        parts = [
            QRFactorization.from_tensor(t.cpu(), n_features, n_targets, fit_intercept)
            for t in gathered
        ]
        qr = QRFactorization.merge(parts)
        largest = float(
            trainer.strategy.reduce(torch.tensor(largest, device=device), reduce_op="max")
        )
    return SplitFactorization(qr, largest) if qr.rows > 0 else None


def _chunks(trainer: Trainer, split: str) -> Iterator[tuple[Tensor, Tensor]]:
    """This process's rows of ``split``: big chunks of linreg's data, else the dataloader."""
    data = trainer.datamodule
    chunks = getattr(data, "chunks", None)
    if callable(chunks):
        has_split = split == "train" or getattr(data, f"{split}_fraction", 0) > 0
        if has_split:
            yield from chunks(split, CHUNK_ROWS)
        return
    # another data module: its batches (a DistributedSampler may repeat a few rows under DDP)
    loaders = trainer.train_dataloader if split == "train" else trainer.val_dataloaders
    if loaders is None and data is not None:  # not loaded yet (configure_optimizers runs first)
        try:
            loaders = getattr(data, f"{split}_dataloader")()
        except (AttributeError, NotImplementedError, MisconfigurationException):
            return  # the data module has no such split
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        for batch in loader or []:
            yield batch[0], batch[1]


__all__ = [
    "MAX_COLUMNS",
    "RTOL",
    "SplitFactorization",
    "factorization",
    "factorize",
    "split_of",
    "tolerance",
]
