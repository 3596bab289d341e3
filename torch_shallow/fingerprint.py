"""The fingerprint of the training data: shape, dtype and a hash of its values, saved in checkpoints so that a run
is resumed only on the data it started with."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from .distributed import all_reduce_sum_

# Constants of SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014):
# the Weyl sequence's step, and the output function's multipliers. uint64 arithmetic wraps modulo 2⁶⁴.
_GAMMA, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
# Elements hashed per pass of NumPy's loops: the chunk and its two uint64 buffers (768 KiB) stay in a core's cache
# between the passes, where whole blocks would go through memory some twenty times.
CHUNK = 1 << 15
_STEPS = np.arange(CHUNK, dtype=np.uint64)


class Fingerprint:
    """Shape, dtype and a 64-bit hash of the bytes of the training data (X, Y), accumulated block by block.

    The hash is Σ_k mix(mix(k γ + tag) ^ bits_k) mod 2⁶⁴ over the elements of the whole (n, d) array, k being the
    element's global position, bits_k its bit pattern sign-extended to 64 bits, γ SplitMix64's step, mix its output
    function and tag 1 for X, 2 for Y. A sum of per-element hashes does not depend on how the rows are cut into
    blocks or shared among the ranks of a distributed run, so a run can be resumed with another number of
    processes; mixing in the position makes moved, swapped or edited values change it.

    NumPy takes the sum a chunk of ``CHUNK`` elements at a time, the chunks of a block on all cores at once.
    """

    def __init__(self) -> None:
        self.parts: dict[str, list[int]] = {}  # name -> [hash, rows, width]
        self.dtypes: dict[str, str] = {}

    def update(self, name: str, rows: Tensor, first_row: int) -> None:
        """Add ``rows``, the rows of ``name`` that start at global row ``first_row``."""
        rows = rows.detach().contiguous()
        width = rows.shape[1]
        bits = rows.view(_INT[rows.element_size()]).cpu().numpy().reshape(-1)  # bfloat16 too, which NumPy lacks
        tag, first = 1 if name == "X" else 2, first_row * width
        spans = range(0, len(bits), max(CHUNK, -(-len(bits) // _pool_size())))  # a span per core
        hashes = _pool().map(lambda s: _hash(bits[s : s + spans.step], first + s, tag), spans)
        part = self.parts.setdefault(name, [0, 0, width])
        part[0], part[1] = (part[0] + sum(hashes)) % (1 << 64), part[1] + rows.shape[0]
        self.dtypes[name] = str(rows.dtype).removeprefix("torch.")

    def reduce(self, device: torch.device) -> dict[str, dict[str, object]]:
        """The fingerprint of the whole data, summed over the ranks: {name: {"shape", "dtype", "hash"}}."""
        names = sorted(self.parts)
        # 16-bit limbs and row counts in float64: exact under any sum over ranks, so one float collective will do
        flat = [float(v) for name in names for v in (*self._limbs(self.parts[name][0]), self.parts[name][1])]
        total = torch.tensor(flat, dtype=torch.float64, device=device)
        all_reduce_sum_([total])
        out: dict[str, dict[str, object]] = {}
        for name, values in zip(names, total.view(len(names), 5).tolist()):
            h = sum(int(limb) << (16 * i) for i, limb in enumerate(values[:4])) % (1 << 64)
            out[name] = {
                "shape": [int(values[4]), self.parts[name][2]],
                "dtype": self.dtypes[name],
                "hash": f"{h:016x}",
            }
        return out

    @staticmethod
    def _limbs(h: int) -> list[int]:
        return [(h >> (16 * i)) & 0xFFFF for i in range(4)]


def fingerprint_changes(saved: dict[str, dict[str, object]], now: dict[str, dict[str, object]]) -> list[str]:
    """What differs between two fingerprints, in words; empty when the data is the same."""
    changes = []
    for name in sorted(set(saved) | set(now)):
        a, b = saved.get(name, {}), now.get(name, {})
        for key, what in (("shape", "shape"), ("dtype", "dtype")):
            if a.get(key) != b.get(key):
                changes.append(f"{name}'s {what} was {_show(a.get(key))}, now {_show(b.get(key))}")
        if a.get("shape") == b.get("shape") and a.get("dtype") == b.get("dtype") and a.get("hash") != b.get("hash"):
            changes.append(f"{name}'s values differ (hash {a.get('hash')}, now {b.get('hash')})")
    return changes


def _show(value: object) -> str:
    return f"({', '.join(map(str, value))})" if isinstance(value, list) else str(value)


def _hash(bits: np.ndarray, first: int, tag: int) -> int:
    """Σ mix(mix(k γ + tag) ^ bits_k) mod 2⁶⁴ over the elements of ``bits``, k counted from ``first``."""
    x, t = np.empty(CHUNK, np.uint64), np.empty(CHUNK, np.uint64)
    total = 0
    for s in range(0, len(bits), CHUNK):
        chunk = bits[s : s + CHUNK]
        k, tmp = x[: len(chunk)], t[: len(chunk)]
        np.add(_STEPS[: len(chunk)], np.uint64(first + s), out=k)
        np.multiply(k, _GAMMA, out=k)
        np.add(k, np.uint64(tag), out=k)
        _mix(k, tmp)
        tmp[:] = chunk  # sign-extended to 64 bits
        np.bitwise_xor(k, tmp, out=k)
        _mix(k, tmp)
        total += int(k.sum(dtype=np.uint64))
    return total


def _mix(x: np.ndarray, tmp: np.ndarray) -> None:
    """SplitMix64's output function, in place in ``x`` (uint64: ``>>`` is a logical shift), ``tmp`` a buffer."""
    for shift, multiplier in ((30, _M1), (27, _M2), (31, None)):
        np.right_shift(x, np.uint64(shift), out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        if multiplier is not None:
            np.multiply(x, multiplier, out=x)


def _pool_size() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the spans of a block: NumPy's loops release the GIL, so that they run on all cores."""
    return ThreadPoolExecutor(_pool_size(), thread_name_prefix="fingerprint")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads
