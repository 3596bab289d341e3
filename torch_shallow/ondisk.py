"""Data larger than memory: features and labels in NumPy ``.npy`` files, read one block of rows at a time.

A data directory holds ``X.npy`` (n, d) and ``Y.npy`` (n,) or (n, 1), n ≥ 1, C order, any numeric dtype in the
machine's byte order (little-endian). :class:`NpyRows` reads rows with positioned file reads rather than a memory
map, so that the process holds only the blocks it asked for, and a rank of a distributed run opens just its own row
range. :func:`csv_to_npy` and :func:`parquet_to_npy` write such a directory from a CSV or Parquet file in one
streaming pass, without holding the file in memory, and replace the files atomically. Labels are those of an
output's kind (:data:`~torch_shallow.data.LABELS`); :class:`OneHotRows` serves class numbers as one-hot rows.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from pathlib import Path
from typing import Iterable, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from .data import BLOCK_SIZE, LABELS, csv_chunks, label_kind
from .parquet import ParquetRows, parquet_chunks


class NpyRows:
    """Rows [start, stop) of a 2-D array stored in a ``.npy`` file; ``rows[a:b]`` reads rows a to b of the range as a
    tensor in ``dtype`` on ``device``. A 1-D file is read as one column.

    It has the ``shape`` and row slicing that :func:`~torch_shallow.functional.cost_and_gradients` and ``fit`` use,
    so it stands in for X or Y where the data would not fit in memory. A copy (``copy.deepcopy``, ``pickle``)
    opens the file again by path, and holds a file descriptor of its own.
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
        n = self._open()
        start, stop = rows or (0, n)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"{self.path}: rows [{start}, {stop}) are outside the file's {n} rows")
        self.start, self.shape = start, (stop - start, self._width)

    def _open(self) -> int:
        """Read and check the file's header, and open it for reading; returns its number of rows."""
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
        if not self._np_dtype.isnative:  # torch reads numbers in the machine's byte order only
            raise ValueError(
                f"{self.path}: the numbers are {_BYTE_ORDERS[self._np_dtype.byteorder]} ({self._np_dtype.str}); "
                f"expected {sys.byteorder}-endian numbers, as numpy writes them here: save "
                f"X.astype({self._np_dtype.newbyteorder('=').str!r}) instead"
            )
        n, self._width = shape[0], (shape[1] if len(shape) == 2 else 1)
        if n == 0:
            raise ValueError(f"{self.path} holds no rows; expected at least one sample")
        self.rows_in_file = n
        self._fd: int | None = os.open(self.path, os.O_RDONLY)
        size, expected = os.fstat(self._fd).st_size, self._offset + n * self._width * self._np_dtype.itemsize
        if size < expected:
            os.close(self._fd)
            self._fd = None
            raise ValueError(
                f"{self.path}: its header announces {shape} values of {self._np_dtype}, {expected} bytes with the "
                f"header, but the file holds {size}; it is truncated"
            )
        return n

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in ("path", "dtype", "device", "start", "shape", "rows_in_file")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        rows_in_file, width = self.rows_in_file, self.shape[1]
        if self._open() != rows_in_file or self._width != width:
            raise ValueError(
                f"{self.path} holds ({self.rows_in_file}, {self._width}) values now, not the ({rows_in_file}, "
                f"{width}) it held when copied"
            )

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
        # pread: positioned reads, so that threads reading their own ranges (parallel.py) need no shared file offset.
        # _fd is None only after close().
        data = os.pread(cast(int, self._fd), nbytes, self._offset + (self.start + a) * row_bytes)
        if len(data) != nbytes:
            raise ValueError(f"{self.path}: the file ends before row {self.start + b}; it is truncated")
        block = np.frombuffer(data, dtype=self._np_dtype).reshape(-1, self._width)
        return torch.from_numpy(block.copy()).to(device=self.device, dtype=self.dtype)

    def close(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:  # None too when __init__ failed before opening
            os.close(fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NpyRows({str(self.path)!r}, rows=({self.start}, {self.start + len(self)}), dtype={self.dtype})"


_BYTE_ORDERS = {">": "big-endian", "<": "little-endian"}


class OneHotRows:
    """Class numbers 0..K-1 of on-disk rows, one per row, served as one-hot rows: ``rows[a:b]`` is (b - a, K) in
    ``dtype`` on ``device``, made from the labels' slice, so that memory holds a block's one-hot rows only. It
    stands in for Y where a softmax model trains on on-disk data (see :class:`NpyRows`). ``labels`` reads the class
    numbers in float64, exact whatever ``dtype`` (float16 holds whole numbers up to 2048 only)."""

    def __init__(
        self, labels: NpyRows | ParquetRows, classes: int, dtype: torch.dtype, device: torch.device | str
    ) -> None:
        self.labels, self.classes = labels, classes
        self.shape, self.dtype, self.device = (len(labels), classes), dtype, torch.device(device)

    @classmethod
    def of_file(
        cls,
        whole: NpyRows | ParquetRows,
        labels: NpyRows | ParquetRows,
        dtype: torch.dtype,
        device: torch.device | str,
        where: str,
    ) -> OneHotRows:
        """``labels``, some rows of a file whose every row ``whole`` reads, both in float64, as one-hot rows of K
        classes, K the largest class number of the file + 1, the same on every rank of a distributed run. The
        file's labels are checked first, a block at a time, before anything of size K is made; errors start with
        ``where``, name the row and say what was expected."""
        kind, largest = LABELS["softmax"], -1
        for start in range(0, len(whole), _LABEL_BLOCK):
            block = whole[start : start + _LABEL_BLOCK].reshape(-1).numpy()  # float64
            bad = ~kind.valid(block)
            if bad.any():
                row = int(np.argmax(bad))
                raise ValueError(
                    f"{where}: row {start + row}: a label must be {kind.expected} for softmax outputs, got "
                    f"{block[row].item()!r}"
                )
            largest = max(largest, int(block.max()))
        if largest < 1:
            raise ValueError(
                f"{where}: softmax outputs need labels of at least 2 classes 0..K-1, got only class {largest}"
            )
        return cls(labels, largest + 1, dtype, device)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> Tensor:
        classes = self.labels[rows].reshape(-1).long()
        return torch.nn.functional.one_hot(classes, self.classes).to(self.device, self.dtype)

    def __repr__(self) -> str:
        return f"OneHotRows({self.labels!r}, classes={self.classes})"


_LABEL_BLOCK = 1 << 20  # labels checked at a time when a file's classes are counted: 8 MiB in float64


def open_npy(
    directory: str | Path,
    rows: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    output: str = "sigmoid",
) -> tuple[NpyRows, NpyRows | OneHotRows]:
    """(X, Y) of a data directory, rows [start, stop) of both; see :class:`NpyRows`. Y holds labels of the kind
    ``output`` takes (:data:`~torch_shallow.data.LABELS`): for softmax outputs the class numbers of the whole of
    Y.npy are checked here and Y gives them as one-hot rows (n, K) (:class:`OneHotRows`); otherwise Y is (n, 1),
    and ``fit`` checks its values."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory of X.npy and Y.npy")
    label_kind(output)
    X_file, Y_file = (NpyRows(directory / name, dtype=torch.float64) for name in ("X.npy", "Y.npy"))
    if X_file.rows_in_file != Y_file.rows_in_file:  # one sample per row: a label more or less is data that is off
        raise ValueError(
            f"{directory}: X.npy has {X_file.rows_in_file} rows but Y.npy has {Y_file.rows_in_file}; expected one "
            "label per row of features"
        )
    X = NpyRows(directory / "X.npy", rows, dtype, device)
    if output == "softmax":
        labels = NpyRows(directory / "Y.npy", rows, torch.float64)
        return X, OneHotRows.of_file(Y_file, labels, dtype, device, str(directory / "Y.npy"))
    return X, NpyRows(directory / "Y.npy", rows, dtype, device)


def csv_to_npy(
    csv_path: str | Path,
    directory: str | Path,
    label: str | None = None,
    dtype: npt.DTypeLike = np.float32,
    block_size: int = BLOCK_SIZE,
    output: str = "sigmoid",
) -> int:
    """Write X.npy (n, d) and Y.npy (n,) in ``directory`` from a CSV file, read by :func:`~.data.csv_chunks`, its
    labels of the kind ``output`` takes (:data:`~torch_shallow.data.LABELS`: class numbers are written as int32).

    One streaming pass, so the CSV file may be a pipe (``/dev/stdin``, ``<(zcat data.csv.gz)``): each ``.npy`` file
    starts with a header holding a placeholder shape, gets each block's rows as they come, and has its header
    rewritten once n is known. Memory holds a block of ``block_size`` bytes of text and its rows, whatever the
    file's size. Both files are written under hidden temporary names in ``directory`` (created if missing) and
    renamed over X.npy and Y.npy once complete and on disk; on any failure (a bad row, a full disk, Ctrl-C) the
    temporaries are removed, an X.npy and Y.npy that were there are left as they were, and so is a directory that
    was there, while one created here is removed. Returns n, the number of rows.

    Raises:
        ValueError: naming the CSV file and line, as :func:`~torch_shallow.data.csv_chunks`.
        OSError: when a file cannot be written.
    """
    return _write_npy(csv_chunks(csv_path, label, dtype, block_size, output), directory, dtype)


def parquet_to_npy(
    path: str | Path,
    directory: str | Path,
    label: str | None = None,
    dtype: npt.DTypeLike = np.float32,
    output: str = "sigmoid",
) -> int:
    """Write X.npy (n, d) and Y.npy (n,) in ``directory`` from a Parquet file, read by
    :func:`~.parquet.parquet_chunks` a batch of rows at a time and checked as a CSV file's rows are, its labels of
    the kind ``output`` takes; written as
    :func:`csv_to_npy` writes, atomically. The numbers of a float64 column come out as :func:`csv_to_npy` gives
    them from the same numbers written as text. Returns n, the number of rows.

    Raises:
        ValueError: naming the file and the row, as :func:`~torch_shallow.parquet.parquet_chunks`.
        OSError: when a file cannot be read or written.
    """
    return _write_npy(parquet_chunks(path, label, dtype, output), directory, dtype)


def _write_npy(chunks: Iterable[tuple[np.ndarray, np.ndarray]], directory: str | Path, dtype: npt.DTypeLike) -> int:
    """Write X.npy and Y.npy in ``directory`` from chunks (features (m, d) in ``dtype``, labels (m,) in a dtype of
    their own, the same in every chunk), of which ``chunks`` yields at least one or raises: in one pass, atomically,
    as :func:`csv_to_npy` describes. Returns n."""
    directory, dtype = Path(directory), np.dtype(dtype)
    created = [parent for parent in (directory, *directory.parents) if not parent.exists()]  # deepest first
    directory.mkdir(parents=True, exist_ok=True)
    names = ("X.npy", "Y.npy")
    temporaries = [directory / f".{name}.{os.getpid()}.tmp" for name in names]
    try:
        with temporaries[0].open("wb") as fx, temporaries[1].open("wb") as fy:
            fx.write(_npy_header(dtype, (0, 0)))
            fy.write(_npy_header(dtype, (0,)))
            n = 0
            for X, y in chunks:
                fx.write(X.data)  # the arrays' own memory, C order: no copy
                fy.write(y.data)
                n, d, labels = n + len(y), X.shape[1], y.dtype
            for f, header in ((fx, _npy_header(dtype, (n, d))), (fy, _npy_header(labels, (n,)))):
                f.seek(0)
                f.write(header)
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before a rename can make it X.npy or Y.npy
        for temporary, name in zip(temporaries, names):
            os.replace(temporary, directory / name)
    except BaseException:  # Ctrl-C too: no temporary stays behind, nor a directory made for the files
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        for parent in created:
            with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
                parent.rmdir()
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
