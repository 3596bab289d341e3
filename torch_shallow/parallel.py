"""How the CPU's cores are used.

PyTorch splits each large operation across its intra-op threads, with a fork and a join per operation. The cost's
pass runs about twenty operations per block of rows, so on many blocks it is faster, and steadier from run to run,
to give each core its own contiguous range of blocks with one intra-op thread (on 2 cores, 1,000,000 × 32 rows and
d1 = 128; the README's speed section gives the figures). Operations release the GIL, so Python threads suffice;
the intra-op thread count is per thread, so the caller's own setting is left as it is.
On data too small for any operation to be split, extra threads only add synchronisation, and one is used.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

import torch
from torch import Tensor

from .tracing import plain_eager

if TYPE_CHECKING:
    from .ondisk import NpyRows

T = TypeVar("T")

# ATen splits element-wise work across threads only above this many elements (at::internal::GRAIN_SIZE).
GRAIN_SIZE = 32768


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """``torch.set_num_threads(count)`` for the duration of the block, then the previous count again."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def threads_for_training(X: Tensor | NpyRows, hidden_features: int) -> contextlib.AbstractContextManager[None]:
    """One intra-op thread while training on CPU data too small for any operation to be split (on the planar
    data, about a tenth faster on 2 cores); otherwise no change."""
    if X.device.type == "cpu" and X.shape[0] * max(X.shape[1], hidden_features) < GRAIN_SIZE:
        return intra_op_threads(1)
    return contextlib.nullcontext()


def row_ranges(X: Tensor, block_rows: int) -> list[tuple[int, int]]:
    """Contiguous ranges of rows of X, one per intra-op thread, cut at block boundaries; one range for all rows
    where there are fewer than two blocks per thread, for data on a GPU, while autograd records (the
    double-backward path), and under a transform or trace (:mod:`~torch_shallow.tracing`), which all stay on the
    calling thread. X is a tensor or on-disk rows (:class:`NpyRows`)."""
    n = X.shape[0]
    blocks = -(-n // block_rows)
    if blocks < 2:  # first, and cheapest: small data is swept at every epoch of a long training run
        return [(0, n)]
    workers = torch.get_num_threads()
    if workers == 1 or blocks < 2 * workers or X.device.type != "cpu" or torch.is_grad_enabled() or not plain_eager():
        return [(0, n)]
    cuts = [min(n, (blocks * k // workers) * block_rows) for k in range(workers + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def map_on_cores(fn: Callable[[int, int], T], ranges: list[tuple[int, int]]) -> list[T]:
    """[fn(start, stop) for each range], each range on a pool thread with one intra-op thread and the caller's
    grad mode (which is per thread too)."""
    if len(ranges) == 1:
        return [fn(*ranges[0])]
    grad_mode = torch.is_grad_enabled()

    def run(bounds: tuple[int, int]) -> T:
        with torch.set_grad_enabled(grad_mode):
            return fn(*bounds)

    return list(_pool(len(ranges)).map(run, ranges))


_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(size: int) -> ThreadPoolExecutor:
    """A pool kept for the process: a new thread pays for its first BLAS and OpenMP calls (milliseconds)."""
    if size not in _pools:
        _pools[size] = ThreadPoolExecutor(
            size, thread_name_prefix="torch_shallow", initializer=torch.set_num_threads, initargs=(1,)
        )
    return _pools[size]
