"""Reading NumPy files: a ``.npy`` table memory-mapped as it is, an ``.npz``'s ``x`` and ``y``.

Shapes and types come from the arrays' headers, so the columns are known (and a file that would
not fit in memory is refused) before any data is read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from linreg.errors import UserInputError
from linreg.memory import gib, require_memory

Shape = tuple[int, ...]
_NPY_MAGIC = b"\x93NUMPY"


def open_npy(path: Path) -> np.ndarray:
    """The 2-D table of a ``.npy`` file, memory-mapped read-only: nothing is read yet."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UserInputError(f"{path} is not a readable .npy array ({error}).") from error
    _check_table(path, array.shape, array.dtype, "array")
    return array


def npy_shape(path: Path) -> Shape:
    """The checked shape of a ``.npy`` table, from its header."""
    return open_npy(path).shape  # a memory map reads the header only


def npz_shapes(path: Path) -> tuple[Shape, Shape | None]:
    """The shapes of an ``.npz``'s ``x`` and ``y`` (``y`` as a column when 1-D; None if absent).

    Read from the arrays' headers only, and checked: ``x`` 2-D, ``y`` with as many rows, numbers.
    """
    headers = _npz_headers(path)
    if "x" not in headers:
        raise UserInputError(
            f"{path} must hold an array named 'x' (the features) and, to train, 'y' (the "
            f"targets); it holds: {', '.join(headers) or 'nothing'}."
        )
    (x_shape, x_dtype), y_header = headers["x"], headers.get("y")
    y_shape = y_header[0] if y_header is not None else None
    if len(x_shape) != 2 or (
        y_shape is not None and (len(y_shape) not in (1, 2) or y_shape[0] != x_shape[0])
    ):
        shapes = f"{x_shape}" + (f" and {y_shape}" if y_shape is not None else "")
        raise UserInputError(
            f"{path}: 'x' must be 2-D (rows x features) and 'y' have as many rows; got shapes "
            f"{shapes}."
        )
    _check_table(path, x_shape, x_dtype, "array 'x'")
    if y_header is None or y_shape is None:
        return x_shape, None
    _check_table(path, (y_shape[0], 1), y_header[1], "array 'y'")
    return x_shape, (y_shape[0], int(np.prod(y_shape[1:], dtype=np.int64)))


def load_npz(path: Path, targets: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """An ``.npz``'s ``x`` and (if ``targets`` and present) ``y`` as a column or table.

    The memory they need is checked against what is available before anything is read.
    """
    headers = _npz_headers(path)
    wanted = ["x", "y"] if targets and "y" in headers else ["x"]
    sizes = {name: _nbytes(*headers[name]) for name in wanted}
    listed = ", ".join(f"'{n}' {headers[n][0]} {headers[n][1]}: {gib(s)}" for n, s in sizes.items())
    require_memory(
        sum(sizes.values()),
        f"{path}: its arrays ({listed}) need",
        "Save the table as one .npy file instead, e.g. np.save('table.npy', "
        "np.column_stack([x, y])): linreg memory-maps a .npy file rather than loading it.",
    )
    try:
        with np.load(path, allow_pickle=False) as archive:
            x = archive["x"]
            y = archive["y"] if len(wanted) == 2 else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise UserInputError(f"{path} is not a readable .npz archive ({error}).") from error
    return x, (y.reshape(len(y), -1) if y is not None else None)


def _npz_headers(path: Path) -> dict[str, tuple[Shape, np.dtype]]:
    """Shape and type of each array in an ``.npz`` archive, from the member headers alone."""
    with open(path, "rb") as file:
        if file.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise UserInputError(
                f"{path} is not a readable .npz archive (it holds one array; save named arrays "
                f"with np.savez(path, x=, y=))."
            )
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(member)
                headers[info.filename.removesuffix(".npy")] = (tuple(shape), dtype)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise UserInputError(f"{path} is not a readable .npz archive ({error}).") from error
    return headers


def _nbytes(shape: Shape, dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _check_table(path: Path, shape: Shape, dtype: np.dtype, what: str) -> None:
    """A 2-D table with rows, of numbers."""
    if len(shape) != 2:
        raise UserInputError(
            f"{path} holds a {len(shape)}-D array of shape {shape}; linreg needs a 2-D "
            f"table (rows x columns). Reshape it, e.g. array.reshape(len(array), -1)."
        )
    if shape[0] == 0:
        raise UserInputError(f"{path} has no rows.")
    if dtype.kind not in "biuf":
        raise UserInputError(f"{path}: the {what} holds {dtype} values; linreg needs numbers.")


__all__ = ["load_npz", "npy_shape", "npz_shapes", "open_npy"]
