"""ShallowNet as a PyTorch module: against nn.Sequential, state_dict, .to, compile, functional_call, bad input."""

import math
import re

import pytest
import torch
from torch import nn

from torch_shallow import ShallowNet
from torch_shallow.functional import shallow_bce, shallow_net

from conftest import assert_close, make_problem
from reference import cost as reference_cost
from reference import logits as reference_logits


def copy_into_sequential(net: ShallowNet) -> nn.Sequential:
    seq = nn.Sequential(
        nn.Linear(net.in_features, net.hidden_features), nn.Sigmoid(), nn.Linear(net.hidden_features, net.out_features)
    ).to(net.W1.dtype)
    with torch.no_grad():
        seq[0].weight.copy_(net.W1), seq[0].bias.copy_(net.b1)
        seq[2].weight.copy_(net.W2), seq[2].bias.copy_(net.b2)
    return seq


def test_matches_linear_sigmoid_linear_with_bce_with_logits(dtype):
    torch.manual_seed(0)
    net = ShallowNet(3, 4, dtype=dtype)
    seq = copy_into_sequential(net)
    X, Y = torch.randn(40, 3, dtype=dtype), torch.randint(0, 2, (40, 1)).to(dtype)
    assert_close(net(X), seq(X))
    net.cost(X, Y).backward()
    nn.BCEWithLogitsLoss()(seq(X), Y).backward()
    theirs = [seq[0].weight, seq[0].bias, seq[2].weight, seq[2].bias]
    for ours, other in zip([net.W1, net.b1, net.W2, net.b2], theirs):
        assert_close(ours.grad, other.grad)


def test_predictions(dtype):
    torch.manual_seed(1)
    net = ShallowNet(2, 5, out_features=3, activation="tanh", dtype=dtype)
    X = torch.randn(20, 2, dtype=dtype)
    Z2 = reference_logits(X, net.W1, net.b1, net.W2, net.b2, "tanh")
    assert_close(net.predict_proba(X), torch.sigmoid(Z2))
    assert torch.equal(net.predict(X), (torch.sigmoid(Z2) > 0.5).to(dtype))
    assert net(X).shape == (20, 3)


def test_gradients_flow_to_layers_below():
    torch.manual_seed(2)
    below, net = nn.Linear(6, 3, dtype=torch.float64), ShallowNet(3, 4, dtype=torch.float64)
    X, Y = torch.randn(30, 6, dtype=torch.float64), torch.rand(30, 1, dtype=torch.float64)
    net.cost(below(X), Y).backward()
    ours = below.weight.grad.clone()
    below.weight.grad = None
    reference_cost(below(X), Y, net.W1, net.b1, net.W2, net.b2).backward()
    assert_close(ours, below.weight.grad)


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(3)
    net = ShallowNet(3, 4, activation="relu")
    assert list(net.state_dict()) == ["W1", "b1", "W2", "b2"]
    torch.save(net.state_dict(), tmp_path / "net.pt")
    other = ShallowNet(3, 4, activation="relu")
    other.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    X = torch.randn(10, 3)
    assert torch.equal(net(X), other(X))


def test_to_changes_dtype_and_device(device):
    """After .to(), cost and gradients are computed in float64 on the device: they match autograd to float64's
    tolerance (autograd would cast a float32 gradient to float64, so its dtype alone shows nothing)."""
    net = ShallowNet(3, 4).to(device=device, dtype=torch.float64)
    assert all(p.dtype == torch.float64 and p.device.type == device.type for p in net.parameters())
    X, Y = torch.randn(5, 3, dtype=torch.float64, device=device), torch.ones(5, 1, device=device)
    J = net.cost(X, Y)
    J.backward()
    theta = [p.detach().clone().requires_grad_() for p in net.parameters()]
    expected = reference_cost(X, Y.double(), *theta)
    assert J.dtype == torch.float64 and J.device.type == device.type
    assert_close(J.detach(), expected.detach())
    for p, want in zip(net.parameters(), torch.autograd.grad(expected, theta)):
        assert_close(p.grad, want)


