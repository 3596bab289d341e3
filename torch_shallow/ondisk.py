"""Data larger than memory: features and labels in NumPy ``.npy`` files, read one block of rows at a time.

A data directory holds ``X.npy`` (n, d) and ``Y.npy`` (n,) or (n, 1), n ≥ 1, C order, any numeric dtype.
:class:`NpyRows` reads rows with positioned file reads rather than a memory map, so that the process holds only
the blocks it asked for, and a rank of a distributed run opens just its own row range. :func:`csv_to_npy` and
:func:`parquet_to_npy` write such a directory from a CSV or Parquet file in one streaming pass, without holding the
file in memory, and replace the files atomically.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from .data import BLOCK_SIZE, csv_chunks
from .parquet import parquet_chunks


class NpyRows:
    """Rows [start, stop) of a 2-D array stored in a ``.npy`` file; ``rows[a:b]`` reads rows a to b of the range as a
    tensor in ``dtype`` on ``device``. A 1-D file is read as one column.

    It has the ``shape`` and row slicing that :func:`~torch_shallow.functional.cost_and_gradients` and ``fit`` use,
    so it stands in for X or Y where the data would not fit in memory.
    """

    def __init__(
        self,
        path: str | Path,
        rows: tuple[int, int] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.path = Path(path)
        self.dtype, self.device = dtype, torch.device(device)
        with self.path.open("rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran_order, self._np_dtype = read_header(f)
            except ValueError as error:
                raise ValueError(f"{self.path} is not a .npy file: {error}") from None
            self._offset = f.tell()
        if fortran_order or len(shape) not in (1, 2) or self._np_dtype.kind not in "biuf":
            raise ValueError(
                f"{self.path}: expected a 1-D or 2-D numeric array in C order, got shape {shape}, "
                f"dtype {self._np_dtype}{', Fortran order' if fortran_order else ''}"
            )
        n, self._width = shape[0], (shape[1] if len(shape) == 2 else 1)
        if n == 0:
            raise ValueError(f"{self.path} holds no rows; expected at least one sample")
        start, stop = rows or (0, n)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"{self.path}: rows [{start}, {stop}) are outside the file's {n} rows")
        self.start, self.shape, self.rows_in_file = start, (stop - start, self._width), n
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> Tensor:
        if not isinstance(rows, slice):
            raise TypeError(f"NpyRows reads row slices such as rows[a:b], got {rows!r}")
        a, b, step = rows.indices(len(self))
        if step != 1:
            raise ValueError("NpyRows reads contiguous rows only")
        row_bytes = self._width * self._np_dtype.itemsize
        nbytes = max(b - a, 0) * row_bytes
        # pread: positioned reads, so that threads reading their own ranges (parallel.py) need no shared file offset
        data = os.pread(self._fd, nbytes, self._offset + (self.start + a) * row_bytes)
        if len(data) != nbytes:
            raise ValueError(f"{self.path}: the file ends before row {self.start + b}; it is truncated")
        block = np.frombuffer(data, dtype=self._np_dtype).reshape(-1, self._width)
        return torch.from_numpy(block.copy()).to(device=self.device, dtype=self.dtype)

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:  # None too when __init__ failed before opening
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NpyRows({str(self.path)!r}, rows=({self.start}, {self.start + len(self)}), dtype={self.dtype})"


def open_npy(
    directory: str | Path,
    rows: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[NpyRows, NpyRows]:
    """(X, Y) of a data directory, rows [start, stop) of both; see :class:`NpyRows`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory of X.npy and Y.npy")
    X, Y = (NpyRows(directory / name, rows, dtype, device) for name in ("X.npy", "Y.npy"))
    if X.rows_in_file != Y.rows_in_file:  # one sample per row: a label more or less is data that does not match
        raise ValueError(f"{directory}: X.npy has {X.rows_in_file} rows but Y.npy has {Y.rows_in_file}")
    return X, Y


