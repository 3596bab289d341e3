"""Data sets: the deeplearning.ai planar "flower", two other generated 2-D sets, and a user's CSV file.

Every loader returns (X (n, d), Y (n, 1)) as float tensors, ready for ``ShallowNet`` and ``fit``.

CSV files are parsed by Apache Arrow's CSV reader (``pyarrow.csv``: C++, on all cores, straight into float64
columns), one block of whole records at a time. Python's csv module and ``float()`` read again, row by row, only a
block in which Arrow or the checks found something wrong, to name the first bad line.
"""

from __future__ import annotations

import codecs
import collections
import csv
import functools
import io
import itertools
import math
import os
import re
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, TypeVar, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from .labels import MAX_CLASSES

if TYPE_CHECKING:  # pyarrow is imported where it is used: `import torch_shallow` stays light
    import _csv  # csv.reader's type

    import pyarrow as pa
    from pyarrow import csv as arrow_csv

T = TypeVar("T")
U = TypeVar("U")


def _tensors(X: np.ndarray, y: np.ndarray, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return torch.as_tensor(X, dtype=dtype), torch.as_tensor(y, dtype=dtype).reshape(-1, 1)


def planar(dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The planar "flower" of the deeplearning.ai course (``planar_utils.load_planar_dataset``): 400 points.

    NumPy's legacy generator seeded with 1; for class j = 0, 1, 200 points each::

        t = linspace(3.12 j, 3.12 (j + 1), 200) + 0.2 randn(200)
        r = 4 sin(4 t) + 0.2 randn(200)
        x = (r sin t, r cos t),  y = j
    """
    rng = np.random.RandomState(1)  # the course's np.random.seed(1), same stream
    m, petals, a = 200, 4, 4.0
    X, y = [], []
    for j in range(2):
        t = np.linspace(3.12 * j, 3.12 * (j + 1), m) + rng.randn(m) * 0.2
        r = a * np.sin(petals * t) + rng.randn(m) * 0.2
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(m, j))
    return _tensors(np.concatenate(X), np.concatenate(y), dtype)


def moons(n: int = 400, noise: float = 0.2, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Two interleaved half circles (the shape of scikit-learn's ``make_moons``), with Gaussian noise."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    s_outer = np.linspace(0, math.pi, n_outer)
    s_inner = np.linspace(0, math.pi, n - n_outer)
    X = np.concatenate([np.c_[np.cos(s_outer), np.sin(s_outer)], np.c_[1 - np.cos(s_inner), 0.5 - np.sin(s_inner)]])
    y = np.r_[np.zeros(n_outer), np.ones(n - n_outer)]
    return _tensors(X + noise * rng.standard_normal(X.shape), y, dtype)


def circles(
    n: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """A circle of label 1 inside a circle of label 0, radius ratio ``factor`` (as ``make_circles``), with noise."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    s_outer = np.linspace(0, 2 * math.pi, n_outer, endpoint=False)
    s_inner = np.linspace(0, 2 * math.pi, n - n_outer, endpoint=False)
    X = np.concatenate([np.c_[np.cos(s_outer), np.sin(s_outer)], factor * np.c_[np.cos(s_inner), np.sin(s_inner)]])
    y = np.r_[np.zeros(n_outer), np.ones(n - n_outer)]
    return _tensors(X + noise * rng.standard_normal(X.shape), y, dtype)


DATASETS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {"planar": planar, "moons": moons, "circles": circles}


# Bytes of CSV text per block: enough that Arrow's cost per call (half a millisecond) is a tenth of its parse, little
# enough that the blocks in flight (one per core, one read ahead), their columns and arrays, and what the allocators
# keep of them take about 20 MiB (twice as much with 4 MiB blocks).
BLOCK_SIZE = 1 << 20
_LINE_END = re.compile(rb"\r\n|\n|\r")  # as Python's csv module and Arrow end lines
# A well-formed quoted field, as Python's csv module reads one in strict mode: a quote where a field starts, anything
# with its quotes doubled, a quote where the field ends. A quote left over once these are removed is malformed.
_QUOTED_FIELD = re.compile(rb'(?:^|(?<=[,\r\n]))"[^"]*+(?:""[^"]*+)*+"(?=[,\r\n]|\Z)')


@dataclass(frozen=True)
class LabelKind:
    """The labels that the cost of an output takes, as files hold them."""

    expected: str  # what each label must be, in errors
    valid: Callable[[np.ndarray], np.ndarray]  # which labels are, elementwise (NaN is none)
    stored: np.dtype | None  # the dtype labels are read in and Y.npy holds; None: the features' dtype


def _class_numbers(labels: np.ndarray) -> np.ndarray:
    valid: np.ndarray = (labels >= 0) & (labels < MAX_CLASSES) & (labels == np.floor(labels))
    return valid


# The label kind of each output (ShallowNet's ``output``, the command line's --output): binary cross-entropy takes
# 0 or 1, softmax cross-entropy class numbers (whole, served one-hot), squared error any real number.
LABELS = {
    "sigmoid": LabelKind("0 or 1", lambda labels: (labels == 0) | (labels == 1), None),
    "softmax": LabelKind(f"a class number 0, 1, ..., {MAX_CLASSES - 1}", _class_numbers, np.dtype(np.int32)),
    "identity": LabelKind("a finite number", np.isfinite, None),
}


def label_kind(output: str) -> LabelKind:
    """The labels of ``output``, one of :data:`LABELS`."""
    if output not in LABELS:
        raise ValueError(f"output must be one of {', '.join(LABELS)}, got {output!r}")
    return LABELS[output]


def valid_labels(labels: np.ndarray, output: str = "sigmoid") -> np.ndarray:
    """Which labels the cost of ``output`` takes (see :data:`LABELS`)."""
    return label_kind(output).valid(labels)


def load_csv(
    path: str | Path, label: str | None = None, dtype: torch.dtype = torch.float32, output: str = "sigmoid"
) -> tuple[Tensor, Tensor]:
    """Load a CSV file with a header row: numeric feature columns and one column of labels of the kind ``output``
    takes (:data:`LABELS`): 0 or 1 (sigmoid), class numbers 0, 1, ..., K - 1 (softmax), any number (identity). A
    Parquet file (:func:`~torch_shallow.parquet.is_parquet`, whatever its name) is read as one, into memory too.

    Args:
        path: the file, read in one pass, so a pipe such as ``/dev/stdin`` works too.
        label: the label column's name; the last column if None.
        dtype: the tensors' dtype, one that NumPy has (float16, float32, float64).
        output: the output whose labels the label column holds.

    Returns:
        X (n, d) and Y (n, 1): each value as Python's ``float()`` reads it, rounded once to ``dtype``. At its peak
        memory holds the chunks read and the tensors made of them: about twice the data in ``dtype``.

    Raises:
        ValueError: naming the file and line, for each problem listed in :func:`csv_chunks`.
    """
    try:
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        raise ValueError(f"load_csv: dtype must be one that NumPy has, such as torch.float32, got {dtype}") from None
    from .parquet import is_parquet, parquet_chunks  # here: parquet.py reads its checks from this module

    read = parquet_chunks if is_parquet(path) else csv_chunks
    chunks = list(read(path, label, np_dtype, output=output))
    return _tensors(np.concatenate([X for X, _ in chunks]), np.concatenate([y for _, y in chunks]), dtype)


def csv_chunks(
    path: str | Path,
    label: str | None = None,
    dtype: npt.DTypeLike = np.float32,
    block_size: int = BLOCK_SIZE,
    output: str = "sigmoid",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Read a CSV file in one pass, block by block: (features (m, d), labels (m,)) in ``dtype`` for each block.

    The file is UTF-8 text (a leading byte-order mark is skipped): a header row naming the d + 1 columns, then one
    row of numbers per sample; blank lines are skipped. The label column (``label``, the last column if None) must
    hold labels of the kind ``output`` takes (:data:`LABELS`); class numbers come as int32.
    Each value is read as the float64 that Python's ``float()`` gives, the correctly rounded one, and
    rounded once to ``dtype``.

    The file is read ``block_size`` bytes at a time, cut after the last whole record (a record longer than that
    makes a longer block); each block's rows come as one chunk, m ≥ 1. Arrow parses the blocks into float64
    columns, one block on each core at a time, and they come out in order, so that memory holds a few blocks
    whatever the file's size. A block that Arrow refuses, or that holds a value that the checks refuse, is read
    again, row by row, by Python's csv module and ``float()``, which name the first bad line; that reading also
    decides what Arrow reads otherwise: a row of blank cells (skipped), "1_000" (1000). The line is found by reading
    the file again up to the block; a pipe's lines are counted as it is read.

    Raises:
        ValueError: naming the file and the line, for an empty file, a first row of numbers instead of a header,
            fewer than 2 columns, no column named ``label`` or more than one; a row of the wrong length, a value
            that is not a number, NaN or inf, too large for ``dtype`` (1e308 in float32), a label of another
            kind; a malformed record (an unclosed quote, a field over csv's 128 KiB limit); bytes that are not
            UTF-8; no data rows; and a Parquet file, which :func:`load_csv` reads but this function does not.
    """
    from .parquet import is_parquet  # here: parquet.py reads its checks from this module

    path, dtype = Path(path), np.dtype(dtype)
    label_kind(output)
    if is_parquet(path):  # else its first bytes would be "not UTF-8 text"
        raise ValueError(f"{path} is a Parquet file, not CSV text; read it with load_csv, open_parquet or convert")
    if dtype.kind != "f":
        raise ValueError(f"csv_chunks: dtype must be a floating-point type, got {dtype}")
    if block_size < 1:
        raise ValueError(f"csv_chunks: block_size must be at least 1 byte, got {block_size}")
    with path.open("rb") as f:
        blocks = _blocks(f, block_size)
        line, header, k, rest = _header(path, blocks, label)
        n = 0
        numbered, options = _numbered(f, itertools.chain([rest], blocks), line), _arrow_options(len(header))
        for (block, first_line), parsed in _in_order(
            lambda item: _parsed(item[0], options, k, dtype, output), numbered
        ):
            X, y = parsed or _reread(path, block, first_line(), header, k, dtype, output)
            if len(y):
                n += len(y)
                yield X, y
    if n == 0:
        raise ValueError(f"{path}: no data rows after the header")


def label_column(columns: list[str], label: str | None, where: str) -> int:
    """The index of the label column among ``columns``: the one named ``label``, the last one if None. Errors
    start with ``where``."""
    if label is None:
        return len(columns) - 1
    count = columns.count(label)
    if count == 0:
        raise ValueError(f"{where}: no label column {label!r}; the columns are {columns}")
    if count > 1:
        raise ValueError(f"{where}: {count} columns are named {label!r}; the label column's name must be unique")
    return columns.index(label)


def rows_in_dtype(
    columns: list[np.ndarray], k: int, dtype: np.dtype, output: str = "sigmoid"
) -> tuple[np.ndarray, np.ndarray] | None:
    """(features (m, d) in ``dtype``, labels (m,) as :data:`LABELS` stores them) from d + 1 columns of m numbers,
    the labels from column k, each value rounded once; None if a value is NaN or inf or rounds to inf, or a label
    is not of the kind ``output`` takes."""
    kind = label_kind(output)
    labels = columns[k]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow gives inf, refused below
        X = np.stack(columns[:k] + columns[k + 1 :]).T.astype(dtype, order="C")  # stacked (d, m), then (m, d)
        y = labels.astype(kind.stored or dtype)
    if not (np.isfinite(X).all() and kind.valid(labels).all() and np.isfinite(y).all()):
        return None
    return X, y


def numpy_column(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column of numbers or booleans without nulls as a NumPy array: a view of its memory where it is one
    chunk of numbers, booleans unpacked from their bits. Not ``to_numpy()``, which imports pandas where it is
    installed (45 MiB and a fraction of a second, for conversions that numbers do not need)."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_boolean(kind):
        dtype = np.dtype(bool)
    else:
        dtype = np.dtype(
            ("f" if pa.types.is_floating(kind) else "i" if pa.types.is_signed_integer(kind) else "u")
            + str(kind.bit_width // 8)
        )
    arrays = []
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        if len(chunk) == 0:
            continue
        data = chunk.buffers()[1]  # [0] is the validity bitmap, unused without nulls
        if dtype.kind == "b":
            bits = np.unpackbits(np.frombuffer(data, np.uint8), count=chunk.offset + len(chunk), bitorder="little")
            arrays.append(bits[chunk.offset :].view(bool))
        else:
            arrays.append(np.frombuffer(data, dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize))
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays) if arrays else np.empty(0, dtype)


def _numbered(
    f: BinaryIO, blocks: Iterator[tuple[int, bytearray]], line: int
) -> Iterator[tuple[bytearray, Callable[[], int]]]:
    """(block, a function giving its first line) for each (offset in ``f``, block), the first block starting on
    ``line``. Only an error needs a line. A file's lines are counted when one is asked for, by reading the file again
    up to the block with positioned reads, which leave the reading where it is; a pipe, which cannot be read again,
    has its lines counted as its blocks pass (a tenth of the time that Arrow takes to parse them)."""
    seekable, start = f.seekable(), None
    for offset, block in blocks:
        if seekable:
            start = offset if start is None else start
            yield block, functools.partial(_line_at, f.fileno(), start, offset, line)
        else:
            yield block, functools.partial(int, line)  # int(line) is line
            line += _line_count(block)


def _line_at(fd: int, start: int, stop: int, line: int) -> int:
    """The line of byte ``stop`` of the file ``fd``, where byte ``start`` is on ``line``."""
    previous = b""
    while start < stop and (data := os.pread(fd, min(BLOCK_SIZE, stop - start), start)):
        line += _line_count(data) - (previous.endswith(b"\r") and data.startswith(b"\n"))  # "\r\n" cut in two
        previous, start = data, start + len(data)
    return line


def _in_order(fn: Callable[[T], U], items: Iterator[T]) -> Iterator[tuple[T, U]]:
    """(item, fn(item)) for each item, in order, fn running on as many items at once as there are cores, in threads
    of this process, while the items are being read and the results used.

    Arrow releases the GIL while it parses, so that the threads run in parallel. They are Python's threads, not
    Arrow's (``use_threads``): a process that has run Arrow's CSV reader on Arrow's thread pool and imported torch
    aborts at exit, in "terminate called without an active exception", about one time in two here (Arrow's
    issues 34314 and 39862)."""
    import pyarrow as pa

    workers = pa.cpu_count()  # Arrow's count of cores, which OMP_NUM_THREADS lowers
    with ThreadPoolExecutor(workers) as pool:
        running: collections.deque[tuple[T, Future[U]]] = collections.deque()
        for item in items:
            running.append((item, pool.submit(fn, item)))
            if len(running) > workers:  # one more than the workers, read ahead: none of them waits for the reading
                item, result = running.popleft()
                yield item, result.result()
        for item, result in running:
            yield item, result.result()


def _blocks(f: io.BufferedIOBase, block_size: int) -> Iterator[tuple[int, bytearray]]:
    """(offset, block): the bytes of ``f`` in blocks of whole records, each with where it starts in ``f``;
    ``block_size`` bytes read at a time after what the last block left, cut after the last line end outside
    quotes. A record longer than that waits for more bytes, unless its open field is already over csv's limit: that
    block is handed on whole, for the second reading to name the error. The last block is what remains at the end
    of the file."""
    rest: bytes | bytearray
    rest, size, offset = b"", block_size, 0
    while True:
        block = bytearray(len(rest) + size)  # read into: no copy of the block but the rest's
        block[: len(rest)] = rest
        got = f.readinto(memoryview(block)[len(rest) :])
        del block[len(rest) + got :]
        if not got:
            break
        end = _record_end(block)
        if end == 0 and not _open_field_over_limit(block):
            rest, size = block, len(block)  # read as much again: a long record takes a few reads, not one per block
            continue
        end = end or len(block)
        rest, size = bytes(block[end:]), block_size
        del block[end:]
        yield offset, block
        offset += end
    if rest:
        yield offset, bytearray(rest)


def _record_end(data: bytes | bytearray) -> int:
    """Where the last whole record of ``data`` ends (``data`` starts with a record): just after its last line end
    outside quotes, 0 if none. A line end is outside quotes where an even number of quotes comes before it; a "\\r"
    at the very end does not count, since a "\\n" may follow it."""
    end = _last_line_end(data, len(data))
    if b'"' not in data:
        return end
    odd = data.count(b'"', 0, end) % 2
    while end and odd:  # the line ends after the last quote before end are inside quotes too
        previous = _last_line_end(data, data.rfind(b'"', 0, end))
        odd ^= data.count(b'"', previous, end) % 2
        end = previous
    return end


def _last_line_end(data: bytes | bytearray, stop: int) -> int:
    """Just after the last "\\n" before ``stop``, or, where there is none, the last "\\r" (a "\\r" at the end of
    ``data`` excluded); 0 if none. Not the last of both: files end lines in "\\n" or "\\r\\n" but for a few, and
    any line end outside quotes ends a record."""
    return (data.rfind(b"\n", 0, stop) + 1) or (data.rfind(b"\r", 0, min(stop, len(data) - 1)) + 1)


def _open_field_over_limit(data: bytes | bytearray) -> bool:
    """Whether the last field of ``data``, a record without its end, is already longer than csv's field limit. It
    starts after the last comma, or, where a quote is open, at the last quote or before."""
    start = data.rfind(b'"') if data.count(b'"') % 2 else data.rfind(b",") + 1
    return len(data) - start > csv.field_size_limit()


def _line_count(data: bytes | bytearray) -> int:
    count = data.count(b"\n")
    if b"\r" in data:  # rare: "\r\n" (Windows) is one line end, "\r" (classic Mac OS) another
        count += data.count(b"\r") - data.count(b"\r\n")
    return count


def _header(
    path: Path, blocks: Iterator[tuple[int, bytearray]], label: str | None
) -> tuple[int, list[str], int, tuple[int, bytearray]]:
    """(the line after the header, the header's cells, the label column k, (offset, the rest of the header's
    block)): the first record that is not blank, read by Python's csv module, and checked."""
    first = 1  # the block's first line
    for offset, block in blocks:
        if offset == 0 and block.startswith(codecs.BOM_UTF8):
            offset, block = len(codecs.BOM_UTF8), block[len(codecs.BOM_UTF8) :]
        reader = _reader(block)
        record = next(_records(path, reader, first), None)
        if record is None:  # blank lines only
            first += _line_count(block)
            continue
        line, header = record
        _check_utf8(path, line, header)
        header = [h.strip() for h in header]
        if all(_is_float(h) for h in header):
            raise ValueError(f"{path}:{line}: expected a header row naming the columns, got numbers {header}")
        if len(header) < 2:
            raise ValueError(f"{path}:{line}: expected at least one feature column and a label column, got {header}")
        k = label_column(header, label, f"{path}:{line}")
        ends = list(itertools.islice(_LINE_END.finditer(block), reader.line_num))
        start = ends[-1].end() if len(ends) == reader.line_num else len(block)  # or the file ends on the header
        return first + reader.line_num, header, k, (offset + start, block[start:])
    raise ValueError(f"{path}: the file is empty; expected a header row, then one row per sample")


def _arrow_options(width: int) -> tuple[arrow_csv.ReadOptions, arrow_csv.ConvertOptions]:
    """How Arrow reads a block of records of ``width`` numbers; made once per file rather than per block, which saves
    8% of the time of parsing 1 MiB blocks."""
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    names = [str(j) for j in range(width)]  # not the header's names, which may repeat
    # each block in one piece (Arrow cuts what it reads in pieces of block_size bytes), on the calling thread (see
    # _in_order)
    read = arrow_csv.ReadOptions(column_names=names, block_size=2**31 - 1, use_threads=False)
    # no null values: "" and "NA" are refused, "NaN" is read as NaN and refused, as with float()
    convert = arrow_csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.float64()), null_values=[], quoted_strings_can_be_null=False
    )
    return read, convert


@functools.cache
def _parse_options(quoted: bool) -> arrow_csv.ParseOptions:
    """Only a block with quotes can have a line end inside a value; allowing one slows Arrow's splitting of what it
    reads."""
    from pyarrow import csv as arrow_csv

    return arrow_csv.ParseOptions(newlines_in_values=quoted)


def _parsed(
    block: bytes | bytearray,
    options: tuple[arrow_csv.ReadOptions, arrow_csv.ConvertOptions],
    k: int,
    dtype: np.dtype,
    output: str,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Arrow's reading of a block of whole records, with :func:`_arrow_options`: (features (m, d), labels (m,)) in
    ``dtype``; None where Arrow fails, where a value is refused, and where Arrow would read otherwise than Python's
    csv module: a field that may be over csv's limit (Arrow has none), a malformed quoted field (Arrow reads it as
    it can), a byte-order mark (Arrow skips one at the start of what it reads, here a block)."""
    quoted = b'"' in block
    if (
        _may_hold_a_long_field(block)
        or (quoted and b'"' in _QUOTED_FIELD.sub(b"", block))
        or block.startswith(codecs.BOM_UTF8)
    ):
        return None
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    read, convert = options
    try:
        # the C library's malloc hands a parse's large buffers back to the system when they are freed; Arrow's
        # default pool keeps them in each thread's cache (5 MiB more at load_csv's peak, 200,000 × 33 numbers)
        table = arrow_csv.read_csv(
            pa.py_buffer(block),
            read_options=read,
            parse_options=_parse_options(quoted),
            convert_options=convert,
            memory_pool=pa.system_memory_pool(),
        )
    except pa.ArrowInvalid:
        return None
    return rows_in_dtype([numpy_column(column) for column in table.columns], k, dtype, output)


def _may_hold_a_long_field(block: bytes | bytearray) -> bool:
    """Whether a field of ``block`` may be longer than csv's limit: such a field covers a whole window of half the
    limit, aligned, without a comma. One find per window, which stops at the window's first comma."""
    window = csv.field_size_limit() // 2
    return any(block.find(b",", start, start + window) < 0 for start in range(0, len(block) - window + 1, window))


def _reread(
    path: Path, block: bytes | bytearray, line: int, header: list[str], k: int, dtype: np.dtype, output: str
) -> tuple[np.ndarray, np.ndarray]:
    """A block read again, row by row, by Python's csv module and ``float()``, its first line being ``line``: the
    first bad line raises ValueError naming it; else (features (m, d), labels (m,)) in ``dtype``."""
    values = np.empty((_line_count(block) + 1, len(header)))  # float64, the type of float(); a record per line at most
    lines = np.empty(len(values), dtype=np.int64)
    i = 0
    try:
        for at, row in _records(path, _reader(block), line):
            values[i], lines[i] = _numbers(path, at, row, header, k, output), at
            i += 1
    except ValueError:
        _rounded(path, values[:i], lines[:i], k, dtype, output)  # an overflow on an earlier line is the first error
        raise
    return _rounded(path, values[:i], lines[:i], k, dtype, output)


def _reader(block: bytes | bytearray) -> _csv.Reader:
    # surrogateescape: bytes that are not UTF-8 reach the checks as lone surrogates, so that the error names their
    # line; a strict decoder would fail on the whole block, lines away from the bad byte.
    text = io.StringIO(block.decode("utf-8", errors="surrogateescape"), newline="")
    return csv.reader(text, strict=True)  # strict: an unclosed quote is an error, not a field holding the rest


def _records(path: Path, reader: _csv.Reader, first: int) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each record of ``reader`` that is not blank, its text's first line being ``first``: where
    the record starts (a quoted field may span lines)."""
    while True:
        line = first + reader.line_num
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # an unclosed quote, or a field over csv.field_size_limit(), 128 KiB
            raise ValueError(
                f"{path}:{line}: malformed CSV record starting on this line ({error}); is a quote left open?"
            ) from None
        if any(cell.strip() for cell in cells):
            yield line, cells


def _numbers(path: Path, line: int, row: list[str], header: list[str], k: int, output: str) -> list[float]:
    """The row's values, checked: as many as the header, numbers, finite, and a label in column k (see
    :func:`valid_labels`)."""
    if len(row) != len(header):
        raise ValueError(f"{path}:{line}: expected {len(header)} values as in the header, got {len(row)}")
    try:
        values = [float(cell) for cell in row]
    except ValueError:
        _check_utf8(path, line, row)
        bad = next(c for c in row if not _is_float(c))
        raise ValueError(f"{path}:{line}: expected a number, got {bad!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{path}:{line}: NaN or inf values are not allowed, got {row}")
    if not valid_labels(np.array(values[k]), output):
        raise ValueError(f"{path}:{line}: label column {header[k]!r} must be {LABELS[output].expected}, got {row[k]!r}")
    return values


def _rounded(
    path: Path, block: np.ndarray, lines: np.ndarray, k: int, dtype: np.dtype, output: str
) -> tuple[np.ndarray, np.ndarray]:
    """(features (m, d), labels (m,)) of the rows of ``block`` (m, d + 1), float64, rounded to ``dtype`` in new
    arrays, the labels stored as :data:`LABELS` says; a value that would round to inf is an error naming its
    line."""
    stored = LABELS[output].stored
    with np.errstate(over="ignore"):  # the overflow is reported below, with its line
        rounded = block.astype(dtype)
    overflows = ~np.isfinite(rounded)
    if stored is not None:  # labels kept in a dtype of their own, checked already
        overflows[:, k] = False
    if overflows.any():
        i = overflows.any(axis=1).argmax()
        value = float(block[i][overflows[i]][0])
        raise ValueError(
            f"{path}:{lines[i]}: {value!r} is too large for {dtype}, whose largest value is "
            f"{float(np.finfo(dtype).max)!r}"
        )
    return np.delete(rounded, k, axis=1), (rounded[:, k].copy() if stored is None else block[:, k].astype(stored))


def _check_utf8(path: Path, line: int, cells: list[str]) -> None:
    try:
        ",".join(cells).encode()  # the surrogates that stand for bytes that are not UTF-8 cannot be encoded
    except UnicodeEncodeError as error:
        byte = ord(error.object[error.start]) - 0xDC00
        raise ValueError(f"{path}:{line}: byte 0x{byte:02x} is not UTF-8 text; save the file as UTF-8") from None


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def load_training_data(
    *,
    dataset: str = "planar",
    csv: Path | None = None,
    data: Path | None = None,
    label: str | None = None,
    output: str = "sigmoid",
    val_fraction: float | None = None,
    split_seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[str, Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """(experiment name, X, Y, validation data or None) from one of a generated ``dataset``, a ``csv`` file or
    on-disk ``data`` (a directory of .npy files or a Parquet file, read block by block): this process's shard of the
    rows in a distributed run, all of them otherwise. Softmax outputs take labels 0..K-1 as one-hot rows; with
    ``val_fraction``, that fraction of each class's rows, drawn with ``split_seed``, is held out."""
    from .distributed import shard, world
    from .labels import class_indices, one_hot, stratified_split
    from .ondisk import NpyRows, open_npy
    from .parquet import is_parquet, open_parquet

    rank, size = world()
    # On-disk rows stand in for tensors: they have the shape, dtype, device and row slicing that training reads.
    if data is not None and is_parquet(data):  # streamed by row groups, each rank its own rows
        n = open_parquet(data, label=label)[0].shape[0]
        X, Y = cast("tuple[Tensor, Tensor]", open_parquet(data, shard(n, rank, size), dtype, device, label, output))
        return data.stem, X, Y, None
    if data is not None:
        n = NpyRows(data / "X.npy").shape[0]
        X, Y = cast("tuple[Tensor, Tensor]", open_npy(data, shard(n, rank, size), dtype, device, output))
        return data.name, X, Y, None
    if csv is not None:
        experiment = csv.stem
        X, Y = load_csv(csv, label, dtype=dtype, output=output)
    else:
        experiment, (X, Y) = dataset, DATASETS[dataset](dtype=dtype)
    if output == "softmax":
        Y = one_hot(Y, dtype=dtype)
        empty = (Y.sum(0) == 0).nonzero().reshape(-1).tolist()
        if empty and Y.shape[1] >= 2:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
            warnings.warn(
                f"--output softmax: the labels make {Y.shape[1]} classes 0..{Y.shape[1] - 1}, but classes "
                f"{shown} have no rows (a mistyped label?); the model has an output unit for each",
                stacklevel=2,
            )
        if Y.shape[1] < 2:
            raise ValueError(
                f"--output softmax needs labels of at least 2 classes 0..K-1, got only class {Y.shape[1] - 1}"
            )
    val = None
    if val_fraction is not None:
        train_rows, val_rows = stratified_split(class_indices(Y), val_fraction, split_seed)
        X, Y, val = X[train_rows], Y[train_rows], (X[val_rows], Y[val_rows])
    start, stop = shard(X.shape[0], rank, size)
    if val is not None:
        v_start, v_stop = shard(val[0].shape[0], rank, size)
        val = val[0][v_start:v_stop].to(device), val[1][v_start:v_stop].to(device)
    return experiment, X[start:stop].to(device), Y[start:stop].to(device), val