def test_reset_parameters_is_reproducible_and_bounded():
    net, other = ShallowNet(9, 16), ShallowNet(9, 16)
    net.reset_parameters(torch.Generator().manual_seed(7))
    other.reset_parameters(torch.Generator().manual_seed(7))
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), other.parameters()))
    assert net.W1.abs().max() <= 1 / math.sqrt(9) and net.W2.abs().max() <= 1 / math.sqrt(16)
    assert net.W1.std() > 0.5 / math.sqrt(9) / math.sqrt(3)  # really random, not near-constant


def test_extra_repr():
    assert "in_features=2, hidden_features=4, out_features=1, activation='tanh'" in repr(ShallowNet(2, 4, 1, "tanh"))


@pytest.mark.parametrize("method", ["forward", "cost"])
def test_compile_fullgraph_matches_eager(method):
    torch.manual_seed(4)
    net = ShallowNet(3, 5, out_features=2, dtype=torch.float64)
    X, Y = torch.randn(16, 3, dtype=torch.float64, requires_grad=True), torch.rand(16, 2, dtype=torch.float64)

    def loss(module):
        return module(X).square().sum() if method == "forward" else module.cost(X, Y)

    eager = loss(net)
    eager_grads = torch.autograd.grad(eager, [X, *net.parameters()])
    compiled_net = torch.compile(net, fullgraph=True)
    compiled = loss(compiled_net)
    assert_close(compiled, eager)
    for got, want in zip(torch.autograd.grad(compiled, [X, *net.parameters()]), eager_grads):
        assert_close(got, want)


def test_functional_call_uses_the_given_parameters():
    net = ShallowNet(3, 4, dtype=torch.float64)
    X, _, theta = make_problem(8, 3, 4, 1)
    Z2 = torch.func.functional_call(net, dict(zip(["W1", "b1", "W2", "b2"], theta)), (X,), strict=True)
    expected = reference_logits(X, *theta)
    assert_close(Z2, expected)
    for got, want in zip(torch.autograd.grad(Z2.sum(), theta), torch.autograd.grad(expected.sum(), theta)):
        assert_close(got, want)


def test_labels_as_bool_int_or_vector_give_the_same_cost():
    torch.manual_seed(6)
    net, X = ShallowNet(2, 3), torch.randn(10, 2)
    y = torch.randint(0, 2, (10,))
    J = net.cost(X, y.float().unsqueeze(1))
    for labels in (y, y.bool(), y.unsqueeze(1), y.double()):
        assert torch.equal(net.cost(X, labels), J)


