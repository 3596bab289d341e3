"""Fixtures shared by the tests: devices, dtypes, one tolerance table, a random problem maker, and a guard against
tests that leave process-wide state changed."""

from __future__ import annotations

import os

import pytest
import torch

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]

# One table of tolerances per dtype, for comparing two computations of the same quantity.
TOLERANCES = {
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
}


@pytest.fixture(autouse=True)
def process_state_is_left_as_found():
    """Fail a test that leaves torch's intra-op thread count or the working directory changed. Both are
    process-wide: a leak changes what every later test runs with (a thread count of 3 on a 2-core machine splits
    the sweep differently; a working directory inside a deleted tmp_path breaks relative paths). The state is put
    back before failing, so that one leak does not fail the tests after it too."""
    threads, cwd = torch.get_num_threads(), os.getcwd()
    yield
    leaks = []
    if torch.get_num_threads() != threads:
        leaks.append(f"torch.get_num_threads() changed from {threads} to {torch.get_num_threads()}")
        torch.set_num_threads(threads)
    if os.getcwd() != cwd:
        leaks.append(f"os.getcwd() changed from {cwd} to {os.getcwd()}")
        os.chdir(cwd)
    if leaks:
        pytest.fail("the test left process-wide state changed: " + "; ".join(leaks), pytrace=False)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


def assert_close(actual, expected, dtype: torch.dtype | None = None) -> None:
    dtype = dtype or expected.dtype
    torch.testing.assert_close(actual, expected, **TOLERANCES[dtype])


def make_problem(n, d, d1, d2, dtype=torch.float64, device="cpu", seed=0, requires_grad=True):
    """Random X (n, d), Y (n, d2) in [0, 1] and θ = (W1, b1, W2, b2), the parameters requiring gradients."""
    g = torch.Generator().manual_seed(seed)

    def draw(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)

    X = draw(n, d)
    Y = torch.rand(n, d2, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    theta = [draw(d1, d), draw(d1), draw(d2, d1), draw(d2)]
    for p in [X, *theta]:
        p.requires_grad_(requires_grad)
    return X, Y, theta
