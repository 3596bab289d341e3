"""The Functions' values and gradients against plain-PyTorch autograd and finite differences."""

import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

from torch_shallow.functional import (
    ShallowBCEFunction,
    ShallowNetFunction,
    Wanted,
    backward_pass,
    cost_from_logits,
    r_squared,
    right_answers,
    shallow_bce,
    shallow_net,
)

from conftest import assert_close, make_problem
from reference import cost as reference_cost
from reference import logits as reference_logits

SHAPES = [(1, 3, 4, 1), (7, 3, 1, 1), (9, 5, 4, 3), (32, 2, 6, 2)]  # (n, d, d1, d2): n = 1, d1 = 1, d2 > 1
ACTIVATIONS = ["sigmoid", "tanh", "relu"]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_net_matches_autograd(shape, activation, dtype):
    X, _, theta = make_problem(*shape, dtype=dtype)
    G = torch.randn(shape[0], shape[3], dtype=dtype)  # an arbitrary upstream gradient dZ2
    Z2 = shallow_net(X, *theta, activation)
    expected = reference_logits(X, *theta, activation)
    assert_close(Z2, expected)
    grads = torch.autograd.grad((Z2 * G).sum(), [X, *theta])
    expected_grads = torch.autograd.grad((expected * G).sum(), [X, *theta])
    for got, want in zip(grads, expected_grads):
        assert_close(got, want)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_cost_matches_autograd(shape, activation, dtype):
    X, Y, theta = make_problem(*shape, dtype=dtype)
    J = shallow_bce(X, Y, *theta, activation)
    expected = reference_cost(X, Y, *theta, activation)
    assert J.shape == ()
    assert_close(J, expected)
    for got, want in zip(torch.autograd.grad(J, [X, *theta]), torch.autograd.grad(expected, [X, *theta])):
        assert_close(got, want)


@pytest.mark.parametrize("block_rows", [2, None])
def test_cost_takes_any_upstream_gradient(block_rows, dtype):
    X, Y, theta = make_problem(9, 5, 4, 3, dtype=dtype)
    loss = 2.5 * shallow_bce(X, Y, *theta, block_rows=block_rows) + (theta[0] ** 2).sum()
    expected = 2.5 * reference_cost(X, Y, *theta) + (theta[0] ** 2).sum()
    for got, want in zip(torch.autograd.grad(loss, theta), torch.autograd.grad(expected, theta)):
        assert_close(got, want)


@pytest.mark.parametrize(
    "check", [torch.autograd.gradcheck, torch.autograd.gradgradcheck], ids=["gradcheck", "gradgradcheck"]
)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_finite_differences(check, activation):
    """First derivatives, and second ones through create_graph, against finite differences in float64."""
    X, Y, theta = make_problem(6, 3, 4, 2)
    assert check(lambda *a: ShallowNetFunction.apply(*a, activation)[0], (X, *theta))  # Z2; A1 is no output to check
    for block_rows in (None, 4):
        for needs in ((False,) * 5, (True,) * 5):  # gradients swept in backward, or ahead in forward
            assert check(
                lambda X, *t: ShallowBCEFunction.apply(X, Y, *t, activation, block_rows, needs)[0], (X, *theta)
            )


def saved_shapes(run) -> list[tuple[int, ...]]:
    """The shapes of the tensors autograd keeps for backward while ``run()`` builds its graph."""
    saved = []

    def pack(t):
        saved.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return saved


def test_only_requested_gradients():
    """Gradients for X and W1, which need none, are not computed: the cost keeps db1, dW2, db2 and its inputs only."""
    X, Y, theta = make_problem(5, 3, 4, 1)
    X.requires_grad_(False)
    theta[0].requires_grad_(False)
    saved = saved_shapes(lambda: shallow_bce(X, Y, *theta).backward())
    assert sorted(saved) == sorted([(4,), (1, 4), (1,)] + [(5, 3), (5, 1), (4, 3), (4,), (1, 4), (1,)])
    assert all(p.grad is not None for p in theta[1:])
    wanted = Wanted(db2=True)
    dX, dW1, db1, dW2, db2 = backward_pass(
        torch.ones(5, 1, dtype=X.dtype), X, theta[0], theta[2], torch.rand(5, 4, dtype=X.dtype), "sigmoid", wanted
    )
    assert (dX, dW1, db1, dW2) == (None, None, None, None)
    assert_close(db2, torch.full((1,), 5.0, dtype=X.dtype))


