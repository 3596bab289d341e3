"""Labels: class indices as one-hot rows, and a validation split stratified by label."""

from __future__ import annotations

import torch
from torch import Tensor

# Class numbers from this one on are refused, before one-hot rows of that many classes are made: 65,536 classes take
# 256 KiB per row in float32, 1 GiB for a block of 4,096 rows, and a larger label is far more often a typo.
MAX_CLASSES = 1 << 16


def one_hot(classes: Tensor, K: int | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Class indices 0..K-1 (n,) or (n, 1) as one-hot rows (n, K) of ``dtype``; K is the largest index + 1 unless
    given. The slides' Y for softmax outputs."""
    labels = classes.reshape(-1).long()
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"class labels must be 0..K-1, got {int(labels.min())}")
    found = int(labels.max()) + 1 if labels.numel() else 0
    K = found if K is None else K
    if found > K or K > MAX_CLASSES:
        biggest = int(labels.argmax())
        raise ValueError(
            f"class label {found - 1} (row {biggest}) is beyond "
            + (f"the {K} classes 0..{K - 1}" if found > K and K <= MAX_CLASSES else f"{MAX_CLASSES:,} classes")
            + "; labels must be class indices 0..K-1"
        )
    return torch.nn.functional.one_hot(labels, K).to(dtype)


def class_indices(Y: Tensor) -> Tensor:
    """(n,) the class of each row of Y: the argmax of one-hot or probability rows (n, K), or 0/1 labels (n, 1)."""
    return Y.argmax(1) if Y.shape[1] > 1 else Y.reshape(-1).round().long()


def stratified_split(classes: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(training rows, validation rows), each sorted: ``fraction`` of each class's rows (rounded), drawn with a
    ``torch.Generator`` seeded with ``seed``, held out. ``classes`` (n,) holds each row's class (see
    :func:`class_indices`)."""
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in classes.unique():
        rows = (classes == c).nonzero().reshape(-1)
        rows = rows[torch.randperm(len(rows), generator=g)]
        held.append(rows[: round(fraction * len(rows))])
    val_rows = torch.cat(held).sort().values
    keep = torch.ones(len(classes), dtype=torch.bool)
    keep[val_rows] = False
    if not keep.any() or len(val_rows) == 0:
        raise ValueError(
            f"a validation fraction of {fraction} leaves no {'training' if not keep.any() else 'validation'} rows "
            f"of the {len(classes)}"
        )
    return keep.nonzero().reshape(-1), val_rows
