"""Hostile input: random shapes and values, saturated logits, low precision, odd layouts and label types.

Every case either works, with a finite cost and gradients that match autograd on the same values in float64,
or raises a ValueError or TypeError from the boundary; never a NaN and never an error from inside PyTorch.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torch_shallow import ShallowNet

from reference import cost as reference_cost

# Tolerance relative to the size of the gradient, per dtype: float16 and bfloat16 keep 11 and 8 bits.
RELATIVE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1.5e-1}
LOW_PRECISION = {torch.float16, torch.bfloat16}

cases = st.fixed_dictionaries(
    {
        "n": st.integers(1, 40),
        "d": st.integers(1, 5),
        "d1": st.integers(1, 6),
        "d2": st.integers(1, 3),
        "activation": st.sampled_from(["sigmoid", "tanh", "relu"]),
        "dtype": st.sampled_from(list(RELATIVE)),
        "logit_scale": st.sampled_from([1.0, 30.0, 1e4]),  # up to |Z2| of order 1e4: output units saturated
        "layout": st.sampled_from(["contiguous", "transposed", "strided"]),
        "labels": st.sampled_from(["float", "bool", "int", "soft", "vector"]),
        "x_grad": st.booleans(),
        "block_rows": st.sampled_from([None, 1, 3, 16]),
        "seed": st.integers(0, 2**16),
    }
)


def make_features(n, d, dtype, layout, g):
    if layout == "transposed":
        return torch.randn(d, n, generator=g, dtype=torch.float64).to(dtype).T  # a (n, d) view, column-major
    if layout == "strided":
        return torch.randn(n, 2 * d, generator=g, dtype=torch.float64).to(dtype)[:, ::2]  # every other column
    return torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)


def make_labels(n, d2, kind, g):
    bits = torch.rand(n, d2, generator=g) > 0.5
    if kind == "vector":
        return bits[:, 0].float() if d2 == 1 else bits.float()
    return {
        "float": bits.float(),
        "bool": bits,
        "int": bits.long(),
        "soft": torch.rand(n, d2, generator=g, dtype=torch.float64),
    }[kind]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_cost_and_gradients_are_finite_and_right(case):
    g = torch.Generator().manual_seed(case["seed"])
    dtype = case["dtype"]
    net = ShallowNet(case["d"], case["d1"], case["d2"], case["activation"], dtype=dtype)
    net.reset_parameters(g)
    with torch.no_grad():
        net.W2.mul_(case["logit_scale"])
    X = make_features(case["n"], case["d"], dtype, case["layout"], g).requires_grad_(case["x_grad"])
    Y = make_labels(case["n"], case["d2"], case["labels"], g)

    J = net.cost(X, Y, block_rows=case["block_rows"])
    inputs = [X, *net.parameters()] if case["x_grad"] else list(net.parameters())
    grads = torch.autograd.grad(J, inputs)
    assert torch.isfinite(J), J
    assert all(torch.isfinite(gr).all() for gr in grads)

    exact = [t.detach().double().requires_grad_() for t in inputs]
    X64 = exact[0] if case["x_grad"] else X.detach().double()
    theta64 = exact[1:] if case["x_grad"] else exact
    Y64 = Y.double().reshape(case["n"], case["d2"])
    expected = reference_cost(X64, Y64, *theta64, case["activation"])
    expected_grads = torch.autograd.grad(expected, exact)
    rel = RELATIVE[dtype]
    assert math.isclose(J.item(), expected.item(), rel_tol=rel, abs_tol=rel)
    # A gradient is a sum of n per-sample terms; in float16 and bfloat16 each term is rounded at its own size,
    # up to |W2| |X| / n, so the error is relative to that size when the sum cancels.
    term = case["logit_scale"] * X.detach().abs().max().item() / case["n"] if dtype in LOW_PRECISION else 0.0
    for got, want in zip(grads, expected_grads):
        scale = want.abs().max().item() + term + 1.0 / case["n"]
        torch.testing.assert_close(got.double(), want, rtol=0, atol=rel * scale)


# (case, how to spoil good (X, Y), the error, what its message must say: the argument and what is wrong with it)
BAD = [
    ("nan in X", lambda X, Y: (X.index_fill(0, torch.tensor([0]), math.nan), Y), ValueError, "X contains NaN or inf"),
    ("inf in X", lambda X, Y: (X.index_fill(0, torch.tensor([0]), math.inf), Y), ValueError, "X contains NaN or inf"),
    ("label 2", lambda X, Y: (X, Y + 2), ValueError, r"Y must hold labels in \[0, 1\]"),
    ("negative label", lambda X, Y: (X, Y - 2), ValueError, r"Y must hold labels in \[0, 1\]"),
    ("nan label", lambda X, Y: (X, Y.index_fill(0, torch.tensor([0]), math.nan)), ValueError, "Y contains NaN or inf"),
    ("too few labels", lambda X, Y: (X, Y[1:]), ValueError, "Y must have shape"),
    ("2-D labels of the wrong width", lambda X, Y: (X, torch.cat([Y, Y], 1)), ValueError, "Y must have shape"),
    ("3-D X", lambda X, Y: (X.unsqueeze(0), Y), ValueError, "X must be 2-D"),
    ("empty X", lambda X, Y: (X[:0], Y[:0]), ValueError, "X must hold at least one sample"),
    ("integer X", lambda X, Y: (X.long(), Y), TypeError, "X must be a floating-point tensor"),
    ("float64 X", lambda X, Y: (X.double(), Y), TypeError, "X has dtype torch.float64 but the parameters have"),
    ("complex labels", lambda X, Y: (X, Y.to(torch.complex64)), TypeError, "Y must hold real labels"),
    ("a list for X", lambda X, Y: (X.tolist(), Y), TypeError, "X must be a torch.Tensor"),
    ("labels that need a gradient", lambda X, Y: (X, Y.clone().requires_grad_()), ValueError, "Y requires a gradient"),
]


@pytest.mark.parametrize("bad", BAD, ids=[case[0] for case in BAD])  # every case, not those a draw happens to pick
@settings(max_examples=10, deadline=None, derandomize=True)
@given(st.integers(2, 30), st.integers(1, 4))
def test_bad_input_raises_a_clear_error(bad, n, d):
    _, spoil, error, message = bad
    net = ShallowNet(d, 3)
    X, Y = spoil(torch.randn(n, d), (torch.rand(n, 1) > 0.5).float())
    with pytest.raises(error, match=message):  # any other exception, from inside PyTorch, propagates and fails
        net.cost(X, Y)
