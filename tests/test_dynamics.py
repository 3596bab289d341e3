"""The instruments of training dynamics against plain-torch oracles: the Hessian against autograd's, the sharpness
against the eigenvalues of that Hessian, the NTK against a kernel of torch.func.jacrev Jacobians; a stack against
its models one by one; the callbacks on a stand-in run."""

import dataclasses
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import jacrev

from torch_shallow import ShallowNet, TrainConfig, evaluate, fit, fit_many
from torch_shallow.checkpoint import CheckpointError, load_checkpoint
from torch_shallow.dynamics import hessian, ntk, sharpness
from torch_shallow.instruments import LAYOUT, KernelDrift, Sharpness

from conftest import TOLERANCES

PLAIN = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
NAMES = ("W1", "b1", "W2", "b2")
# The eigenvalues of the exact Hessian against Lanczos's, relative to the largest in magnitude.
EIGENVALUES = {torch.float64: 1e-10, torch.float32: 1e-4}
BIASES = [True, False, (True, False), (False, True)]


def plain_logits(p, X, activation):
    """Z2 with plain torch operations; a missing bias is absent from p."""
    return F.linear(PLAIN[activation](F.linear(X, p["W1"], p.get("b1"))), p["W2"], p.get("b2"))


def plain_cost(p, X, Y, activation, output):
    Z2 = plain_logits(p, X, activation)
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(Z2, Y, reduction="sum") / X.shape[0]
    if output == "softmax":
        return F.cross_entropy(Z2, Y, reduction="sum") / X.shape[0]
    return F.mse_loss(Z2, Y, reduction="sum") / (2 * X.shape[0])


def problem(activation="tanh", output="identity", bias=True, dtype=torch.float64, d1=5, n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    d2 = 3 if output == "softmax" else 2
    net = ShallowNet(3, d1, d2, activation, output, bias=bias, dtype=dtype)
    net.reset_parameters(g)
    with torch.no_grad():
        net.W2.mul_(3)  # a network away from its start, with a Hessian not dominated by its Gauss-Newton part
    X = torch.randn(n, 3, generator=g, dtype=torch.float64).to(dtype)
    if output == "identity":
        Y = 2 * torch.randn(n, d2, generator=g, dtype=torch.float64).to(dtype)
    elif output == "sigmoid":
        Y = torch.rand(n, d2, generator=g, dtype=torch.float64).to(dtype)
    else:
        Y = torch.softmax(torch.randn(n, d2, generator=g, dtype=torch.float64), -1).to(dtype)
    return net, X, Y


def plain_hessian(net, X, Y):
    """autograd's Hessian of the plain-torch cost, in float64, over θ flattened as W1, b1, W2, b2."""
    p = {name: getattr(net, name).detach().double() for name in NAMES if getattr(net, name) is not None}
    sizes = [t.numel() for t in p.values()]

    def cost(theta):
        parts = dict(zip(p, (t.view(p[k].shape) for t, k in zip(theta.split(sizes), p))))
        return plain_cost(parts, X.double(), Y.double(), net.activation, net.output)

    return torch.autograd.functional.hessian(cost, torch.cat([t.reshape(-1) for t in p.values()]))


def plain_ntk(net, X1, X2):
    p = {name: getattr(net, name).detach() for name in NAMES if getattr(net, name) is not None}
    J1, J2 = (jacrev(lambda p, X: plain_logits(p, X, net.activation))(p, X) for X in (X1, X2))
    return sum(torch.einsum("ika,pla->ikpl", J1[k].flatten(2), J2[k].flatten(2)) for k in p)


@pytest.mark.parametrize("bias", BIASES, ids=str)
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_hessian_equals_autograd_of_plain_torch(activation, output, bias):
    net, X, Y = problem(activation, output, bias)
    torch.testing.assert_close(hessian(net, X, Y), plain_hessian(net, X, Y), **TOLERANCES[torch.float64])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=str)
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_sharpness_equals_the_top_eigenvalues_of_the_hessian(activation, output, bias, dtype):
    net, X, Y = problem(activation, output, bias, dtype)
    expected = torch.linalg.eigvalsh(plain_hessian(net, X, Y))
    top = sharpness(net, X, Y, k=3)
    assert top.dtype == dtype and top.shape == (3,)
    error = (top.double() - expected[-3:].flip(0)).abs().max() / expected.abs().max()
    assert error <= EIGENVALUES[dtype]


@pytest.mark.parametrize("bias", BIASES, ids=str)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_ntk_equals_a_kernel_of_jacrev_jacobians(activation, bias):
    net, X, _ = problem(activation, "identity", bias)
    X2 = X[:7] * 1.5
    expected = plain_ntk(net, X, X2)
    torch.testing.assert_close(ntk(net, X, X2), expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())
    torch.testing.assert_close(ntk(net, X), plain_ntk(net, X, X), rtol=1e-10, atol=1e-10 * expected.abs().max().item())