def test_net_saves_A1_but_not_Z1():
    """The saved-activation backward keeps one (n, d1) matrix, A1; σ'(Z1) is recomputed from it."""
    X, _, theta = make_problem(50, 3, 7, 1)
    assert saved_shapes(lambda: shallow_net(X, *theta)).count((50, 7)) == 1


@pytest.mark.parametrize("x_needs_grad", [False, True])
def test_cost_keeps_no_activations(x_needs_grad):
    """The sweep keeps the gradients (dX only when X needs one) and references to its inputs, no (n, d1) matrix."""
    X, Y, theta = make_problem(50, 3, 7, 1)
    X.requires_grad_(x_needs_grad)
    saved = saved_shapes(lambda: shallow_bce(X, Y, *theta, block_rows=8))
    assert (50, 7) not in saved
    gradients = [(7, 3), (7,), (1, 7), (1,)] + ([(50, 3)] if x_needs_grad else [])
    inputs = [(50, 3), (50, 1), (7, 3), (7,), (1, 7), (1,)]
    assert sorted(saved) == sorted(gradients + inputs)


@pytest.mark.parametrize("block_rows", [1, 7, 10, 25, 1000, None])
def test_cost_does_not_depend_on_the_block_size(block_rows, dtype, device):
    """Blocks that divide n = 50, that don't, one row, larger than n, and the automatic choice."""
    X, Y, theta = make_problem(50, 3, 6, 2, dtype=dtype, device=device)
    J = shallow_bce(X, Y, *theta, "tanh", block_rows=block_rows)
    saved_activation = cost_from_logits(shallow_net(X, *theta, "tanh"), Y, 50)
    expected = reference_cost(X, Y, *theta, "tanh")
    assert_close(J, expected)
    grads = torch.autograd.grad(J, [X, *theta])
    for other in (saved_activation, expected):
        for got, want in zip(grads, torch.autograd.grad(other, [X, *theta])):
            assert_close(got, want)


def test_no_gradient_work_under_no_grad():
    X, Y, theta = make_problem(30, 3, 4, 1)
    with torch.no_grad():
        with patch("torch_shallow.functional.backward_pass", side_effect=AssertionError("gradient work")) as spy:
            J = shallow_bce(X, Y, *theta, block_rows=8)
    assert spy.call_count == 0
    assert_close(J, reference_cost(X, Y, *theta).detach())


def test_labels_requiring_a_gradient_are_an_error():
    X, Y, theta = make_problem(4, 2, 3, 1)
    Y.requires_grad_(True)
    with pytest.raises(ValueError, match="Y requires a gradient"):
        shallow_bce(X, Y, *theta)
    with pytest.raises(ValueError, match="Y requires a gradient"):
        ShallowBCEFunction.apply(X, Y, *theta, "sigmoid")


@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_saturated_units_give_finite_cost_and_gradients(scale, dtype):
    """Logits of order ±1e4 push σ to exactly 0 or 1 in float; the cost must stay finite and exact."""
    X, _, theta = make_problem(64, 3, 5, 2, dtype=dtype)
    with torch.no_grad():
        theta[2].mul_(scale)
    Y = (torch.rand(64, 2) > 0.5).to(dtype)
    J = shallow_bce(X, Y, *theta)
    expected = reference_cost(X, Y, *theta)
    assert torch.isfinite(J)
    torch.testing.assert_close(J, expected, rtol=1e-5, atol=0)
    grads = torch.autograd.grad(J, theta)
    for got, want in zip(grads, torch.autograd.grad(expected, theta)):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * scale)


def test_hessian_vector_products_match_autograd():
    X, Y, theta = make_problem(20, 3, 5, 1)
    v = [torch.randn_like(p) for p in theta]

    def hvp(cost):
        grads = torch.autograd.grad(cost(X, Y, *theta), theta, create_graph=True)
        return torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v)), theta)

    for ours in (
        lambda *a: shallow_bce(*a, block_rows=7),
        lambda X, Y, *t: cost_from_logits(shallow_net(X, *t), Y, 20),
    ):
        for got, want in zip(hvp(ours), hvp(reference_cost)):
            assert_close(got, want)


