"""Reading a CSV table: its header, then the chosen columns as float64, every problem located.

A table of numbers only is read by NumPy's C parser; anything else by the ``csv`` module,
65,536 rows at a time, which also says where a bad cell is. Rows count data rows (row 1 is the
first after the header; blank lines are skipped, not counted); lines count as an editor does.
"""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

import numpy as np

from linreg.csv_text import csv_reader, filled_rows, record_lines, renamed
from linreg.errors import UserInputError

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
CHUNK_ROWS = 65536
SEPARATORS = (",", ";", "\t", "|")  # what a one-column header is checked for
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d[\d.]*,\d+(?:[eE][+-]?\d+)?\s*")


def csv_header(path: Path, delimiter: str) -> list[str]:
    """The names in the first non-blank row, checked: one each, and a data row after them."""
    with csv_reader(path, delimiter) as reader:
        rows = filled_rows(reader)
        header, first = next(rows, None), next(rows, None)
    if header is None:
        raise UserInputError(f"{path} is empty: expected a header row and rows of numbers.")
    if first is None:
        raise UserInputError(f"{path} has a header ({', '.join(header)}) but no data rows.")
    guess = next((s for s in SEPARATORS if s != delimiter and s in header[0]), None)
    if len(header) == 1 and guess is not None:
        commas = ""
        if guess != "," and re.search(r"\d,\d", delimiter.join(first)):
            commas = (
                " Its numbers seem to use decimal commas too: convert them to points (1,5 → 1.5)."
            )
        raise UserInputError(
            f"{path}: found only one column in the header {header[0]!r}; is the separator "
            f"{guess!r}? Set --data.delimiter {guess!r}.{commas}"
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
    if (twice := repeated(columns)) is not None:
        raise UserInputError(
            f"{path}: the header names column {twice!r} twice; give each column its own name."
        )
    return columns


def read_csv(
    path: Path, columns: list[str], names: list[str], delimiter: str, features: list[str]
) -> np.ndarray:
    """The columns ``names`` (of the header's ``columns``) as a float64 array, checked.

    Only these columns must hold numbers; every row must have as many values as the header.
    ``features`` (the chosen feature columns) only shape the advice for a column of text.
    """
    used, width = [columns.index(name) for name in names], len(columns)
    table = _read_numbers_only(path, delimiter)
    if table is not None and table.shape[1] == width:
        return table[:, used]
    chunks, done = [], 0
    with csv_reader(path, delimiter) as reader:
        rows = filled_rows(reader)
        next(rows)  # the header
        while chunk := list(islice(rows, CHUNK_ROWS)):
            wrong = next((i for i, row in enumerate(chunk) if len(row) != width), None)
            if wrong is not None:
                raise _wrong_width(path, delimiter, columns, done + wrong + 1, chunk[wrong])
            cells = [[row[i] for i in used] for row in chunk]
            try:
                chunks.append(np.array(cells, dtype=np.float64))
            except ValueError:
                row, column = _bad_cell(cells)
                where = (done + row + 1, used[column])
                raise _not_a_number(path, delimiter, columns, features, *where) from None
            done += len(chunk)
    return np.concatenate(chunks)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def repeated(names: list[str]) -> str | None:
    """The first name that comes twice, if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _read_numbers_only(path: Path, delimiter: str) -> np.ndarray | None:
    """Every column at C speed (4x the csv module), or None when a cell is not a number."""
    with csv_reader(path, delimiter) as reader:
        next(filled_rows(reader))  # the header, which may follow blank lines
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


def _wrong_width(
    path: Path, delimiter: str, columns: list[str], row: int, values: list[str]
) -> UserInputError:
    """The message for a row with too many or too few values (or a quote left open)."""
    quoted = next((i for i, value in enumerate(values) if "\n" in value or "\r" in value), None)
    if quoted is not None:
        name = columns[quoted] if quoted < len(columns) else f"{quoted + 1}"
        return _open_quote(path, delimiter, row, name, values[:quoted])
    start, _, _ = record_lines(path, delimiter, row)
    return UserInputError(
        f"{path}, row {row} (line {start}) has {len(values)} values but the header has "
        f"{len(columns)} columns. Fix or remove that row."
    )


def _not_a_number(
    path: Path,
    delimiter: str,
    columns: list[str],
    features: list[str],
    row: int,
    position: int,
) -> UserInputError:
    """The message for a cell that is not a number: where, what it holds, what to do."""
    with csv_reader(path, delimiter) as reader:
        values = next(islice(filled_rows(reader), row, row + 1))
    cell, name = values[position], columns[position]
    if "\n" in cell or "\r" in cell:
        return _open_quote(path, delimiter, row, name, values[:position])
    start, _, _ = record_lines(path, delimiter, row)
    where = f"{path}, row {row} (line {start}), column {name!r}"
    if not cell.strip():
        return UserInputError(f"{where} is empty. Fix or remove that row.")
    advice = "Fix or remove that row."
    if _DECIMAL_COMMA.fullmatch(cell):
        how = (
            f"e.g. sed 's/,/./g' {path} > {renamed(path, 'points')}"
            if delimiter != ","
            else "e.g. export it again with a point as the decimal separator"
        )
        advice = (
            f"This file seems to use decimal commas: convert them to points ({cell.strip()} → "
            f"{cell.strip().replace('.', '').replace(',', '.')}), {how}. If the commas "
            f"separate thousands, remove them instead."
        )
    others = [n for n in features if n != name]
    if row == 1 and name in features and others and advice.startswith("Fix"):
        advice += (  # text from the first row on: a column of labels, most likely
            f" If the column holds text in every row, leave it out: --data.features "
            f'"[{", ".join(others)}]".'
        )
    return UserInputError(f"{where} is not a number: {cell!r}. {advice}")


def _open_quote(
    path: Path, delimiter: str, row: int, name: str, before: list[str]
) -> UserInputError:
    """A value that runs over several lines: a quote opened and never closed where it should."""
    start, end, at_end = record_lines(path, delimiter, row)
    line = start + sum(value.count("\n") for value in before)
    runs = f"is never closed: the value runs to the end of the file (line {end})"
    if not at_end:
        runs = f"runs on over the line breaks to line {end}"
    return UserInputError(
        f'{path}, row {row} (line {line}), column {name!r}: a quote (") opens a value that '
        f"{runs}. Close that quote, or remove it."
    )


__all__ = ["CHUNK_ROWS", "CSV_SUFFIXES", "csv_header", "read_csv", "repeated"]