BAD_INPUTS = [
    ("X of the wrong width", lambda: (torch.randn(5, 3), torch.ones(5, 1)), ValueError, "d = 2 features"),
    ("Y of the wrong shape", lambda: (torch.randn(5, 2), torch.ones(4, 1)), ValueError, "Y must have shape"),
    ("labels outside [0, 1]", lambda: (torch.randn(5, 2), torch.full((5, 1), 2.0)), ValueError, r"\[0, 1\]"),
    ("NaN in X", lambda: (torch.tensor([[0.0, math.nan]]), torch.ones(1, 1)), ValueError, "X contains NaN"),
    ("inf in Y", lambda: (torch.randn(1, 2), torch.tensor([[math.inf]])), ValueError, "Y contains NaN or inf"),
    ("empty X", lambda: (torch.randn(0, 2), torch.ones(0, 1)), ValueError, "at least one sample"),
    ("integer X", lambda: (torch.ones(5, 2, dtype=torch.int64), torch.ones(5, 1)), TypeError, "floating-point"),
    ("1-D X", lambda: (torch.randn(2), torch.ones(1, 1)), ValueError, "2-D"),
    ("X in another dtype", lambda: (torch.randn(5, 2, dtype=torch.float64), torch.ones(5, 1)), TypeError, "dtype"),
    ("X on another device", lambda: (torch.randn(5, 2, device="meta"), torch.ones(5, 1)), ValueError, "meta"),
    ("X not a tensor", lambda: ([[1.0, 2.0]], torch.ones(1, 1)), TypeError, "torch.Tensor"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_reported_at_the_boundary(case):
    _, make, error, message = case
    X, Y = make()
    with pytest.raises(error, match=message):
        ShallowNet(2, 3).cost(X, Y)


# Parameters of the wrong shape for ShallowNet(2, 3), whose θ is W1 (3, 2), b1 (3,), W2 (1, 3), b2 (1,): each is
# reported by name, with the shape it must have; b1 (1,) and b2 () would broadcast silently inside PyTorch.
WRONG_SHAPES = [
    ("b1", (1,), (3,)),
    ("b1", (4,), (3,)),
    ("W2", (1, 4), (1, 3)),
    ("W2", (1, 2), (1, 3)),
    ("b2", (), (1,)),
    ("b2", (2,), (1,)),
]
ENTRY_POINTS = {
    "ShallowNet.forward": lambda net, X, Y: net(X),
    "ShallowNet.predict_proba": lambda net, X, Y: net.predict_proba(X),
    "ShallowNet.cost": lambda net, X, Y: net.cost(X, Y),
    "ShallowNet.cost_and_grad": lambda net, X, Y: net.cost_and_grad(X, Y),
    "shallow_net": lambda net, X, Y: shallow_net(X, net.W1, net.b1, net.W2, net.b2),
    "shallow_bce": lambda net, X, Y: shallow_bce(X, Y, net.W1, net.b1, net.W2, net.b2),
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize("name, shape, expected", WRONG_SHAPES, ids=[f"{n}{s}" for n, s, _ in WRONG_SHAPES])
def test_parameters_of_the_wrong_shape_are_named(entry_point, name, shape, expected):
    """A wrong-shaped b1, W2 or b2 fails at the boundary with a ValueError naming it, not inside PyTorch."""
    net = ShallowNet(2, 3)
    setattr(net, name, nn.Parameter(torch.zeros(shape)))
    X, Y = torch.randn(5, 2), torch.ones(5, 1)
    with pytest.raises(ValueError, match=re.escape(f"{name} must have shape {expected}")):
        ENTRY_POINTS[entry_point](net, X, Y)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"in_features": 0, "hidden_features": 3}, "in_features"),
        ({"in_features": 2, "hidden_features": 2.5}, "hidden_features"),
        ({"in_features": 2, "hidden_features": 3, "activation": "softmax"}, "activation must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShallowNet(**kwargs)


def test_cost_and_grad_matches_autograd(dtype):
    """J and ∇J from cost_and_grad, and from cost().backward(), against the network written with plain autograd
    ops; cost_and_grad replaces existing .grad tensors instead of adding to them and leaves frozen parameters be."""
    X, Y, theta = make_problem(30, 3, 5, 2, dtype=dtype, requires_grad=False)
    net = ShallowNet(3, 5, out_features=2, activation="tanh", dtype=dtype)
    with torch.no_grad():
        for p, value in zip(net.parameters(), theta):
            p.copy_(value)
    oracle = [p.detach().clone().requires_grad_() for p in net.parameters()]
    expected = reference_cost(X, Y, *oracle, "tanh")
    expected_grads = torch.autograd.grad(expected, oracle)

    J = net.cost(X, Y, block_rows=7)
    J.backward()
    assert_close(J.detach(), expected.detach())
    for p, want in zip(net.parameters(), expected_grads):
        assert_close(p.grad, want)

    for p in net.parameters():
        p.grad = torch.full_like(p, 7.0)  # stale gradients, to be replaced
    net.W2.requires_grad_(False)
    net.W2.grad = None
    J = net.cost_and_grad(X, Y, block_rows=7)
    assert not J.requires_grad
    assert_close(J, expected.detach())
    assert net.W2.grad is None  # frozen
    for p, want in zip([net.W1, net.b1, net.b2], [expected_grads[0], expected_grads[1], expected_grads[3]]):
        assert_close(p.grad, want)


def test_sizes_are_checked_against_the_memory_left_before_any_allocation(monkeypatch):
    from torch_shallow import validation

    monkeypatch.setattr(validation, "available_memory", lambda: 2**20)  # a machine with 1 MiB free
    with pytest.raises(ValueError, match=r"ShallowNet\(2, 10000000, 1\) needs 0\.1 GiB, but this machine has 0\.0"):
        ShallowNet(2, 10_000_000)  # 40 million float32 numbers, 160 MB
    # below UNCHECKED_BYTES (64 MiB) nothing is read: a stack of hundreds of small models is not slowed down
    monkeypatch.setattr(validation, "available_memory", lambda: pytest.fail("read for a small model"))
    assert ShallowNet(2, 1_000_000).hidden_features == 1_000_000  # 16 MB
