"""Data sets: the deeplearning.ai planar "flower", two other generated 2-D sets, and a user's CSV file.

Every loader returns (X (n, d), Y (n, 1)) as float tensors, ready for ``ShallowNet`` and ``fit``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
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
        path: the file.
        label: the label column's name; the last column if None.

    Raises:
        ValueError: naming the file and line for a row of the wrong length, a missing or non-numeric value,
            or a label other than 0 or 1.
    """
    rows = [(*features, y) for features, y in csv_rows(path, label)]
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    data = np.asarray(rows)
    return _tensors(data[:, :-1], data[:, -1], dtype)


def csv_rows(path: str | Path, label: str | None = None) -> Iterator[tuple[list[float], float]]:
    """The checked rows of a CSV file with a header, one at a time: (features, label). See :func:`load_csv`."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: the file is empty; expected a header row, then one row per sample")
        header = [h.strip() for h in header]
        if len(header) < 2:
            raise ValueError(f"{path}:1: expected at least one feature column and a label column, got {header}")
        if label is None:
            k = len(header) - 1
        elif label in header:
            k = header.index(label)
        else:
            raise ValueError(f"{path}:1: no label column {label!r}; the columns are {header}")
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines, e.g. a trailing newline
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} values as in the header, got {len(row)}")
            try:
                values = [float(cell) for cell in row]
            except ValueError:
                bad = next(c for c in row if not _is_float(c))
                raise ValueError(f"{path}:{line}: expected a number, got {bad!r}") from None
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{path}:{line}: NaN or inf values are not allowed, got {row}")
            if values[k] not in (0.0, 1.0):
                raise ValueError(f"{path}:{line}: label column {header[k]!r} must be 0 or 1, got {row[k]!r}")
            yield values[:k] + values[k + 1:], values[k]


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
