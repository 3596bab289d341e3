"""The data fingerprint: the hash that the docstring states, computed element by element in Python as the oracle,
whatever the dtype, the cut into blocks and shards, and the chunks and threads that compute it."""

import pytest
import torch

from torch_shallow import fingerprint as fingerprint_module
from torch_shallow.fingerprint import Fingerprint

MASK = (1 << 64) - 1


def mix(x: int) -> int:
    """SplitMix64's output function on Python integers (Steele, Lea and Flood, OOPSLA 2014)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def reference_hash(rows: torch.Tensor, tag: int) -> str:
    """Σ_k mix(mix(k γ + tag) ^ bits_k) mod 2⁶⁴, bits_k sign-extended, one element at a time."""
    ints = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[rows.element_size()]
    bits = rows.contiguous().view(ints).reshape(-1).tolist()
    h = sum(mix(mix((k * 0x9E3779B97F4A7C15 + tag) & MASK) ^ (b & MASK)) for k, b in enumerate(bits))
    return f"{h & MASK:016x}"


def fingerprint(X: torch.Tensor, Y: torch.Tensor, cuts: list[tuple[int, int]] | None = None) -> dict:
    fp = Fingerprint()
    for start, stop in cuts or [(0, len(X))]:
        fp.update("X", X[start:stop], start)
        fp.update("Y", Y[start:stop], start)
    return fp.reduce(torch.device("cpu"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_the_hash_is_the_documented_sum(dtype, monkeypatch):
    monkeypatch.setattr(fingerprint_module, "CHUNK", 64)  # many chunks, on both threads, over a small array
    monkeypatch.setattr(fingerprint_module, "_STEPS", fingerprint_module._STEPS[:64])
    X = torch.randn(150, 3, generator=torch.Generator().manual_seed(0)).to(dtype)  # negative values: sign extension
    Y = (torch.arange(150) % 2).reshape(-1, 1).to(dtype)
    got = fingerprint(X, Y, [(0, 7), (7, 120), (120, 150)])
    assert got == {
        "X": {"shape": [150, 3], "dtype": str(dtype).removeprefix("torch."), "hash": reference_hash(X, 1)},
        "Y": {"shape": [150, 1], "dtype": str(dtype).removeprefix("torch."), "hash": reference_hash(Y, 2)},
    }


def test_any_cut_gives_the_same_hash_and_any_change_another(monkeypatch):
    monkeypatch.setattr(fingerprint_module, "CHUNK", 64)
    monkeypatch.setattr(fingerprint_module, "_STEPS", fingerprint_module._STEPS[:64])
    X = torch.randn(300, 5, generator=torch.Generator().manual_seed(1))
    Y = (torch.arange(300) % 2).reshape(-1, 1).float()
    whole = fingerprint(X, Y)
    assert fingerprint(X, Y, [(200, 300), (0, 13), (13, 200)]) == whole  # shards in any order, cut mid-chunk
    changed = {
        "edited": X.clone().index_put_((torch.tensor([250]), torch.tensor([4])), torch.tensor(0.5)),
        "swapped in a row": X[:, [1, 0, 2, 3, 4]],
        "rows swapped": X[[1, 0, *range(2, 300)]],
        "moved by a row": torch.cat([X[-1:], X[:-1]]),
    }
    for what, other in changed.items():
        assert fingerprint(other, Y)["X"]["hash"] != whole["X"]["hash"], what
        assert fingerprint(other, Y)["Y"] == whole["Y"], what
