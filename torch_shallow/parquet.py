"""Parquet files: rows read one row group at a time for training, and checked batches of rows for conversion.

A Parquet file stores its rows in row groups, and each column of a row group apart, so that a reader decodes only
the row groups and the columns it needs. :func:`open_parquet` gives (X, Y) of a file as :class:`ParquetRows`, which
stand in for tensors as :class:`~torch_shallow.ondisk.NpyRows` do; :func:`parquet_chunks` reads a file for
:func:`~torch_shallow.ondisk.parquet_to_npy`. The label column is named as in a CSV file (the last one by default);
every column must hold numbers (integers, floats or booleans) and no nulls, and have a name of its own. Rows are
counted from 0, as in pyarrow and pandas.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from .data import label_column, label_kind, numpy_column, rows_in_dtype

if TYPE_CHECKING:  # pyarrow is imported where it is used: `import torch_shallow` stays light
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .ondisk import OneHotRows

BATCH_ROWS = 65_536  # rows per chunk of parquet_chunks: Arrow decodes that many at a time, whatever the row groups
MAGIC = b"PAR1"  # the first and last 4 bytes of a Parquet file (Apache Parquet's format specification)


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` is a Parquet file: a regular file that starts and ends with the magic bytes ``PAR1``, whatever
    its name. Anything else, a pipe among them, is not opened, so that its bytes are left for the reader."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC or f.seek(0, os.SEEK_END) < 3 * len(MAGIC):  # and a footer length
                return False
            f.seek(-len(MAGIC), os.SEEK_END)
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class ParquetRows:
    """Rows [start, stop) of some columns of a Parquet file; ``rows[a:b]`` reads rows a to b of the range as a
    (b - a, len(columns)) tensor in ``dtype`` on ``device``, each value converted by PyTorch.

    It has the ``shape``, row slicing and ``device`` that ``fit`` uses, as :class:`~torch_shallow.ondisk.NpyRows`
    has, and converts values as it does, so it stands in for X or Y where the data would not fit in memory. A
    slice decodes the row groups that hold its rows, together in one read, only ``columns`` of them, and keeps them
    for the next slices: ``fit`` reads consecutive blocks of rows, so each row group is decoded once per epoch.
    Each thread that reads (``fit`` passes over a range of blocks on each core) keeps an open reader of the file and the
    row groups of its last slice, so memory holds a slice's row groups per thread, whatever the file's size. Row
    groups outside [start, stop) are never read. A null is an error naming its row.

    A copy (``copy.deepcopy``, ``pickle``) holds its own readers, opened by path when it first reads.
    """

    def __init__(
        self,
        path: str | Path,
        columns: list[str],
        rows: tuple[int, int] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.path, self.columns = Path(path), list(columns)
        self.dtype, self.device = dtype, torch.device(device)
        self._open()
        n = self._offsets[-1]
        if n == 0:
            raise ValueError(f"{self.path} holds no rows; expected at least one sample")
        start, stop = rows or (0, n)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"{self.path}: rows [{start}, {stop}) are outside the file's {n} rows")
        self.start, self.shape = start, (stop - start, len(self.columns))

    def _open(self) -> None:
        """Read and check the file's metadata; no reader is open yet."""
        self._metadata = _checked_metadata(self.path, self.columns)
        # the first row of each row group, and n after the last
        self._offsets = list(
            itertools.accumulate(
                (self._metadata.row_group(i).num_rows for i in range(self._metadata.num_row_groups)), initial=0
            )
        )
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[int, Tensor]] = {}  # thread id -> (first row, rows of whole row groups in dtype)
        self._readers = threading.local()  # .file: this thread's reader

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in ("path", "columns", "dtype", "device", "start", "shape")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        n = self.start + self.shape[0]
        self._open()
        if self._offsets[-1] < n:
            raise ValueError(f"{self.path} holds {self._offsets[-1]} rows now, fewer than the {n} it held")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> Tensor:
        if not isinstance(rows, slice):
            raise TypeError(f"ParquetRows reads row slices such as rows[a:b], got {rows!r}")
        a, b, step = rows.indices(len(self))
        if step != 1:
            raise ValueError("ParquetRows reads contiguous rows only")
        a, b = self.start + a, self.start + max(a, b)  # rows of the file
        parts = []
        while a < b:
            first, kept = self._rows_holding(a, b)
            end = min(b, first + len(kept))
            parts.append(kept[a - first : end - first])
            a = end
        if len(parts) == 1:
            return parts[0].to(self.device, copy=True)  # a copy: the caller gets no view of the kept row groups
        return torch.cat(parts or [torch.empty(0, self.shape[1], dtype=self.dtype)]).to(self.device)

    def _rows_holding(self, a: int, b: int) -> tuple[int, Tensor]:
        """(first row, rows (m, len(columns)) in ``dtype``) of whole row groups holding row a: kept by some thread,
        or decoded together with the row groups up to row b - 1 and kept by this one in place of what it kept
        before."""
        thread = threading.get_ident()
        with self._lock:
            kept = next(((first, rows) for first, rows in self._kept.values() if first <= a < first + len(rows)), None)
            if kept is None:
                self._kept.pop(thread, None)  # let the last ones go before decoding the next
        if kept is None:
            i, j = (bisect.bisect_right(self._offsets, row) - 1 for row in (a, b - 1))  # row groups of rows a, b - 1
            file = getattr(self._readers, "file", None)
            if file is None:  # one reader per thread: threads decode at the same time, and readers are not shared
                file = self._readers.file = _parquet_file(self.path, self._metadata)
            table = file.read_row_groups(list(range(i, j + 1)), columns=self.columns, use_threads=False)
            stacked = torch.from_numpy(np.stack(_numpy_columns(self.path, table, self._offsets[i])))  # (width, m)
            del table  # two copies of the row groups at a time, not three
            kept = self._offsets[i], stacked.T.to(self.dtype, memory_format=torch.contiguous_format)  # (m, width)
            with self._lock:
                self._kept[thread] = kept
        return kept

    def __repr__(self) -> str:
        return (
            f"ParquetRows({str(self.path)!r}, {len(self.columns)} columns, "
            f"rows=({self.start}, {self.start + len(self)}), dtype={self.dtype})"
        )


