"""Reading a table of numbers from a file: CSV, ``.npy`` (memory-mapped) or ``.npz``, checked.

Every mistake in a file is a :class:`~linreg.errors.UserInputError` that names the file and,
where it applies, the row, the column and what to do.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linreg.batching import Array
from linreg.errors import UserInputError

Column = str | int
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
CHUNK_ROWS = 65536
SEPARATORS = (",", ";", "\t", "|")  # what a one-column header is checked for


@dataclass(frozen=True)
class Schema:
    """A file's column names, and the names of the feature and target columns chosen from them.

    A chosen column may be missing from the file: a target when predicting (it is ignored), or
    a mistake, which :meth:`FileDataModule.check` reports.
    """

    columns: list[str]
    features: list[str]
    targets: list[str]

    def positions(self, names: list[str]) -> list[int]:
        """Where the columns ``names`` are in the file."""
        return [self.columns.index(name) for name in names]

    def missing(self, names: list[str]) -> list[str]:
        """Those of ``names`` that the file does not have."""
        return [name for name in names if name not in self.columns]


def delimiter_for(delimiter: str | None, path: Path) -> str:
    r"""The CSV separator: by default a tab for ``.tsv``; ``\t`` typed as two characters is one."""
    if delimiter is None:
        return "\t" if path.suffix.lower() == ".tsv" else ","
    delimiter = "\t" if delimiter == "\\t" else delimiter
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise UserInputError(
            f"--data.delimiter must be one character other than a quote or a line break (\\t for "
            f"a tab), got {delimiter!r}."
        )
    return delimiter


def read_schema(
    path: Path, target: Column | list[Column] | None, features: list[Column] | None, delimiter: str
) -> Schema:
    """Column names from the header (CSV) or the array shape, and the names of the chosen ones."""
    if not path.is_file():
        raise UserInputError(f"data file {path} does not exist. Check --data.path.")
    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is empty: expected a header row and rows of numbers.")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        columns = _csv_header(path, delimiter)
        default_targets = columns[-1:]
    elif suffix == ".npy":
        columns = [f"column_{i}" for i in range(_open_npy(path).shape[1])]
        default_targets = columns[-1:]
    elif suffix == ".npz":
        x, y = _open_npz(path)
        y_names = ["y"] if y is None or y.shape[1] == 1 else [f"y_{i}" for i in range(y.shape[1])]
        columns = [f"x_{i}" for i in range(x.shape[1])] + (y_names if y is not None else [])
        default_targets = y_names
    else:
        raise UserInputError(f"{path}: unsupported file type {suffix!r}; use .csv, .npy or .npz.")
    targets = (
        [_name(columns, c) for c in (target if isinstance(target, list) else [target])]
        if target is not None
        else default_targets
    )
    chosen = (
        [_name(columns, c) for c in features]
        if features is not None
        else [c for c in columns if c not in targets]
    )
    for option, names in (("target", targets), ("features", chosen)):
        if not names:
            raise UserInputError(f"--data.{option} is an empty list; name at least one column.")
        if (twice := _repeated(names)) is not None:
            raise UserInputError(f"--data.{option} names column {twice!r} twice; list it once.")
    if both := [name for name in chosen if name in targets]:
        raise UserInputError(
            f"{path}: column {both[0]!r} cannot be both a feature and the target. Check "
            f"--data.features and --data.target."
        )
    if not chosen:
        raise UserInputError(f"{path} has no feature columns besides the target.")
    return Schema(columns, chosen, targets)


def _name(columns: list[str], column: Column) -> str:
    """A column's name; an index (also as text, ``"3"``, unless that is a name) names one."""
    if isinstance(column, str) and column not in columns and column.lstrip("-").isdigit():
        column = int(column)
    if isinstance(column, int):
        return columns[column] if -len(columns) <= column < len(columns) else str(column)
    return column


def _repeated(names: list[str]) -> str | None:
    """The first name that comes twice, if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


@contextmanager
def _csv_reader(path: Path, delimiter: str) -> Iterator[Any]:
    """A ``csv.reader`` over the file, past a UTF-8 byte-order mark; non-UTF-8 text is refused."""
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=delimiter)
            yield reader
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"{path} is not UTF-8 text. Save it as UTF-8 (a spreadsheet's 'CSV UTF-8'), or "
            f"convert it, e.g. iconv -f latin1 -t utf-8 {path} > {path.stem}_utf8{path.suffix}."
        ) from error
    except csv.Error as error:
        line = reader.line_num if reader is not None else 1
        raise UserInputError(f"{path}, line {line} is not valid CSV: {error}.") from error


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The rows that are not blank: a blank or whitespace-only line is skipped, not counted."""
    return (row for row in reader if len(row) > 1 or (row and row[0].strip()))


