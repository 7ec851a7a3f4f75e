"""Standardization: statistics computed once in float64, stable and scale-invariant, checked.

Means and standard deviations come from one pass over the training rows, chunk by chunk: each
chunk's mean and sum of squared deviations (M2) are merged with Chan et al.'s formula, which
keeps a column like ``1e8 + small noise`` exact where ``E[x²] - mean²`` cancels to nothing. A
column is constant only when its smallest and largest values are equal; its standard deviation is
then 1. There is no absolute floor, so a column of values around 1e-12 is standardized like any
other. Batches are standardized in their own precision with the float64 statistics cast once per
precision and device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from linreg.batching import Batch
from linreg.errors import UserInputError

NAMES = ("feature_mean", "feature_std", "target_mean", "target_std")


@dataclass(frozen=True)
class Moments:
    """Row count; per column the mean and M2 of ``x - shift``, and the extremes of ``x``.

    Every chunk of a pass is taken about the same ``shift`` (the first chunk's mean), so the
    means merged are small and exact even for values like ``1e8 + noise``, whose float64 mean
    itself carries a rounding error of 1.5e-8.
    """

    count: int
    shift: Tensor
    mean: Tensor
    m2: Tensor
    low: Tensor
    high: Tensor

    @classmethod
    def of(cls, chunk: Tensor, shift: Tensor | None = None) -> Moments:
        """The moments of one chunk of rows, in float64, by the corrected two-pass algorithm.

        A column sum along the rows may be a plain running sum, which leaves a first mean off;
        the deviations from it are small, so their own mean corrects it (Björck; Chan, Golub
        and LeVeque).
        """
        chunk = chunk.double()
        shift = chunk.mean(0) if shift is None else shift
        deviations = chunk - shift
        correction = deviations.mean(0)
        m2 = (deviations - correction).square().sum(0)
        return cls(len(chunk), shift, correction, m2, chunk.amin(0), chunk.amax(0))

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows (Chan, Golub and LeVeque's pairwise update)."""
        count = self.count + other.count
        delta = other.mean - self.mean
        return Moments(
            count,
            self.shift,
            self.mean + delta * (other.count / count),
            self.m2 + other.m2 + delta.square() * (self.count * other.count / count),
            torch.minimum(self.low, other.low),
            torch.maximum(self.high, other.high),
        )

    def centre(self) -> Tensor:
        """The column means."""
        return self.shift + self.mean

    def std(self) -> Tensor:
        """Population standard deviation; 1 for a constant column (smallest == largest)."""
        std = torch.sqrt(self.m2 / self.count)
        return torch.where(self.low == self.high, torch.ones_like(std), std)


def training_statistics(batches: Iterable[tuple[Tensor, ...]]) -> dict[str, Tensor]:
    """``feature_mean``, ``feature_std``, ``target_mean``, ``target_std`` (float64, on the CPU).

    One pass over ``batches`` of ``(x, y)`` rows (the training split, untransformed).
    """
    totals: list[Moments] = []
    for batch in batches:
        if not totals:  # the first chunk sets the shift
            totals = [Moments.of(part) for part in batch[:2]]
            continue
        totals = [
            total.merge(Moments.of(part, total.shift))
            for part, total in zip(batch[:2], totals, strict=True)
        ]
    if not totals:
        raise ValueError("no training rows to compute standardization statistics from")
    features, targets = totals
    return {
        "feature_mean": features.centre().cpu(),
        "feature_std": features.std().cpu(),
        "target_mean": targets.centre().cpu(),
        "target_std": targets.std().cpu(),
    }


def checked_statistics(
    saved: Any, features: list[str], targets: list[str], needed: tuple[str, ...]
) -> dict[str, Tensor]:
    """Statistics read back from a checkpoint, checked, as float64 (float32 ones are upcast).

    Each must be a float tensor with one value per feature (``feature_*``) or target
    (``target_*``), finite, and a standard deviation must be positive. ``needed`` are the names
    the data module's settings use.
    """
    if not isinstance(saved, Mapping):
        raise _damaged(f"they are {type(saved).__name__}, not a table of tensors")
    for name in needed:
        if name not in saved:
            option, what = (
                ("normalize", "features") if name.startswith("feature") else
                ("normalize_target", "targets")
            )  # fmt: skip
            raise UserInputError(
                f"the checkpoint holds no standardization statistics for the {what} ({name!r} "
                f"is missing), but --data.{option} is true: the model was trained without "
                f"standardizing them. Set --data.{option} false, as in training, or give a "
                f"checkpoint trained with it."
            )
    statistics = {}
    for name in NAMES:
        if name not in saved:
            continue
        value, columns = saved[name], features if name.startswith("feature") else targets
        if not isinstance(value, Tensor) or not value.is_floating_point():
            what = str(value.dtype) if isinstance(value, Tensor) else type(value).__name__
            raise _damaged(f"{name!r} holds {what}, not floating-point numbers")
        if value.shape != (len(columns),):
            raise _damaged(
                f"{name!r} has shape {list(value.shape)}, but there are {len(columns)} "
                f"{name.split('_')[0]} column(s) ({', '.join(columns)})"
            )
        value = value.detach().to("cpu", torch.float64)
        wrong = ~torch.isfinite(value)
        if name.endswith("_std"):
            wrong |= value <= 0
        if wrong.any():
            index = int(wrong.nonzero()[0])
            raise _damaged(
                f"{name!r} is {float(value[index]):g} for column {columns[index]!r}"
                + (", and a standard deviation must be positive" if name.endswith("std") else "")
            )
        statistics[name] = value
    return statistics


def _damaged(problem: str) -> UserInputError:
    return UserInputError(
        f"the checkpoint's standardization statistics are invalid: {problem}. The checkpoint is "
        f"damaged or was not written by linreg fit; use another one, or train again."
    )


class Standardizer:
    """Applies float64 statistics to batches of any precision, casting them once per kind.

    Args:
        features: standardize the features (``x``).
        targets: standardize the targets (``y``).
    """

    def __init__(self, features: bool, targets: bool) -> None:
        self.features, self.targets = features, targets
        self.statistics: dict[str, Tensor] = {}
        self._cast: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def set(self, statistics: dict[str, Tensor]) -> None:
        """Use these (float64) statistics from now on."""
        self.statistics, self._cast = statistics, {}

    def get(self, name: str, like: Tensor) -> Tensor:
        """Statistic ``name`` in ``like``'s precision and on its device (cast once, then kept)."""
        key = (name, like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = self.statistics[name].to(like.device, like.dtype)
        return self._cast[key]

    def __call__(self, batch: Batch) -> Batch:
        """``(x, y)`` or ``(x,)`` standardized as configured."""
        x = batch[0]
        if self.features:
            x = (x - self.get("feature_mean", x)) / self.get("feature_std", x)
        if len(batch) == 1:
            return (x,)
        y = batch[1]
        if self.targets:
            y = (y - self.get("target_mean", y)) / self.get("target_std", y)
        return x, y


__all__ = ["Moments", "Standardizer", "checked_statistics", "training_statistics"]