def open_parquet(
    path: str | Path,
    rows: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    label: str | None = None,
    output: str = "sigmoid",
) -> tuple[ParquetRows, ParquetRows | OneHotRows]:
    """(X, Y) of a Parquet file, rows [start, stop) of both: Y the column named ``label`` (the last column if None),
    X (n, d) the others, in the file's order; see :class:`ParquetRows`. Y holds labels of the kind ``output`` takes
    (:data:`~torch_shallow.data.LABELS`): for softmax outputs the class numbers of the whole file are checked here
    and Y gives them as one-hot rows (n, K) (:class:`~torch_shallow.ondisk.OneHotRows`); otherwise Y is (n, 1), and
    ``fit`` checks the values, as for ``.npy`` data."""
    from .ondisk import OneHotRows  # here: ondisk.py converts Parquet files with this module

    path = Path(path)
    label_kind(output)
    names, k = _features_and_label(path, label)
    X = ParquetRows(path, names[:k] + names[k + 1 :], rows, dtype, device)
    if output == "softmax":
        whole, labels = (ParquetRows(path, [names[k]], part, torch.float64) for part in (None, rows))
        return X, OneHotRows.of_file(whole, labels, dtype, device, f"{path}: column {names[k]!r}")
    return X, ParquetRows(path, [names[k]], rows, dtype, device)