def csv_to_npy(
    csv_path: str | Path,
    directory: str | Path,
    label: str | None = None,
    dtype: npt.DTypeLike = np.float32,
    block_size: int = BLOCK_SIZE,
) -> int:
    """Write X.npy (n, d) and Y.npy (n,) in ``directory`` from a CSV file, read by :func:`~.data.csv_chunks`.

    One streaming pass, so the CSV file may be a pipe (``/dev/stdin``, ``<(zcat data.csv.gz)``): each ``.npy`` file
    starts with a header holding a placeholder shape, gets each block's rows as they come, and has its header
    rewritten once n is known. Memory holds a block of ``block_size`` bytes of text and its rows, whatever the
    file's size. Both files are written under hidden temporary names in ``directory`` (created if missing) and
    renamed over X.npy and Y.npy once complete and on disk; on any failure (a bad row, a full disk, Ctrl-C) the
    temporaries are removed and an X.npy and Y.npy that were there are left as they were. Returns n, the number of
    rows.

    Raises:
        ValueError: naming the CSV file and line, as :func:`~torch_shallow.data.csv_chunks`.
        OSError: when a file cannot be written.
    """
    return _write_npy(csv_chunks(csv_path, label, dtype, block_size), directory, dtype)


def parquet_to_npy(
    path: str | Path, directory: str | Path, label: str | None = None, dtype: npt.DTypeLike = np.float32
) -> int:
    """Write X.npy (n, d) and Y.npy (n,) in ``directory`` from a Parquet file, read by
    :func:`~.parquet.parquet_chunks` a batch of rows at a time and checked as a CSV file's rows are; written as
    :func:`csv_to_npy` writes, atomically. The numbers of a float64 column come out as :func:`csv_to_npy` gives
    them from the same numbers written as text. Returns n, the number of rows.

    Raises:
        ValueError: naming the file and the row, as :func:`~torch_shallow.parquet.parquet_chunks`.
        OSError: when a file cannot be read or written.
    """
    return _write_npy(parquet_chunks(path, label, dtype), directory, dtype)


def _write_npy(chunks: Iterable[tuple[np.ndarray, np.ndarray]], directory: str | Path, dtype: npt.DTypeLike) -> int:
    """Write X.npy and Y.npy in ``directory`` from chunks (features (m, d), labels (m,)) in ``dtype``, of which
    ``chunks`` yields at least one or raises: in one pass, atomically, as :func:`csv_to_npy` describes. Returns n."""
    directory, dtype = Path(directory), np.dtype(dtype)
    directory.mkdir(parents=True, exist_ok=True)
    names = ("X.npy", "Y.npy")
    temporaries = [directory / f".{name}.{os.getpid()}.tmp" for name in names]
    try:
        with temporaries[0].open("wb") as fx, temporaries[1].open("wb") as fy:
            fx.write(_npy_header(dtype, (0, 0)))
            fy.write(_npy_header(dtype, (0,)))
            n = 0
            for X, y in chunks:
                fx.write(X)  # the arrays' own memory, C order: no copy
                fy.write(y)
                n, d = n + len(y), X.shape[1]
            for f, shape in ((fx, (n, d)), (fy, (n,))):
                f.seek(0)
                f.write(_npy_header(dtype, shape))
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before a rename can make it X.npy or Y.npy
        for temporary, name in zip(temporaries, names):
            temporary.replace(directory / name)
    except BaseException:  # Ctrl-C too: no temporary stays behind
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the renames, which live in the directory, survive a crash
    finally:
        os.close(fd)
    return n


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` version 1.0 header of a C-order array, as in numpy.lib.format: the magic string and version, the
    length of the rest as a little-endian uint16, and the dict literal padded with spaces and ending in "\\n", so that
    the data starts at a multiple of 64 bytes. The padding leaves room for any shape with as many axes, so that a
    header with a placeholder shape can be overwritten by the final one in place."""

    def literal(shape: tuple[int, ...]) -> str:
        return repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})

    magic = b"\x93NUMPY\x01\x00"  # version 1.0
    longest = literal((sys.maxsize,) * len(shape))
    size = -(-(len(magic) + 2 + len(longest) + 1) // 64) * 64  # 2: the length field, 1: the closing newline
    text = literal(shape).ljust(size - len(magic) - 2 - 1) + "\n"
    return magic + struct.pack("<H", len(text)) + text.encode("latin1")
