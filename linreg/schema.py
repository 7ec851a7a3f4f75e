"""Which file, which columns: the data file checked as a file, its column names, the chosen ones.

Only headers are read here (a CSV's first line, a ``.npy``'s or ``.npz``'s array headers), so
the model's shape is known before any row is. Every mistake is a
:class:`~linreg.errors.UserInputError` that names the file and what to do.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from linreg.csv_reader import CSV_SUFFIXES, csv_header, repeated
from linreg.errors import UserInputError
from linreg.numpy_files import npy_shape, npz_shapes

Column = str | int

_NOT_FILES = (  # what a path can be besides a regular file, as a message says it
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


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


def check_data_file(path: Path) -> None:
    """The path must be a readable, non-empty regular file.

    Looked at with ``stat`` only, so a FIFO or a device such as ``/dev/zero`` is named, never
    opened (reading one would block or never end).
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserInputError(f"data file {path} does not exist. Check --data.path.") from None
    except OSError as error:
        raise UserInputError(
            f"data file {path} cannot be looked at ({error.strerror}). Check --data.path."
        ) from None
    kind = next((name for test, name in _NOT_FILES if test(mode)), None)
    if kind is not None:
        raise UserInputError(
            f"data file {path} is {kind}, not a regular file. Give the path of a .csv, .npy or "
            f".npz file (--data.path); to read from a pipe, save its output to a file first."
        )
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise UserInputError(
            f"data file {path} cannot be read: permission denied. Make it readable for you "
            f"(e.g. chmod a+r {path}), or copy it somewhere you can read it."
        ) from None
    if os.stat(path).st_size == 0:
        expected = "a header row and rows of numbers" if _is_csv(path) else "a NumPy array"
        raise UserInputError(f"{path} is empty: expected {expected}.")


def read_schema(
    path: Path, target: Column | list[Column] | None, features: list[Column] | None, delimiter: str
) -> Schema:
    """Column names from the header (CSV) or the array shapes, and the names of the chosen ones."""
    check_data_file(path)
    suffix = path.suffix.lower()
    if _is_csv(path):
        columns = csv_header(path, delimiter)
        default_targets = columns[-1:]
    elif suffix == ".npy":
        columns = [f"column_{i}" for i in range(npy_shape(path)[1])]
        default_targets = columns[-1:]
    elif suffix == ".npz":
        x_shape, y_shape = npz_shapes(path)
        y_names = (
            ["y"] if y_shape is None or y_shape[1] == 1 else [f"y_{i}" for i in range(y_shape[1])]
        )
        columns = [f"x_{i}" for i in range(x_shape[1])] + (y_names if y_shape is not None else [])
        default_targets = y_names
    else:
        raise UserInputError(
            f"{path}: unsupported file type {suffix!r}; use .csv (.tsv, .txt), .npy or .npz."
        )
    targets = (
        [_name(columns, c) for c in (target if isinstance(target, list) else [target])]
        if target is not None
        else default_targets
    )
    if features is None:
        chosen = [c for c in columns if c not in targets]
        if not chosen:
            raise _only_targets(path, columns, targets)
    else:
        chosen = [_name(columns, c) for c in features]
    for option, names in (("target", targets), ("features", chosen)):
        if not names:
            raise UserInputError(f"--data.{option} is an empty list; name at least one column.")
        if (twice := repeated(names)) is not None:
            raise UserInputError(f"--data.{option} names column {twice!r} twice; list it once.")
    if both := [name for name in chosen if name in targets]:
        raise UserInputError(
            f"{path}: column {both[0]!r} cannot be both a feature and the target. Check "
            f"--data.features and --data.target."
        )
    return Schema(columns, chosen, targets)


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() in CSV_SUFFIXES


def _only_targets(path: Path, columns: list[str], targets: list[str]) -> UserInputError:
    """No column is left for the features: say which columns there are, not an empty option."""
    if len(columns) == 1:
        return UserInputError(
            f"{path} has only one column, {columns[0]!r}, the target: linreg needs at least one "
            f"feature column besides it. Add the feature columns to the file."
        )
    return UserInputError(
        f"{path}: every column ({', '.join(columns)}) is a target, none is left as a feature. "
        f"Name fewer targets with --data.target."
    )


def _name(columns: list[str], column: Column) -> str:
    """A column's name; an index (also as text, ``"3"``, unless that is a name) names one."""
    if isinstance(column, str) and column not in columns and column.lstrip("-").isdigit():
        column = int(column)
    if isinstance(column, int):
        return columns[column] if -len(columns) <= column < len(columns) else str(column)
    return column


__all__ = ["Column", "Schema", "check_data_file", "delimiter_for", "read_schema"]
