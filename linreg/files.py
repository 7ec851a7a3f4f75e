"""Your own table as data: CSV, ``.npy`` (memory-mapped) or ``.npz``, checked and standardized."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from linreg.batching import Array, Batch, BatchTransform
from linreg.data import ArrayDataModule
from linreg.errors import UserInputError

Column = str | int
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
CHUNK_ROWS = 65536


@dataclass(frozen=True)
class Schema:
    """The columns of a file, and which of them are the features and the targets."""

    columns: list[str]
    features: list[int]
    targets: list[int]
    has_targets: bool  # False when the target columns are absent (allowed only to predict)


class FileDataModule(ArrayDataModule):
    """Rows of a CSV, ``.npy`` or ``.npz`` file, split and batched like ``SyntheticDataModule``.

    A ``.npy`` file is memory-mapped: batches are read from disk, so a file larger than memory
    trains. Features (and optionally targets) are standardized with statistics of the training
    split; they are saved in the checkpoint, so ``validate``, ``test`` and ``predict`` of a later
    run transform exactly the same way, and predictions come back in the target's units.

    Args:
        path: the file: ``.csv`` (header row of column names), ``.npy`` (a 2-D array) or
            ``.npz`` (arrays ``x`` and ``y``).
        target: the target column: a name (CSV) or index, or a list of them for several
            outputs. Default: the last column. Ignored for ``.npz`` (``y`` is the target).
        features: the feature columns (names or indices). Default: every other column.
        delimiter: the CSV field separator.
        normalize: standardize the features (mean 0, standard deviation 1 on the training split).
        normalize_target: standardize the targets too (metrics are then in standardized units;
            predictions are always written in the target's own units).
        batch_size: rows per training step.
        val_fraction: share of rows held out for validation, in ``[0, 1)``.
        test_fraction: share of rows held out for testing, in ``[0, 1)``.
        seed: seed of the split and of the shuffling.
    """

    def __init__(
        self,
        path: str,
        target: Column | list[Column] | None = None,
        features: list[Column] | None = None,
        delimiter: str = ",",
        normalize: bool = True,
        normalize_target: bool = False,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, seed)
        self.save_hyperparameters()
        self.path = Path(path)
        self.target, self.features, self.delimiter = target, features, delimiter
        self.normalize, self.normalize_target = normalize, normalize_target
        self.statistics: dict[str, Tensor] = {}
        self._schema: Schema | None = None
        self._arrays: tuple[Array, Array | None] | None = None

    # -- what the data module serves ----------------------------------------------------------

    @property
    def source(self) -> str:
        """The file's path, as error messages name it."""
        return str(self.path)

    @property
    def schema(self) -> Schema:
        """The file's columns and the chosen features and targets (read once, header only)."""
        if self._schema is None:
            self._schema = _read_schema(self.path, self)
        return self._schema

    @property
    def num_features(self) -> int:
        """Number of feature columns: the model's ``in_features``."""
        return len(self.schema.features)

    @property
    def num_targets(self) -> int:
        """Number of target columns: the model's ``out_features``."""
        return len(self.schema.targets)

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in the order the model sees them."""
        return [self.schema.columns[i] for i in self.schema.features]

    @property
    def target_names(self) -> list[str]:
        """Names of the target columns: the header of the predictions file."""
        return [self.schema.columns[i] for i in self.schema.targets]

    def check(self, stage: str) -> None:
        """Read and validate the whole file now, so a bad file fails before any run starts."""
        x, y = self.load_arrays()
        if stage != "predict":
            if y is None:
                raise UserInputError(
                    f"{self.path} has no column {_names(self.target_names)} to use as the target; "
                    f"its columns are: {', '.join(self.schema.columns)}. Set --data.target."
                )
            self.check_split_sizes(len(x), source=str(self.path))

    def load_arrays(self) -> tuple[Array, Array | None]:
        """The feature and target columns, checked for non-numeric and non-finite values."""
        if self._arrays is None:
            self._arrays = _load(self.path, self.schema, self.delimiter)
        return self._arrays

    def batch_transform(self) -> BatchTransform | None:
        """Standardize each batch, when ``normalize`` or ``normalize_target`` is on."""
        if self.normalize or self.normalize_target:
            return self._standardize
        return None

    def inverse_target(self, prediction: Tensor) -> Tensor:
        """Predictions back in the target's own units."""
        if not self.normalize_target:
            return prediction
        stats = self._statistics(prediction.device)
        return prediction * stats["target_std"] + stats["target_mean"]

    def to_original_units(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
        """A model's ``weight`` ``(outputs, features)`` and ``bias`` for the unstandardized file.

        The model sees ``(x - μx) / σx`` and, with ``normalize_target``, predicts
        ``(y - μy) / σy``; this gives the line in the file's own units.
        """
        stats = self._statistics(weight.device) if self.batch_transform() else {}
        weight, bias = weight.detach(), bias.detach() if bias is not None else None
        bias = torch.zeros(weight.shape[0], device=weight.device) if bias is None else bias
        if self.normalize:
            weight = weight / stats["feature_std"]
            bias = bias - weight @ stats["feature_mean"]
        if self.normalize_target:
            weight = weight * stats["target_std"].unsqueeze(1)
            bias = bias * stats["target_std"] + stats["target_mean"]
        return weight, bias

    # -- checkpoint state ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a later run needs to read new files the same way: statistics and column names."""
        statistics = self._statistics(torch.device("cpu")) if self.batch_transform() else {}
        return {
            "statistics": statistics,
            "features": self.feature_names,
            "targets": self.target_names,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the training run's statistics; refuse a file whose features are not the same."""
        if state_dict.get("features") and state_dict["features"] != self.feature_names:
            raise UserInputError(
                f"{self.path} does not have the columns the model was trained on: it was trained "
                f"on features {_names(state_dict['features'])}, this file gives "
                f"{_names(self.feature_names)}. Use a file with the same feature columns."
            )
        self.statistics = {name: value.clone() for name, value in state_dict["statistics"].items()}

    # -- helpers ------------------------------------------------------------------------------

    def _standardize(self, batch: Batch) -> Batch:
        stats = self._statistics(batch[0].device)
        x = (
            (batch[0] - stats["feature_mean"]) / stats["feature_std"]
            if self.normalize
            else batch[0]
        )
        if len(batch) == 1:
            return (x,)
        y = batch[1]
        if self.normalize_target:
            y = (y - stats["target_mean"]) / stats["target_std"]
        return x, y

    def _statistics(self, device: torch.device) -> dict[str, Tensor]:
        """Mean and standard deviation of the training split (computed once, or restored)."""
        if not self.statistics:
            self.statistics = self._training_statistics()
        if next(iter(self.statistics.values())).device != device:
            self.statistics = {k: v.to(device) for k, v in self.statistics.items()}
        return self.statistics

    def _training_statistics(self) -> dict[str, Tensor]:
        x, y = self.load_arrays()
        if y is None:
            raise UserInputError(
                f"{self.path}: standardization statistics need training data with targets; "
                f"predict with --ckpt_path of a trained model."
            )
        rows = self._split_rows(len(x))["train"].numpy()
        stats = {}
        for name, array in (("feature", x), ("target", y)):
            mean, std = _mean_std(array, rows)
            stats[f"{name}_mean"], stats[f"{name}_std"] = mean, std
        return stats


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _read_schema(path: Path, options: FileDataModule) -> Schema:
    """Column names from the header (CSV) or the array shape, and the chosen columns."""
    if not path.is_file():
        raise UserInputError(f"data file {path} does not exist. Check --data.path.")
    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is empty: expected a header row and rows of numbers.")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        columns = _csv_header(path, options.delimiter)
    elif suffix == ".npy":
        array = _open_npy(path)
        columns = [f"column_{i}" for i in range(array.shape[1])]
    elif suffix == ".npz":
        x, y = _open_npz(path)
        names = ["y"] if y.shape[1] == 1 else [f"y_{i}" for i in range(y.shape[1])]
        columns = [f"x_{i}" for i in range(x.shape[1])] + names
        return Schema(columns, list(range(x.shape[1])), list(range(x.shape[1], len(columns))), True)
    else:
        raise UserInputError(f"{path}: unsupported file type {suffix!r}; use .csv, .npy or .npz.")
    target = options.target if options.target is not None else -1
    wanted: list[Column] = target if isinstance(target, list) else [target]
    present = [c for c in wanted if _has_column(columns, c)]
    if present and len(present) < len(wanted):  # some targets there, others not: a typo
        _column_index(
            path, columns, next(c for c in wanted if not _has_column(columns, c)), "target"
        )
    has_targets = len(present) == len(wanted)
    if not has_targets and options.target is None:
        raise UserInputError(f"{path} has no columns.")
    targets: list[int] = (
        [_column_index(path, columns, c, "target") for c in wanted] if has_targets else []
    )
    if options.features is not None:
        features = [_column_index(path, columns, c, "feature") for c in options.features]
    else:
        features = [i for i in range(len(columns)) if i not in targets]
    if set(features) & set(targets):
        raise UserInputError(f"{path}: a column cannot be both a feature and the target.")
    if not features:
        raise UserInputError(f"{path} has no feature columns besides the target.")
    if not has_targets:  # absent targets (predicting): keep their names for the output header
        targets = list(range(len(columns), len(columns) + len(wanted)))
        columns = columns + [str(c) for c in wanted]
    return Schema(columns, features, targets, has_targets)


def _has_column(columns: list[str], column: Column) -> bool:
    if isinstance(column, int):
        return -len(columns) <= column < len(columns)
    return column in columns


def _column_index(path: Path, columns: list[str], column: Column, role: str) -> int:
    if isinstance(column, str) and column.lstrip("-").isdigit() and column not in columns:
        column = int(column)
    if isinstance(column, int):
        if -len(columns) <= column < len(columns):
            return column % len(columns)
        raise UserInputError(
            f"{path}: {role} column index {column} is out of range: it has {len(columns)} columns."
        )
    if column not in columns:
        raise UserInputError(
            f"{path} has no {role} column {column!r}; its columns are: {', '.join(columns)}. "
            f"Check --data.{'target' if role == 'target' else 'features'}."
        )
    return columns.index(column)


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with open(path, newline="") as file:
        rows = (row for row in csv.reader(file, delimiter=delimiter) if row)
        header = next(rows, None)
        first = next(rows, None)
    if header is None:
        raise UserInputError(f"{path} is empty: expected a header row and rows of numbers.")
    if first is None:
        raise UserInputError(f"{path} has a header ({', '.join(header)}) but no data rows.")
    return [name.strip() for name in header]


def _open_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise UserInputError(f"{path} is not a readable .npy array ({error}).") from error
    if array.ndim != 2:
        raise UserInputError(
            f"{path} holds a {array.ndim}-D array of shape {array.shape}; linreg needs a 2-D "
            f"table (rows x columns). Reshape it, e.g. array.reshape(len(array), -1)."
        )
    if len(array) == 0:
        raise UserInputError(f"{path} has no rows.")
    return array


def _open_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise UserInputError(
                    f"{path} must hold arrays named 'x' and 'y'; it holds: "
                    f"{', '.join(archive.files)}."
                )
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError) as error:
        raise UserInputError(f"{path} is not a readable .npz archive ({error}).") from error
    y = y.reshape(len(y), -1) if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise UserInputError(
            f"{path}: 'x' must be 2-D (rows x features) and 'y' have as many rows; got shapes "
            f"{x.shape} and {y.shape}."
        )
    return x, y


def _load(path: Path, schema: Schema, delimiter: str) -> tuple[Array, Array | None]:
    """The feature and target columns (tensors for CSV/.npz, memory-mapped views for .npy)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        table = _open_npy(path)
        _check_finite(path, table, schema)
        y = _columns(table, schema.targets) if schema.has_targets else None
        return _columns(table, schema.features), y
    if suffix == ".npz":
        features, targets = _open_npz(path)
        table = np.hstack([features, targets]).astype(np.float32)
    else:
        table = _read_csv(path, schema, delimiter)
    _check_finite(path, table, schema)
    x = torch.from_numpy(np.ascontiguousarray(table[:, schema.features], dtype=np.float32))
    if not schema.has_targets:
        return x, None
    return x, torch.from_numpy(np.ascontiguousarray(table[:, schema.targets], dtype=np.float32))


def _columns(table: np.ndarray, columns: list[int]) -> np.ndarray:
    """Columns of a memory-mapped table: a view (nothing read) when they are adjacent.

    Scattered columns cannot be a view; those are read into memory once.
    """
    if columns == list(range(columns[0], columns[-1] + 1)):
        return table[:, columns[0] : columns[-1] + 1]
    return np.ascontiguousarray(table[:, columns])


def _read_csv(path: Path, schema: Schema, delimiter: str) -> np.ndarray:
    try:
        table = np.loadtxt(path, delimiter=delimiter, skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as error:
        raise _diagnose_csv(path, delimiter, schema) or UserInputError(
            f"{path}: {error}"
        ) from error
    return table


def _diagnose_csv(path: Path, delimiter: str, schema: Schema) -> UserInputError | None:
    """Find the first row that numpy could not read, with the stdlib's CSV reader."""
    with open(path, newline="") as file:
        reader = csv.reader(file, delimiter=delimiter)
        header = next(reader)
        for number, row in enumerate(reader, start=1):
            if not row:
                continue
            if len(row) != len(header):
                return UserInputError(
                    f"{path}, row {number} (line {reader.line_num}) has {len(row)} values but the "
                    f"header has {len(header)} columns. Fix or remove that row."
                )
            for name, cell in zip(header, row, strict=True):
                try:
                    float(cell)
                except ValueError:
                    what = "is empty" if not cell.strip() else f"is not a number: {cell!r}"
                    return UserInputError(
                        f"{path}, row {number} (line {reader.line_num}), column {name.strip()!r} "
                        f"{what}. Fix or remove that row."
                    )
    return None


def _check_finite(path: Path, table: np.ndarray, schema: Schema) -> None:
    """Fail on NaN or infinite values in the used columns, naming how many and the first."""
    used = schema.features + (schema.targets if schema.has_targets else [])
    bad_count, first = 0, None
    for start in range(0, len(table), CHUNK_ROWS):
        chunk = np.asarray(table[start : start + CHUNK_ROWS][:, used], dtype=np.float64)
        bad = ~np.isfinite(chunk)
        if bad.any():
            bad_count += int(bad.sum())
            if first is None:
                row, column = np.argwhere(bad)[0]
                first = (start + int(row) + 1, schema.columns[used[int(column)]])
    if first is not None:
        raise UserInputError(
            f"{path} has {bad_count} missing or infinite value(s) (NaN/inf); the first is in row "
            f"{first[0]}, column {first[1]!r}. Remove or fill those rows."
        )


def _mean_std(array: Array, rows: np.ndarray) -> tuple[Tensor, Tensor]:
    """Column means and standard deviations over ``rows``, in float64, chunk by chunk."""
    total = None
    squares = None
    for start in range(0, len(rows), CHUNK_ROWS):
        index = rows[start : start + CHUNK_ROWS]
        chunk = (
            array.index_select(0, torch.from_numpy(index)).double()
            if isinstance(array, Tensor)
            else torch.from_numpy(array[index].astype(np.float64))  # reads only these rows
        )
        total = chunk.sum(0) if total is None else total + chunk.sum(0)
        squares = chunk.square().sum(0) if squares is None else squares + chunk.square().sum(0)
    assert total is not None and squares is not None
    mean = total / len(rows)
    std = torch.sqrt(torch.clamp(squares / len(rows) - mean.square(), min=0))
    std = torch.where(std > 1e-12 * torch.clamp(mean.abs(), min=1), std, torch.ones_like(std))
    return mean.float(), std.float()


__all__ = ["FileDataModule", "Schema"]