def _csv_header(path: Path, delimiter: str) -> list[str]:
    """The names in the first non-blank row, checked: one each, and a data row after them."""
    with _csv_reader(path, delimiter) as reader:
        rows = _rows(reader)
        header, first = next(rows, None), next(rows, None)
    if header is None:
        raise UserInputError(f"{path} is empty: expected a header row and rows of numbers.")
    if first is None:
        raise UserInputError(f"{path} has a header ({', '.join(header)}) but no data rows.")
    guess = next((s for s in SEPARATORS if s != delimiter and s in header[0]), None)
    if len(header) == 1 and guess is not None:
        raise UserInputError(
            f"{path}: found only one column in the header {header[0]!r}; is the separator "
            f"{guess!r}? Set --data.delimiter {guess!r}."
        )
    columns = [name.strip() for name in header]
    if all(_is_number(name) for name in columns):
        raise UserInputError(
            f"{path}: the first line ({', '.join(columns)}) holds numbers, not column names: "
            f"linreg reads the first line as the header. Add a header row, e.g. "
            f"{delimiter.join(f'x{i}' for i in range(1, len(columns))) + delimiter}y."
        )
    if "" in columns:
        position = columns.index("") + 1
        trailing = " (a delimiter at the end of the line?)" if position == len(columns) else ""
        raise UserInputError(
            f"{path}: column {position} of the header has no name{trailing}; name every column, "
            f"or remove the empty one."
        )
    if (twice := _repeated(columns)) is not None:
        raise UserInputError(
            f"{path}: the header names column {twice!r} twice; give each column its own name."
        )
    return columns


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _open_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UserInputError(f"{path} is not a readable .npy array ({error}).") from error
    if array.ndim != 2:
        raise UserInputError(
            f"{path} holds a {array.ndim}-D array of shape {array.shape}; linreg needs a 2-D "
            f"table (rows x columns). Reshape it, e.g. array.reshape(len(array), -1)."
        )
    if len(array) == 0:
        raise UserInputError(f"{path} has no rows.")
    return _numeric(path, array, "array")


def _open_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays ``x`` and ``y`` (``None`` when absent: such a file can only be predicted on)."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array; save named arrays with np.savez(path, x=, y=)")
        with archive:
            names = archive.files
            x, y = (archive[name] if name in names else None for name in ("x", "y"))
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise UserInputError(f"{path} is not a readable .npz archive ({error}).") from error
    if x is None:
        raise UserInputError(
            f"{path} must hold an array named 'x' (the features) and, to train, 'y' (the "
            f"targets); it holds: {', '.join(names) or 'nothing'}."
        )
    if x.ndim != 2 or (y is not None and (y.ndim not in (1, 2) or len(y) != len(x))):
        shapes = f"{x.shape}" + (f" and {y.shape}" if y is not None else "")
        raise UserInputError(
            f"{path}: 'x' must be 2-D (rows x features) and 'y' have as many rows; got shapes "
            f"{shapes}."
        )
    y = y.reshape(len(y), -1) if y is not None else None
    return _numeric(path, x, "array 'x'"), (
        _numeric(path, y, "array 'y'") if y is not None else None
    )