def test_a_stack_of_models_of_different_sizes_equals_each_model_alone():
    """Different hidden sizes, activations and biases in one stack: padded units and absent biases add nothing."""
    models = [
        problem("tanh", bias=True, d1=6, seed=1)[0],
        problem("relu", bias=False, d1=2, seed=2)[0],
        problem("sigmoid", bias=(True, False), d1=4, seed=3)[0],
    ]
    _, X, Y = problem()
    top = sharpness(models, X, Y, k=2)
    kernels = ntk(models, X)
    hessians = hessian(models, X, Y)
    assert top.shape == (3, 2) and kernels.shape == (3, 24, 2, 24, 2)
    for k, net in enumerate(models):
        expected = torch.linalg.eigvalsh(plain_hessian(net, X, Y))
        assert (top[k] - expected[-2:].flip(0)).abs().max() <= 1e-10 * expected.abs().max()
        torch.testing.assert_close(kernels[k], ntk(net, X), **TOLERANCES[torch.float64])
        torch.testing.assert_close(hessians[k], plain_hessian(net, X, Y), **TOLERANCES[torch.float64])


def test_sharpness_refuses_bad_arguments():
    net, X, Y = problem()
    with pytest.raises(ValueError, match="k must be an integer from 1"):
        sharpness(net, X, Y, k=0)
    with pytest.raises(ValueError, match="models must share"):
        sharpness([net, ShallowNet(3, 4, 1, dtype=torch.float64)], X, Y)
    with pytest.raises(ValueError, match="Y must have shape"):
        sharpness(net, X, Y[:, :1])


def test_a_biasless_stack_trains_as_each_model_with_fit():
    """Cohen et al.'s architecture, no output bias, and a homogeneous one, no bias at all, with a full one, in one
    stack: fit_many equals fit model by model."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 2, generator=g, dtype=torch.float64)
    Y = torch.sin(X.sum(1, keepdim=True))
    biases = [(True, False), False, True]
    models = [ShallowNet(2, 3 + k, 1, "tanh", "identity", bias=b, dtype=torch.float64) for k, b in enumerate(biases)]
    singles = [ShallowNet(2, 3 + k, 1, "tanh", "identity", bias=b, dtype=torch.float64) for k, b in enumerate(biases)]
    for m, s in zip(models, singles):
        s.load_state_dict(m.state_dict())
    config = TrainConfig(lr=0.3, max_epochs=50, tol=0, progress=False)
    stacked = fit_many(models, X, Y, config)
    for m, s, h in zip(models, singles, stacked):
        alone = fit(s, X, Y, config)
        torch.testing.assert_close(torch.tensor(h.costs), torch.tensor(alone.costs), **TOLERANCES[torch.float64])
        assert m.state_dict().keys() == s.state_dict().keys()
        for name, value in s.state_dict().items():
            torch.testing.assert_close(m.state_dict()[name], value, **TOLERANCES[torch.float64])


@dataclass
class StandInRun:
    """The fields of the training loop's Run that the callbacks read, and a log that keeps what they write."""

    models: list
    X: torch.Tensor
    Y: torch.Tensor
    learning_rates: list
    epoch: int = 0
    logged: list = field(default_factory=list)
    writers: list = field(default_factory=list)

    def log(self, scalars):
        assert len(scalars) == len(self.models)
        self.logged.append((self.epoch, scalars))


def test_sharpness_callback_logs_each_models_sharpness_and_two_over_lr():
    models = [problem("tanh", seed=1)[0], problem("relu", d1=3, seed=2)[0]]
    _, X, Y = problem()
    run = StandInRun(models, X, Y, [0.1, 0.5])
    callback = Sharpness(every=10, top=2)
    callback.on_fit_start(run)
    ((epoch, scalars),) = run.logged
    for net, lr, values in zip(models, run.learning_rates, scalars):
        expected = torch.linalg.eigvalsh(plain_hessian(net, X, Y))
        assert values.keys() == {"dynamics/sharpness", "dynamics/sharpness_2", "dynamics/2_over_lr"}
        assert values["dynamics/sharpness"] == pytest.approx(expected[-1].item(), rel=1e-10)
        assert values["dynamics/sharpness_2"] == pytest.approx(expected[-2].item(), rel=1e-10)
        assert values["dynamics/2_over_lr"] == 2 / lr
    assert callback.every == 10
    assert LAYOUT["dynamics"]["sharpness and 2/lr"] == ["Multiline", ["dynamics/sharpness", "dynamics/2_over_lr"]]


def test_kernel_drift_compares_with_the_first_start_across_a_resume():
    net, X, Y = problem()
    theta_0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    kernel_0 = plain_ntk(net, X, X)
    run = StandInRun([net], X, Y, [0.1])
    callback = KernelDrift(every=5)
    callback.on_fit_start(run)
    assert run.logged[0][1][0]["dynamics/weight_change"] == 0
    assert run.logged[0][1][0]["dynamics/kernel_change"] == 0
    fit(net, X, Y, TrainConfig(lr=0.05, max_epochs=20, tol=0, progress=False))
    resumed = KernelDrift(every=5)  # a new process: the state comes from the checkpoint
    resumed.load_state_dict(callback.state_dict())
    run.epoch = 20
    resumed.on_fit_start(run)
    resumed.on_epoch_end(run)
    values = run.logged[-1][1][0]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    kernel = plain_ntk(net, X, X)
    y = Y.reshape(-1)
    K = kernel.reshape(y.numel(), y.numel())
    assert values["dynamics/weight_change"] == pytest.approx(((theta - theta_0).norm() / theta_0.norm()).item())
    assert values["dynamics/kernel_change"] == pytest.approx(((kernel - kernel_0).norm() / kernel_0.norm()).item())
    assert values["dynamics/kernel_alignment"] == pytest.approx((y @ K @ y / (K.norm() * y @ y)).item())
    assert 0 < values["dynamics/weight_change"] and 0 < values["dynamics/kernel_change"]


