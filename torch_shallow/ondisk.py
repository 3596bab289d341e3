"""Data larger than memory: features and labels in NumPy ``.npy`` files, read one block of rows at a time.

A data directory holds ``X.npy`` (n, d) and ``Y.npy`` (n,) or (n, 1), C order, any numeric dtype.
:class:`NpyRows` reads rows with positioned file reads rather than a memory map, so that the process holds only
the blocks it asked for, and a rank of a distributed run opens just its own row range. :func:`csv_to_npy` writes such a
directory from a CSV file, streaming, without holding the file in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .data import csv_rows


class NpyRows:
    """Rows [start, stop) of a 2-D array stored in a ``.npy`` file; ``rows[a:b]`` reads rows a to b of the range as a
    tensor in ``dtype`` on ``device``. A 1-D file is read as one column.

    It has the ``shape`` and row slicing that :func:`~torch_shallow.functional.cost_and_gradients` and ``fit`` use,
    so it stands in for X or Y where the data would not fit in memory.
    """

    def __init__(self, path: str | Path, rows: tuple[int, int] | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        self.dtype, self.device = dtype, torch.device(device)
        with self.path.open("rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran_order, self._np_dtype = read_header(f)
            except ValueError as error:
                raise ValueError(f"{self.path} is not a .npy file: {error}") from None
            self._offset = f.tell()
        if fortran_order or len(shape) not in (1, 2) or self._np_dtype.kind not in "biuf":
            raise ValueError(f"{self.path}: expected a 1-D or 2-D numeric array in C order, got shape {shape}, "
                             f"dtype {self._np_dtype}{', Fortran order' if fortran_order else ''}")
        n, self._width = shape[0], (shape[1] if len(shape) == 2 else 1)
        start, stop = rows or (0, n)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"{self.path}: rows [{start}, {stop}) are outside the file's {n} rows")
        self.start, self.shape = start, (stop - start, self._width)
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


def open_npy(directory: str | Path, rows: tuple[int, int] | None = None, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> tuple[NpyRows, NpyRows]:
    """(X, Y) of a data directory, rows [start, stop) of both; see :class:`NpyRows`."""
    directory = Path(directory)
    X, Y = (NpyRows(directory / name, rows, dtype, device) for name in ("X.npy", "Y.npy"))
    if X.shape[0] != Y.shape[0] or X.start != Y.start:
        raise ValueError(f"{directory}: X.npy has {X.shape[0]} rows in range but Y.npy has {Y.shape[0]}")
    return X, Y


def csv_to_npy(csv_path: str | Path, directory: str | Path, label: str | None = None,
               dtype: np.dtype = np.float32, chunk_rows: int = 65_536) -> int:
    """Write X.npy and Y.npy in ``directory`` from a CSV file (see :func:`~torch_shallow.data.load_csv`).

    Two streaming passes: the first checks every row and counts them, the second writes ``chunk_rows`` rows at a
    time after the ``.npy`` headers, so memory stays bounded whatever the file's size. Returns the number of rows.
    """
    n, d = 0, None
    for features, _ in csv_rows(csv_path, label):
        n, d = n + 1, len(features)
    if n == 0:
        raise ValueError(f"{csv_path}: no data rows after the header")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(dtype)
    with (directory / "X.npy").open("wb") as fx, (directory / "Y.npy").open("wb") as fy:
        for f, shape in ((fx, (n, d)), (fy, (n,))):
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                     "fortran_order": False, "shape": shape})
        xs, ys = [], []
        for features, y in csv_rows(csv_path, label):
            xs.append(features)
            ys.append(y)
            if len(xs) == chunk_rows:
                fx.write(np.asarray(xs, dtype=dtype).tobytes())
                fy.write(np.asarray(ys, dtype=dtype).tobytes())
                xs, ys = [], []
        fx.write(np.asarray(xs, dtype=dtype).reshape(-1, d).tobytes())
        fy.write(np.asarray(ys, dtype=dtype).tobytes())
    return n