def peak_memory_mib(method: str, n: int, d: int, d1: int, block_rows: int) -> float:
    script = Path(__file__).with_name("peak_memory.py")
    out = subprocess.run(
        [sys.executable, str(script), method, str(n), str(d), str(d1), str(block_rows)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=script.parent,
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


def test_cost_memory_is_bounded_by_the_block_not_by_n():
    """One (n, d1) float32 matrix at n = 400,000, d1 = 64 is 100 MiB: autograd holds several, the sweep none."""
    n, d, d1, block_rows = 400_000, 8, 64, 1024
    one_activation_mib = n * d1 * 4 / 2**20
    assert peak_memory_mib("autograd", n, d, d1, block_rows) > one_activation_mib  # the probe sees n-sized memory
    assert peak_memory_mib("torch_shallow", n, d, d1, block_rows) < one_activation_mib / 4


@pytest.fixture
def three_threads():
    """Three intra-op threads for the test, whatever the machine has, and the caller's count again afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_ranges_of_blocks_on_several_cores_add_up(three_threads, monkeypatch):
    """The sweep split over 3 threads (ranges cut at block boundaries) gives the one-thread values."""
    from torch_shallow import functional, parallel

    X, Y, theta = make_problem(200, 3, 6, 2)
    X.requires_grad_(True)
    expected = reference_cost(X, Y, *theta)
    expected_grads = torch.autograd.grad(expected, [X, *theta])
    swept = []

    def spy(fn, ranges):
        swept.append(ranges)
        return parallel.map_on_cores(fn, ranges)

    monkeypatch.setattr(functional, "map_on_cores", spy)
    with torch.no_grad():
        assert parallel.row_ranges(X, 7) == [(0, 63), (63, 133), (133, 200)]  # 29 blocks of 7 rows: 9, 10, 10
    J = shallow_bce(X, Y, *theta, block_rows=7)
    assert swept == [[(0, 63), (63, 133), (133, 200)]]  # the sweep really ran on the three ranges
    assert_close(J, expected)
    for got, want in zip(torch.autograd.grad(J, [X, *theta]), expected_grads):
        assert_close(got, want)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_right_answers_count_every_cores_rows(output):
    """With 2 intra-op threads and 10 blocks, each core sweeps its own range of rows: the count of labels predicted
    right adds every range's, as the plain-torch logits count them over all rows."""
    from torch_shallow.functional import cost_and_gradients
    from torch_shallow.parallel import intra_op_threads, row_ranges

    X, _, theta = make_problem(100, 3, 5, 3, requires_grad=False)
    classes = torch.arange(100) % 3
    Y = torch.nn.functional.one_hot(classes, 3).double()
    Y[::4] = 1 - Y[::4]  # sigmoid units: some rows with two labels 1, so that every unit counts
    Z2 = reference_logits(X, *theta)
    if output == "sigmoid":
        expected = ((Z2 > 0) == (Y > 0.5)).sum()
    else:
        Y = torch.nn.functional.one_hot(classes, 3).double()
        expected = (Z2.argmax(1) == classes).sum()
    with intra_op_threads(2), torch.no_grad():
        assert len(row_ranges(X, 10)) == 2  # two cores' ranges, or the test proves nothing
        sweep = cost_and_gradients(X, Y, *theta, "sigmoid", (False,) * 5, 10, output=output, count_right=True)
    assert 0 < expected < Y.numel() and sweep.right == expected


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_cost_jvp_follows_the_tangent_of_x(output):
    """torch.func.jvp of the cost along X alone (no parameter moves) against autograd's forward mode of the
    plain-torch cost: J̇ = ⟨∂J/∂X, Ẋ⟩ ≠ 0."""
    X, Y, theta = make_problem(12, 3, 4, 3, requires_grad=False)
    if output == "softmax":
        Y = torch.nn.functional.one_hot(torch.arange(12) % 3, 3).double()
    X_dot = torch.randn(X.shape, generator=torch.Generator().manual_seed(1), dtype=X.dtype)

    def ours(X):
        return ShallowBCEFunction.apply(X, Y, *theta, "tanh", None, (False,) * 5, output)[0]

    def plain(X):
        Z2 = reference_logits(X, *theta, "tanh")
        if output == "sigmoid":
            return torch.nn.functional.binary_cross_entropy_with_logits(Z2, Y, reduction="sum") / len(X)
        return torch.nn.functional.cross_entropy(Z2, Y.argmax(1))

    J, J_dot = torch.func.jvp(ours, (X,), (X_dot,))
    J_ref, J_dot_ref = torch.func.jvp(plain, (X,), (X_dot,))
    assert_close(J, J_ref)
    assert J_dot_ref.abs() > 1e-3 and torch.allclose(J_dot, J_dot_ref, rtol=1e-10, atol=1e-12)


# Identity outputs and layers without biases ---------------------------------------------------------------------

BIAS_CASES = [(True, True), (False, False), (True, False), (False, True)]


def plain_squared_error(X, Y, W1, b1, W2, b2, activation):
    """Half the mean squared error, (1/2n) Σ_i Σ_k (Z2 - Y)²_ik, through plain torch operations."""
    return torch.nn.functional.mse_loss(reference_logits(X, W1, b1, W2, b2, activation), Y, reduction="sum") / (
        2 * X.shape[0]
    )


def biased(theta, bias):
    """θ with the biases left out as ``bias`` says: None in their place."""
    W1, b1, W2, b2 = theta
    return W1, b1 if bias[0] else None, W2, b2 if bias[1] else None


@pytest.mark.parametrize("bias", BIAS_CASES, ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_squared_error_and_missing_biases_match_autograd(activation, bias, dtype):
    X, _, theta = make_problem(9, 3, 4, 2, dtype=dtype)
    Y = 3 * torch.randn(9, 2, dtype=dtype)  # any reals
    theta = biased(theta, bias)
    inputs = [t for t in (X, *theta) if t is not None]
    for block_rows in (4, None):  # the block pass over rows, and one block
        J = shallow_bce(X, Y, *theta, activation, output="identity", block_rows=block_rows)
        expected = plain_squared_error(X, Y, *theta, activation)
        assert_close(J, expected)
        for got, want in zip(torch.autograd.grad(J, inputs), torch.autograd.grad(expected, inputs)):
            assert_close(got, want)
    Z2 = shallow_net(X, *theta, activation)
    assert_close(Z2, reference_logits(X, *theta, activation))
    G = torch.randn_like(Z2)
    for got, want in zip(
        torch.autograd.grad((Z2 * G).sum(), inputs),
        torch.autograd.grad((reference_logits(X, *theta, activation) * G).sum(), inputs),
    ):
        assert_close(got, want)


@pytest.mark.parametrize("bias", BIAS_CASES, ids=str)
def test_squared_error_gradcheck_and_gradgradcheck(bias):
    X, _, theta = make_problem(7, 3, 4, 2)
    Y = torch.randn(7, 2, dtype=torch.float64)
    theta = biased(theta, bias)
    present = [t for t in (X, *theta) if t is not None]

    def cost(X, *present_theta):
        it = iter(present_theta)
        W1, b1, W2, b2 = (None if t is None else next(it) for t in theta)
        return shallow_bce(X, Y, W1, b1, W2, b2, "tanh", output="identity", block_rows=3)

    assert torch.autograd.gradcheck(cost, present)
    assert torch.autograd.gradgradcheck(cost, present)


def test_identity_targets_may_be_any_finite_reals_but_not_nan():
    X, _, theta = make_problem(5, 3, 4, 1)
    Y = torch.tensor([[-40.0], [3.5], [0.0], [1e3], [2.0]], dtype=torch.float64)
    J = shallow_bce(X, Y, *theta, output="identity")
    assert_close(J, plain_squared_error(X, Y, *theta, "sigmoid"))
    with pytest.raises(ValueError, match="labels in \\[0, 1\\]"):
        shallow_bce(X, Y, *theta)  # the sigmoid's labels are still checked
    with pytest.raises(ValueError, match="NaN or inf"):
        shallow_bce(X, Y.clone().fill_(float("nan")), *theta, output="identity")


def test_r_squared_equals_scikit_learns():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    Y = torch.randn(30, 3, generator=g, dtype=torch.float64)
    Z2 = Y + 0.5 * torch.randn(30, 3, generator=g, dtype=torch.float64)
    Y[:, 2] = 1.0  # a constant column: 1 if predicted exactly, else 0, as scikit-learn has it
    expected = sklearn_metrics.r2_score(Y.numpy(), Z2.numpy(), multioutput="uniform_average")
    assert r_squared(Z2, Y).item() == pytest.approx(expected, rel=1e-12)
    Z2[:, 2] = 1.0
    expected = sklearn_metrics.r2_score(Y.numpy(), Z2.numpy(), multioutput="uniform_average")
    assert r_squared(Z2, Y).item() == pytest.approx(expected, rel=1e-12)
    stacked = r_squared(torch.stack([Z2, Y]), Y)  # a leading model axis: one R² per model
    assert stacked.shape == (2,) and stacked[1] == 1


def test_identity_outputs_count_no_right_answers():
    Z2 = torch.randn(4, 6, 2)
    assert right_answers(Z2, Z2, "identity").isnan().all()
    assert right_answers(Z2, Z2, "identity").shape == (4,)
