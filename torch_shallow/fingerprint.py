"""The fingerprint of the training data: shape, dtype and a hash of its values, saved in checkpoints so that a run
is resumed only on the data it started with."""

from __future__ import annotations

import torch
from torch import Tensor

from .distributed import all_reduce_sum_

# Constants of SplitMix64's output function (Steele, Lea and Flood, "Fast splittable pseudorandom number
# generators", OOPSLA 2014), as signed 64-bit integers; int64 products wrap modulo 2⁶⁴.
_GAMMA, _M1, _M2 = (c - (1 << 64) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))
_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _shift_right(x: Tensor, k: int) -> Tensor:
    return (x >> k) & ((1 << (64 - k)) - 1)  # logical, not arithmetic, shift


def _mix(x: Tensor) -> Tensor:
    x = (x ^ _shift_right(x, 30)) * _M1
    x = (x ^ _shift_right(x, 27)) * _M2
    return x ^ _shift_right(x, 31)


class Fingerprint:
    """Shape, dtype and a 64-bit hash of the bytes of the training data (X, Y), accumulated block by block.

    The hash is Σ mix(bits of element k, k) mod 2⁶⁴ over the elements of the whole (n, d) array, k being the
    element's global position. A sum of per-element hashes does not depend on how the rows are cut into blocks or
    shared among the ranks of a distributed run, so a run can be resumed with another number of processes; mixing
    in the position makes moved, swapped or edited values change it.
    """

    def __init__(self) -> None:
        self.parts: dict[str, list[int]] = {}  # name -> [hash, rows, width]
        self.dtypes: dict[str, str] = {}

    def update(self, name: str, rows: Tensor, first_row: int) -> None:
        """Add ``rows``, the rows of ``name`` that start at global row ``first_row``."""
        rows = rows.detach().contiguous()
        width = rows.shape[1]
        bits = rows.view(_INT[rows.element_size()]).to(torch.int64).reshape(-1)
        position = torch.arange(first_row * width, first_row * width + bits.numel(), device=rows.device)
        h = int(_mix(_mix(position * _GAMMA + (1 if name == "X" else 2)) ^ bits).sum())
        part = self.parts.setdefault(name, [0, 0, width])
        part[0], part[1] = (part[0] + h) % (1 << 64), part[1] + rows.shape[0]
        self.dtypes[name] = str(rows.dtype).removeprefix("torch.")

    def reduce(self, device: torch.device) -> dict[str, dict[str, object]]:
        """The fingerprint of the whole data, summed over the ranks: {name: {"shape", "dtype", "hash"}}."""
        names = sorted(self.parts)
        # 16-bit limbs and row counts in float64: exact under any sum over ranks, so one float collective will do
        flat = [float(v) for name in names for v in (*self._limbs(self.parts[name][0]), self.parts[name][1])]
        total = torch.tensor(flat, dtype=torch.float64, device=device)
        all_reduce_sum_([total])
        out = {}
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
