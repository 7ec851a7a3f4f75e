"""Opening a CSV file as text: UTF-8 only (other encodings named), rows, their line numbers.

Rows count data rows (row 1 is the first after the header; blank lines are skipped, not
counted); lines count as an editor does.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from linreg.errors import UserInputError

_BOMS = (  # longest first: a UTF-32 little-endian mark starts like a UTF-16 one
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


@contextmanager
def csv_reader(path: Path, delimiter: str) -> Iterator[Any]:
    """A ``csv.reader`` over the file, past a UTF-8 byte-order mark; other encodings refused."""
    _check_encoding(path)
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file, delimiter=delimiter)
            yield reader
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"{path} is not UTF-8 text. Save it as UTF-8 (a spreadsheet's 'CSV UTF-8'), or "
            f"convert it, e.g. iconv -f latin1 -t utf-8 {path} > {renamed(path, 'utf8')}."
        ) from error
    except csv.Error as error:
        line = reader.line_num if reader is not None else 1
        raise UserInputError(f"{path}, line {line} is not valid CSV: {error}.") from error


def _check_encoding(path: Path) -> None:
    """UTF-16 and UTF-32 (with a byte-order mark or without) and binary files, named as such."""
    with open(path, "rb") as file:
        head = file.read(4096)
    name = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if name is None and b"\x00" in head:
        # text in UTF-16 without a mark: (nearly) every other byte is zero, the others never
        even, odd = head[0::2], head[1::2]
        if even.count(0) == 0 and odd.count(0) >= 0.9 * len(odd):
            name = "UTF-16LE"
        elif odd.count(0) == 0 and even.count(0) >= 0.9 * len(even):
            name = "UTF-16BE"
        if name is None:
            raise UserInputError(
                f"{path} is not a text file (it holds NUL bytes; a spreadsheet file renamed "
                f"{path.suffix}?). Save the table as CSV UTF-8, or as a .npy array."
            )
    if name is not None:
        raise UserInputError(
            f"{path} is {name} text; linreg reads UTF-8. Convert it, e.g. iconv -f {name} -t "
            f"UTF-8 {path} > {renamed(path, 'utf8')}, or save it as 'CSV UTF-8'."
        )


def renamed(path: Path, tag: str) -> str:
    """A name for a converted copy: ``data.csv`` -> ``data_utf8.csv``."""
    return str(path.with_name(f"{path.stem}_{tag}{path.suffix}"))


def filled_rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The rows that are not blank: a blank or whitespace-only line is skipped, not counted."""
    return (row for row in reader if filled(row))


def filled(row: list[str]) -> bool:
    """Whether a row holds anything but blanks."""
    return len(row) > 1 or bool(row and row[0].strip())


def record_lines(path: Path, delimiter: str, row: int) -> tuple[int, int, bool]:
    """Data row ``row``'s first and last line, and whether the file ends with it."""
    with csv_reader(path, delimiter) as reader:
        seen = -1  # the header is row 0
        while True:
            start = reader.line_num + 1
            values = next(reader)
            if filled(values):
                seen += 1
                if seen == row:
                    end = reader.line_num
                    return start, end, next(filled_rows(reader), None) is None


__all__ = ["csv_reader", "filled", "filled_rows", "record_lines", "renamed"]
