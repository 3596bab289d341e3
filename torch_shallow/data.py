"""Data sets: the deeplearning.ai planar "flower", two other generated 2-D sets, and a user's CSV file.

Every loader returns (X (n, d), Y (n, 1)) as float tensors, ready for ``ShallowNet`` and ``fit``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable, Iterator, TextIO

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor


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
    X = np.concatenate([np.c_[np.cos(s_outer), np.sin(s_outer)],
                        np.c_[1 - np.cos(s_inner), 0.5 - np.sin(s_inner)]])
    y = np.r_[np.zeros(n_outer), np.ones(n - n_outer)]
    return _tensors(X + noise * rng.standard_normal(X.shape), y, dtype)


def circles(n: int = 400, noise: float = 0.1, factor: float = 0.5, seed: int = 0,
            dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """A circle of label 1 inside a circle of label 0, radius ratio ``factor`` (as ``make_circles``), with noise."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    s_outer = np.linspace(0, 2 * math.pi, n_outer, endpoint=False)
    s_inner = np.linspace(0, 2 * math.pi, n - n_outer, endpoint=False)
    X = np.concatenate([np.c_[np.cos(s_outer), np.sin(s_outer)],
                        factor * np.c_[np.cos(s_inner), np.sin(s_inner)]])
    y = np.r_[np.zeros(n_outer), np.ones(n - n_outer)]
    return _tensors(X + noise * rng.standard_normal(X.shape), y, dtype)


DATASETS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {"planar": planar, "moons": moons, "circles": circles}


def load_csv(path: str | Path, label: str | None = None, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Load a CSV file with a header row: numeric feature columns and one column of 0/1 labels.

    Args:
        path: the file, read in one pass, so a pipe such as ``/dev/stdin`` works too.
        label: the label column's name; the last column if None.
        dtype: the tensors' dtype, one that NumPy has (float16, float32, float64).

    Returns:
        X (n, d) and Y (n, 1): each value as Python's ``float()`` reads it, rounded once to ``dtype``.

    Raises:
        ValueError: naming the file and line, for each problem listed in :func:`csv_chunks`.
    """
    try:
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        raise ValueError(f"load_csv: dtype must be one that NumPy has, such as torch.float32, got {dtype}") from None
    chunks = list(csv_chunks(path, label, np_dtype))
    return _tensors(np.concatenate([X for X, _ in chunks]), np.concatenate([y for _, y in chunks]), dtype)


def csv_chunks(path: str | Path, label: str | None = None, dtype: npt.DTypeLike = np.float32,
               chunk_rows: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Read a CSV file in one pass, ``chunk_rows`` rows at a time: (features (m, d), labels (m,)) in ``dtype``.

    The file is UTF-8 text (a leading byte-order mark is skipped): a header row naming the d + 1 columns, then one
    row of numbers per sample; blank lines are skipped. The label column (``label``, the last column if None) must
    hold 0 or 1. Each value is read by Python's ``float()`` and rounded once to ``dtype``. Every chunk but the last
    has m = ``chunk_rows`` rows; memory holds one chunk, whatever the file's size.

    Raises:
        ValueError: naming the file and the line, for an empty file, a first row of numbers instead of a header,
            fewer than 2 columns, no column named ``label``; a row of the wrong length, a value that is not a
            number, NaN or inf, too large for ``dtype`` (1e308 in float32), a label other than 0 or 1; a malformed
            record (an unclosed quote, a field over csv's 128 KiB limit); bytes that are not UTF-8; no data rows.
    """
    path, dtype = Path(path), np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"csv_chunks: dtype must be a floating-point type, got {dtype}")
    if chunk_rows < 1:
        raise ValueError(f"csv_chunks: chunk_rows must be at least 1, got {chunk_rows}")
    # surrogateescape: bytes that are not UTF-8 reach the checks as lone surrogates, so that the error names their
    # line; a strict decoder would fail on a whole buffer of text, lines away from the bad byte.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        records = _records(path, f)
        line, header = next(records, (1, None))
        if header is None:
            raise ValueError(f"{path}: the file is empty; expected a header row, then one row per sample")
        _check_utf8(path, line, header)
        header = [h.strip() for h in header]
        if all(_is_float(h) for h in header):
            raise ValueError(f"{path}:{line}: expected a header row naming the columns, got numbers {header}")
        if len(header) < 2:
            raise ValueError(f"{path}:{line}: expected at least one feature column and a label column, got {header}")
        if label is None:
            k = len(header) - 1
        elif label in header:
            k = header.index(label)
        else:
            raise ValueError(f"{path}:{line}: no label column {label!r}; the columns are {header}")
        block = np.empty((chunk_rows, len(header)))  # float64, the type of float(): rounded to dtype once per chunk
        lines = np.empty(chunk_rows, dtype=np.int64)  # each row's line, for the errors found per chunk
        n = i = 0
        try:
            for line, row in records:
                block[i], lines[i] = _numbers(path, line, row, header, k), line
                i += 1
                if i == chunk_rows:
                    n, i = n + i, 0
                    yield _rounded(path, block, lines, k, dtype)
        except ValueError:
            _rounded(path, block[:i], lines[:i], k, dtype)  # an overflow on an earlier line is the first error
            raise
        if n + i == 0:
            raise ValueError(f"{path}: no data rows after the header")
        if i:
            yield _rounded(path, block[:i], lines[:i], k, dtype)


def _records(path: Path, f: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each CSV record of ``f`` that is not blank; line is where the record starts (a quoted field
    may span lines)."""
    reader = csv.reader(f, strict=True)  # strict: an unclosed quote is an error, not a field holding the file's rest
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # an unclosed quote, or a field over csv.field_size_limit(), 128 KiB
            raise ValueError(f"{path}:{line}: malformed CSV record starting on this line ({error}); "
                             "is a quote left open?") from None
        if any(cell.strip() for cell in cells):
            yield line, cells


def _numbers(path: Path, line: int, row: list[str], header: list[str], k: int) -> list[float]:
    """The row's values, checked: as many as the header, numbers, finite, and a 0 or 1 in the label column k."""
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
    if values[k] not in (0.0, 1.0):
        raise ValueError(f"{path}:{line}: label column {header[k]!r} must be 0 or 1, got {row[k]!r}")
    return values


def _rounded(path: Path, block: np.ndarray, lines: np.ndarray, k: int,
             dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(features (m, d), labels (m,)) of the rows of ``block`` (m, d + 1), float64, rounded to ``dtype`` in new
    arrays, as the caller reuses ``block``; a value that would round to inf is an error naming its line."""
    with np.errstate(over="ignore"):  # the overflow is reported below, with its line
        rounded = block.astype(dtype)
    overflows = ~np.isfinite(rounded)
    if overflows.any():
        i = overflows.any(axis=1).argmax()
        value = float(block[i][overflows[i]][0])
        raise ValueError(f"{path}:{lines[i]}: {value!r} is too large for {dtype}, whose largest value is "
                         f"{float(np.finfo(dtype).max)!r}")
    return np.delete(rounded, k, axis=1), rounded[:, k].copy()


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