def parquet_chunks(
    path: str | Path, label: str | None = None, dtype: npt.DTypeLike = np.float32, output: str = "sigmoid"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Read a Parquet file ``BATCH_ROWS`` rows at a time: (features (m, d) in ``dtype``, labels (m,)), the labels
    from the column named ``label`` (the last column if None), of the kind ``output`` takes and stored as
    :data:`~torch_shallow.data.LABELS` says, the features from the others in the file's order.

    Each value is rounded once to ``dtype``, so the numbers of a float64 column come out as
    :func:`~torch_shallow.data.csv_chunks` gives them for the same numbers written as text; the checks are the same.
    Memory holds a batch, whatever the file's size.

    Raises:
        ValueError: naming the file: not Parquet, a column that does not hold numbers, a name used twice, fewer than
            2 columns, no column named ``label``, no rows; and the row, for a null, NaN or inf, a value too large for
            ``dtype``, a label of another kind.
    """
    path, dtype = Path(path), np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"parquet_chunks: dtype must be a floating-point type, got {dtype}")
    label_kind(output)
    names, k = _features_and_label(path, label)
    row = 0
    with _parquet_file(path) as file:
        for batch in file.iter_batches(BATCH_ROWS, columns=names, use_threads=False):
            columns = _numpy_columns(path, batch, row)
            chunk = rows_in_dtype(columns, k, dtype, output)
            if chunk is None:
                raise _refused(path, names, columns, k, dtype, output, row)
            yield chunk
            row += batch.num_rows
    if row == 0:
        raise ValueError(f"{path} holds no rows; expected at least one sample")


def _parquet_file(path: Path, metadata: pq.FileMetaData | None = None) -> pq.ParquetFile:
    """The file, read without Arrow's thread pools (``use_threads=False`` too, where it reads), which may make the
    process abort at exit (see :func:`torch_shallow.data._in_order`): ``fit`` runs a reader on each core itself."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, metadata=metadata, pre_buffer=False)


def _features_and_label(path: Path, label: str | None) -> tuple[list[str], int]:
    """The names of all the file's columns, checked, and the label column's index among them."""
    names = _checked_metadata(path, None).schema.to_arrow_schema().names
    if len(names) < 2:
        raise ValueError(f"{path}: expected at least one feature column and a label column, got {names}")
    return names, label_column(names, label, str(path))


def _checked_metadata(path: Path, columns: list[str] | None) -> pq.FileMetaData:
    """The file's metadata, once ``columns`` (all if None) are checked: there, named once, holding numbers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
    except pa.ArrowInvalid as error:  # not Parquet, or damaged
        raise ValueError(f"{path} is not a Parquet file: {error}") from None
    schema = metadata.schema.to_arrow_schema()
    counts = collections.Counter(schema.names)
    for name in schema.names if columns is None else columns:
        if counts[name] != 1:
            raise ValueError(f"{path}: {counts[name]} columns are named {name!r}; expected one, among {schema.names}")
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise ValueError(f"{path}: column {name!r} holds {kind}; expected numbers (integers, floats or booleans)")
    return metadata


def _numpy_columns(path: Path, data: pa.Table | pa.RecordBatch, first_row: int) -> list[np.ndarray]:
    """The columns of ``data``, which starts at row ``first_row`` of the file, as NumPy arrays; a null is an error
    naming its row."""
    for name, column in zip(data.column_names, data.columns):
        if column.null_count:
            row = first_row + int(np.argmax(numpy_column(column.is_null())))
            raise ValueError(f"{path}: row {row}: column {name!r} has no value (null); expected a number")
    return [numpy_column(column) for column in data.columns]


def _refused(
    path: Path, names: list[str], columns: list[np.ndarray], k: int, dtype: np.dtype, output: str, first_row: int
) -> ValueError:
    """The error for the first refused row of a batch starting at row ``first_row``, which :func:`rows_in_dtype`
    refused; in a row, NaN or inf comes first, then a label of another kind, then a value too large for the dtype
    it is stored in, as in a CSV file."""
    kind = label_kind(output)
    stored = [dtype] * len(columns)
    stored[k] = kind.stored or dtype
    with np.errstate(over="ignore", invalid="ignore"):
        infinite = np.stack([~np.isfinite(column) for column in columns])  # (width, m)
        overflows = np.stack([~np.isfinite(c.astype(s)) for c, s in zip(columns, stored)]) & ~infinite
    bad_label = ~kind.valid(columns[k])
    row = int(np.argmax(infinite.any(axis=0) | bad_label | overflows.any(axis=0)))
    where = f"{path}: row {first_row + row}"
    if infinite[:, row].any():
        j = int(np.argmax(infinite[:, row]))
        return ValueError(
            f"{where}: NaN or inf values are not allowed, got {columns[j][row].item()!r} in column {names[j]!r}"
        )
    if bad_label[row]:
        return ValueError(f"{where}: label column {names[k]!r} must be {kind.expected}, got {columns[k][row].item()!r}")
    j = int(np.argmax(overflows[:, row]))
    return ValueError(
        f"{where}: {columns[j][row].item()!r} in column {names[j]!r} is too large for {dtype}, whose "
        f"largest value is {float(np.finfo(dtype).max)!r}"
    )
