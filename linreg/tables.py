"""The chosen columns of a data file as arrays, in the file's precision, checked value by value.

A CSV is parsed to float64 and kept so; an ``.npz``'s float64 or float32 arrays keep their
type (other numbers become float32); a ``.npy`` is memory-mapped as it is. Every value used
must be finite and fit in float32, the precision the SGD model trains in. The readers live in
:mod:`linreg.csv_reader` and :mod:`linreg.numpy_files`, the column choice in
:mod:`linreg.schema`; their public names are importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from linreg.batching import Array
from linreg.csv_reader import CHUNK_ROWS, CSV_SUFFIXES, read_csv
from linreg.errors import UserInputError
from linreg.numpy_files import load_npz, open_npy
from linreg.schema import Column, Schema, delimiter_for, read_schema

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Extremes:
    """Smallest and largest value of each column read (features, then targets), and their rows.

    Rows count from 0. float64, whatever the file's precision.
    """

    low: np.ndarray
    low_row: np.ndarray
    high: np.ndarray
    high_row: np.ndarray


@dataclass(frozen=True)
class Columns:
    """The feature and target columns of a file (``y`` is None when predicting), checked."""

    x: Array
    y: Array | None
    extremes: Extremes


def load_columns(path: Path, schema: Schema, delimiter: str, targets: bool) -> Columns:
    """The feature and (if ``targets``) target columns, checked: numbers, finite, within float32.

    Tensors for CSV (float64) and ``.npz`` (float64 or float32); for ``.npy``, views of the
    memory-mapped file when the columns are adjacent (scattered ones are copied into memory).
    """
    names = schema.features + (schema.targets if targets else [])
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        parts = [read_csv(path, schema.columns, names, delimiter, schema.features)]
        positions = list(range(len(names)))  # the reader returns just these columns, in order
    elif suffix == ".npy":
        parts, positions = [open_npy(path)], schema.positions(names)
    else:
        x, y = load_npz(path, targets)
        parts, positions = ([x] if y is None else [x, y]), schema.positions(names)
    n_features = len(schema.features)
    x = _take(parts, positions[:n_features])
    y = _take(parts, positions[n_features:]) if targets else None
    extremes = check_values(path, [a for a in (x, y) if a is not None], names)
    if suffix == ".npy":
        return Columns(x, y, extremes)  # read batch by batch from the file
    return Columns(_tensor(x), _tensor(y) if y is not None else None, extremes)


def check_values(path: Path, arrays: list[np.ndarray], names: list[str]) -> Extremes:
    """Fail on NaN/inf (how many, the first) or on values beyond float32; else the extremes.

    ``arrays`` share their rows; their columns are ``names``. Read chunk by chunk, in order, so a
    memory-mapped file is read once, sequentially.
    """
    width = len(names)
    low, high = np.full(width, np.inf), np.full(width, -np.inf)
    low_row, high_row = np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.int64)
    bad_count, first, too_large = 0, None, None
    columns = np.arange(width)
    for start in range(0, len(arrays[0]), CHUNK_ROWS):
        chunk = np.hstack([np.asarray(a[start : start + CHUNK_ROWS], np.float64) for a in arrays])
        bad = ~np.isfinite(chunk)
        if bad.any():
            bad_count += int(bad.sum())
            first = first or _first(bad, start)
            continue
        extremes = []
        for rows, best, best_row, better in (
            (chunk.argmin(0), low, low_row, np.less),
            (chunk.argmax(0), high, high_row, np.greater),
        ):
            values = chunk[rows, columns]
            new = better(values, best)  # strictly: the first row of a tie is kept
            best[new], best_row[new] = values[new], start + rows[new]
            extremes.append(values)
        if too_large is None and not _fit_float32(np.concatenate(extremes)).all():
            row, column = _first(~_fit_float32(chunk), 0)  # only in a chunk that has one
            too_large = (start + row, column, float(chunk[row, column]))
    if first is not None:
        raise UserInputError(
            f"{path} has {bad_count} missing or infinite value(s) (NaN/inf); the first is in row "
            f"{first[0] + 1}, column {names[first[1]]!r}. Remove or fill those rows."
        )
    if too_large is not None:
        row, column, value = too_large
        raise UserInputError(
            f"{path}, row {row + 1}, column {names[column]!r} holds {value:g}, too large for "
            f"float32, the precision linreg trains in (at most {FLOAT32_MAX:.3g}). Rescale that "
            f"column."
        )
    return Extremes(low, low_row, high, high_row)


def _take(parts: list[np.ndarray], positions: list[int]) -> np.ndarray:
    """Columns at ``positions`` of the side-by-side ``parts``: a view when they are adjacent.

    Scattered columns cannot be a view; those are copied into memory once.
    """
    offsets = np.cumsum([0] + [part.shape[1] for part in parts])
    for part, offset in zip(parts, offsets, strict=False):
        local = [p - int(offset) for p in positions]
        if local and min(local) >= 0 and max(local) < part.shape[1]:
            if local == list(range(local[0], local[0] + len(local))):
                return part[:, local[0] : local[-1] + 1]
            return np.ascontiguousarray(part[:, local])  # one pass over a memory-mapped file
    whole = np.hstack(parts)  # columns from both arrays of an .npz (in memory already)
    return np.ascontiguousarray(whole[:, positions])


def _fit_float32(values: np.ndarray) -> np.ndarray:
    """Which values stay finite in float32 (a value just above its maximum rounds down to it)."""
    with np.errstate(over="ignore"):
        return np.isfinite(values.astype(np.float32))


def _tensor(array: np.ndarray) -> torch.Tensor:
    """An in-memory array as a tensor: float64 and float32 kept, other numbers as float32."""
    dtype = array.dtype if array.dtype in (np.float64, np.float32) else np.float32
    return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype))


def _first(mask: np.ndarray, start: int) -> tuple[int, int]:
    """Row (counting from ``start``) and column of the first true value of ``mask``."""
    row, column = np.argwhere(mask)[0]
    return start + int(row), int(column)


__all__ = [
    "CHUNK_ROWS",
    "CSV_SUFFIXES",
    "Column",
    "Columns",
    "Extremes",
    "Schema",
    "check_values",
    "delimiter_for",
    "load_columns",
    "read_schema",
]