def test_training_identity_outputs_reports_no_accuracy():
    net, X, Y = problem()
    stack = [problem(seed=1)[0], problem(seed=2)[0]]
    config = TrainConfig(lr=0.05, max_epochs=30, tol=0, progress=False, log_every=10)
    history = fit(net, X, Y, config, val=(X[:6], Y[:6]))
    assert math.isnan(history.train_accuracy) and math.isnan(history.val_accuracy)
    assert "accuracy" not in history.summary() and history.costs[-1] < history.costs[0]
    J, accuracy = evaluate(net, X, Y)
    assert math.isnan(accuracy) and J == pytest.approx(
        plain_cost(dict(net.named_parameters()), X, Y, "tanh", "identity").item()
    )
    assert all(math.isnan(h.train_accuracy) for h in fit_many(stack, X, Y, config, val=(X[:6], Y[:6])))


EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def run_experiment(script, *args):
    result = subprocess.run(
        [sys.executable, str(EXPERIMENTS / script), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_edge_of_stability_short(tmp_path):
    out = run_experiment(
        "edge_of_stability.py", "--steps", "400", "--every", "200", "--figure", str(tmp_path / "f.png")
    )
    rows = re.findall(
        r"^\| ([\d.]+) \| [\d.]+ \| (\d+|never) \| [\d.]+, [\d.]+, [\d.]+ \| [\d.]+ \| [\d.e-]+ \|$", out, re.M
    )
    assert [float(lr) for lr, _ in rows] == [0.01, 0.1, 0.2, 0.3]
    assert rows[0][1] == "never"  # the smallest step is far from its 2/η
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_lazy_rich_short(tmp_path):
    out = run_experiment("lazy_rich.py", "--steps", "500", "--every", "100", "--figure", str(tmp_path / "f.png"))
    rows = re.findall(r"^\| (1|10|100) \| ([\d.e+-]+) \| ([\d.e+-]+) \| [\d.e+-]+ \|$", out, re.M)
    weights = {alpha: float(w) for alpha, w, _ in rows}
    kernels = {alpha: float(k) for alpha, _, k in rows}
    assert 7 <= weights["10"] / weights["100"] <= 13  # already lazy: the weights move as 1/α
    assert kernels["100"] < 0.01 and kernels["1"] >= 10 * kernels["10"]
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_a_module_without_biases_is_like_nn_linear_without_them():
    net = ShallowNet(3, 4, 2, "tanh", "identity", bias=(False, True))
    assert net.b1 is None and net.bias == (False, True)
    assert list(net.state_dict()) == ["W1", "W2", "b2"] and len(list(net.parameters())) == 3
    assert "bias=(False, True)" in repr(net) and "output='identity'" in repr(net)
    other = ShallowNet(3, 4, 2, "tanh", "identity", bias=(False, True))
    for m in (net, other):
        m.reset_parameters(torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), other.parameters()))
    X = torch.randn(6, 3)
    torch.testing.assert_close(net.predict(X), net(X))
    with pytest.raises(ValueError, match="bias must be True, False or a pair"):
        ShallowNet(3, 4, bias=(True,))
    with pytest.raises(ValueError, match="output must be 'sigmoid', 'softmax' or 'identity'"):
        ShallowNet(3, 4, output="linear")


def test_a_biasless_run_resumes_from_its_checkpoint(tmp_path):
    """The architecture in the checkpoint names the biases: a resumed run goes on as an uninterrupted one, and a
    model with biases is refused."""
    net, X, Y = problem(bias=(True, False))
    config = TrainConfig(lr=0.05, max_epochs=20, tol=0, progress=False, checkpoint=tmp_path / "c.pt")
    whole = fit(problem(bias=(True, False))[0], X, Y, dataclasses.replace(config, checkpoint=None, max_epochs=40))
    fit(net, X, Y, config)
    assert load_checkpoint(tmp_path / "c.pt")["architecture"]["bias"] == [True, False]
    resumed = problem(bias=(True, False))[0]
    history = fit(resumed, X, Y, dataclasses.replace(config, max_epochs=40), resume_from=tmp_path / "c.pt")
    assert history.costs == whole.costs
    with pytest.raises(CheckpointError, match=r"bias=\(True, False\), float64\), now ShallowNet\(3, 5, 2, "):
        fit(problem()[0], X, Y, dataclasses.replace(config, max_epochs=40), resume_from=tmp_path / "c.pt")