def _numeric(path: Path, array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise UserInputError(
            f"{path}: the {what} holds {array.dtype} values; linreg needs numbers."
        )
    return array


def load_columns(
    path: Path, schema: Schema, delimiter: str, targets: bool
) -> tuple[Array, Array | None]:
    """The feature and (if ``targets``) target columns, checked.

    Tensors for CSV and ``.npz``; for ``.npy``, views of the memory-mapped file.
    """
    names = schema.features + (schema.targets if targets else [])
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        table, used = _read_csv(path, schema, names, delimiter), list(range(len(names)))
    else:
        features, labels = _open_npz(path) if suffix == ".npz" else (_open_npy(path), None)
        table = features if labels is None else np.hstack([features, labels])
        used = schema.positions(names)
    _check_finite(path, table, used, names)
    x, y = used[: len(schema.features)], used[len(schema.features) :]
    if suffix == ".npy":  # views of the memory-mapped file
        return _columns(table, x), _columns(table, y) if targets else None
    x_tensor, y_tensor = (
        torch.from_numpy(np.ascontiguousarray(table[:, columns], dtype=np.float32))
        for columns in (x, y)
    )
    return x_tensor, y_tensor if targets else None


def _columns(table: np.ndarray, columns: list[int]) -> np.ndarray:
    """Columns of a memory-mapped table: a view (nothing read) when they are adjacent.

    Scattered columns cannot be a view; those are read into memory once.
    """
    if columns == list(range(columns[0], columns[-1] + 1)):
        return table[:, columns[0] : columns[-1] + 1]
    return np.ascontiguousarray(table[:, columns])


def _read_csv(path: Path, schema: Schema, names: list[str], delimiter: str) -> np.ndarray:
    """The columns ``names`` as float64.

    Only these columns must hold numbers; every row must have as many values as the header.
    Rows are counted from the first after the header; blank lines are skipped, not counted.
    A table of numbers only is read by NumPy's C parser; anything else by the csv module,
    which also says what is wrong and where.
    """
    used, width = schema.positions(names), len(schema.columns)
    table = _read_numbers_only(path, delimiter)
    if table is not None and table.shape[1] == width:
        return table[:, used]
    chunks, done = [], 0
    with _csv_reader(path, delimiter) as reader:
        rows = _rows(reader)
        next(rows)  # the header
        while chunk := list(islice(rows, CHUNK_ROWS)):
            wrong = next((i for i, row in enumerate(chunk) if len(row) != width), None)
            if wrong is not None:
                raise UserInputError(
                    f"{_row(path, delimiter, done + wrong + 1)} has {len(chunk[wrong])} values "
                    f"but the header has {width} columns. Fix or remove that row."
                )
            cells = [[row[i] for i in used] for row in chunk]
            try:
                chunks.append(np.array(cells, dtype=np.float64))
            except ValueError:
                row, column = _bad_cell(cells)
                cell = cells[row][column]
                what = "is empty" if not cell.strip() else f"is not a number: {cell!r}"
                advice = "Fix or remove that row."
                others = [name for name in schema.features if name != names[column]]
                if done + row == 0 and cell.strip() and names[column] in schema.features and others:
                    advice += (  # text from the first row on: a column of labels, most likely
                        f" If the column holds text in every row, leave it out: --data.features "
                        f'"[{", ".join(others)}]".'
                    )
                raise UserInputError(
                    f"{_row(path, delimiter, done + row + 1)}, column {names[column]!r} {what}. "
                    f"{advice}"
                ) from None
            done += len(chunk)
    return np.concatenate(chunks)


def _read_numbers_only(path: Path, delimiter: str) -> np.ndarray | None:
    """Every column at C speed (4x the csv module), or None when a cell is not a number."""
    with _csv_reader(path, delimiter) as reader:
        next(_rows(reader))  # the header, which may follow blank lines
        header_lines = reader.line_num
    try:
        return np.loadtxt(
            path, delimiter=delimiter, skiprows=header_lines, quotechar='"', comments=None,
            encoding="utf-8-sig", ndmin=2, dtype=np.float64,
        )  # fmt: skip
    except (ValueError, UnicodeError):
        return None


def _bad_cell(cells: list[list[str]]) -> tuple[int, int]:
    """Row and column of the first cell that is not a number (NumPy reads them with float)."""
    for row, values in enumerate(cells):
        for column, cell in enumerate(values):
            try:
                float(cell)
            except ValueError:
                return row, column
    raise AssertionError("every cell is a number")


def _row(path: Path, delimiter: str, row: int) -> str:
    """``path, row N (line M)``: row 1 is the first data row, lines count as an editor does."""
    with _csv_reader(path, delimiter) as reader:
        for _ in islice(_rows(reader), row + 1):  # the header and ``row`` data rows
            pass
        return f"{path}, row {row} (line {reader.line_num})"


def _check_finite(path: Path, table: np.ndarray, used: list[int], names: list[str]) -> None:
    """Fail on NaN/inf in the ``used`` columns (how many, the first) or on values beyond float32.

    float32 is the precision the model trains in: a larger value would become inf there.
    """
    bad_count, first, too_large = 0, None, None
    for start in range(0, len(table), CHUNK_ROWS):
        chunk = np.asarray(table[start : start + CHUNK_ROWS][:, used])
        bad = ~np.isfinite(chunk)
        with np.errstate(over="ignore"):
            large = ~bad & ~np.isfinite(chunk.astype(np.float32))
        bad_count += int(bad.sum())
        if first is None and bad.any():
            first = _first(bad, start)
        if too_large is None and large.any():
            too_large = _first(large, start)
    if first is not None:
        raise UserInputError(
            f"{path} has {bad_count} missing or infinite value(s) (NaN/inf); the first is in row "
            f"{first[0] + 1}, column {names[first[1]]!r}. Remove or fill those rows."
        )
    if too_large is not None:
        row, column = too_large
        raise UserInputError(
            f"{path}, row {row + 1}, column {names[column]!r} holds "
            f"{float(table[row, used[column]]):g}, too large for float32, the precision linreg "
            f"trains in (at most {np.finfo(np.float32).max:.3g}). Rescale that column."
        )


def _first(mask: np.ndarray, start: int) -> tuple[int, int]:
    """Row (counting from ``start``) and column of the first true value of ``mask``."""
    row, column = np.argwhere(mask)[0]
    return start + int(row), int(column)


__all__ = ["CSV_SUFFIXES", "Column", "Schema", "delimiter_for", "load_columns", "read_schema"]
