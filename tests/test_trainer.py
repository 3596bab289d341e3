"""fit against the same loop written with plain autograd, the planar result, and the TensorBoard output."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from torch_shallow import ShallowNet, TrainConfig, TrainingDiverged, fit, planar

from conftest import assert_close
from reference import cost as reference_cost


def seeded_net(seed=0, **kwargs):
    net = ShallowNet(2, 4, **kwargs)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


def test_follows_plain_autograd_gradient_descent(dtype):
    X, Y = planar(dtype=dtype)
    net = seeded_net(dtype=dtype)
    theta = [p.detach().clone().requires_grad_() for p in net.parameters()]
    expected = []
    for _ in range(200):  # the slides' algorithm, written with autograd: θ ← θ - α ∇J(θ)
        J = reference_cost(X, Y, *theta)
        expected.append(J.item())
        with torch.no_grad():
            for p, g in zip(theta, torch.autograd.grad(J, theta)):
                p -= 1.2 * g
    history = fit(net, X, Y, TrainConfig(max_epochs=200, tol=0))
    assert history.epochs == len(history.costs) == 200 and history.stop_reason == "max_epochs"
    assert_close(torch.tensor(history.costs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64), dtype)
    for p, q in zip(net.parameters(), theta):
        assert_close(p, q.detach())
    assert history.final_cost == pytest.approx(reference_cost(X, Y, *theta).item(), rel=1e-5)


def test_one_epoch_is_one_step_from_the_current_parameters():
    X, Y = planar(dtype=torch.float64)
    net = seeded_net(dtype=torch.float64)
    theta = [p.detach().clone().requires_grad_() for p in net.parameters()]
    grads = torch.autograd.grad(reference_cost(X, Y, *theta), theta)
    fit(net, X, Y, TrainConfig(lr=0.5, max_epochs=1))
    for p, q, g in zip(net.parameters(), theta, grads):
        assert_close(p, q.detach() - 0.5 * g)


@pytest.mark.parametrize("frozen", [None, "b2"])
def test_plain_gradient_descent_is_torch_sgd_bit_for_bit(frozen):
    """fit's own step (optimizer=None) against torch.optim.SGD's step on the same sweeps, frozen parameters too."""
    X, Y = planar()
    nets = [seeded_net(), seeded_net()]
    if frozen:
        for net in nets:
            net.cost(X, Y).backward()  # a gradient from before the parameter was frozen, which must not be used
            getattr(net, frozen).requires_grad_(False)
    histories = [
        fit(nets[0], X, Y, TrainConfig(lr=0.7, max_epochs=300, tol=0)),
        fit(nets[1], X, Y, TrainConfig(max_epochs=300, tol=0), optimizer=torch.optim.SGD(nets[1].parameters(), lr=0.7)),
    ]
    assert histories[0].costs == histories[1].costs
    for p, q in zip(*(net.parameters() for net in nets)):
        assert torch.equal(p, q)
    if frozen:
        assert torch.equal(getattr(nets[0], frozen), getattr(seeded_net(), frozen))


def test_planar_accuracy():
    """4 sigmoid hidden units, lr 1.2, 10,000 epochs: the slides' algorithm reaches about 89% on the flower."""
    X, Y = planar()
    history = fit(seeded_net(), X, Y, TrainConfig(lr=1.2, max_epochs=10_000, tol=0))
    assert history.train_accuracy >= 0.88
    assert history.final_cost < history.costs[0] / 2


def test_stops_at_convergence():
    X, Y = planar(dtype=torch.float64)
    history = fit(seeded_net(dtype=torch.float64), X, Y, TrainConfig(max_epochs=10_000, tol=1e-4))
    assert history.converged and history.stop_reason == "converged"
    assert 1 < history.epochs == len(history.costs) < 10_000
    assert abs(history.costs[-1] - history.costs[-2]) < 1e-4
    assert all(abs(a - b) >= 1e-4 for a, b in zip(history.costs[:-2], history.costs[1:-1]))


def test_reproducible():
    X, Y = planar()
    first = fit(seeded_net(3), X, Y, TrainConfig(max_epochs=300))
    second = fit(seeded_net(3), X, Y, TrainConfig(max_epochs=300))
    assert first == second


def test_any_optimizer():
    """fit takes the optimizer it is given: with Adam it follows Adam on the plain-autograd cost, not SGD."""
    X, Y = planar(dtype=torch.float64)
    net = seeded_net(dtype=torch.float64)
    theta = [p.detach().clone().requires_grad_() for p in net.parameters()]
    adam, expected = torch.optim.Adam(theta, lr=0.05), []
    for _ in range(100):
        adam.zero_grad()
        J = reference_cost(X, Y, *theta)
        J.backward()
        expected.append(J.item())
        adam.step()
    history = fit(net, X, Y, TrainConfig(max_epochs=100, tol=0), optimizer=torch.optim.Adam(net.parameters(), lr=0.05))
    assert_close(torch.tensor(history.costs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64))
    for p, q in zip(net.parameters(), theta):
        assert_close(p, q.detach())


def test_tensorboard_holds_the_history(tmp_path):
    X, Y = planar()
    history = fit(
        seeded_net(), X, Y, TrainConfig(max_epochs=50, log_dir=tmp_path, log_every=7), hparams={"dataset": "planar"}
    )
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # hparams did not split off a sub-run
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    logged = events.Scalars("cost/train")
    assert [e.step for e in logged] == [*range(0, 50, 7), 50]  # every 7 epochs, and the final cost at the end
    assert [e.value for e in logged] == pytest.approx([*history.costs[0:50:7], history.final_cost], rel=1e-6)
    assert {"accuracy/train", "grad_norm", "lr"} <= set(events.Tags()["scalars"])
    assert events.Scalars("accuracy/train")[-1].value == pytest.approx(history.train_accuracy)
    assert events.Scalars("lr")[0].value == pytest.approx(1.2)
    start = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["dataset"].string_value == "planar" and hparams["lr"].number_value == pytest.approx(1.2)
    assert hparams["max_epochs"].number_value == 50 and hparams["activation"].string_value == "sigmoid"


def test_bad_input_fails_before_any_output(tmp_path):
    X, Y = planar()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit(seeded_net(), X, 2 * Y, TrainConfig(log_dir=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "field, value", [("lr", 0), ("lr", math.nan), ("max_epochs", 0), ("tol", -1.0), ("log_every", 0)]
)
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_thread_count_is_restored():
    """Small data trains on one intra-op thread; the caller's count, here 3 (not 1 whatever the machine), is back
    afterwards."""
    X, Y = planar()
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        fit(seeded_net(), X, Y, TrainConfig(max_epochs=3))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


class JumpTo(torch.optim.SGD):
    """An optimizer whose every step puts the parameters at θ."""

    def __init__(self, params, theta):
        super().__init__(params, lr=1.0)
        self.theta = theta

    @torch.no_grad()
    def step(self, closure=None):
        for p, value in zip(self.param_groups[0]["params"], self.theta):
            p.copy_(value)


def constant_logits(c: float) -> list[torch.Tensor]:
    """θ of ShallowNet(2, 4) with Z2 = -c for every sample: on the planar data, where half the labels are 1,
    J = softplus(-c) + c/2."""
    return [
        torch.zeros(4, 2, dtype=torch.float64),
        torch.zeros(4, dtype=torch.float64),
        torch.zeros(1, 4, dtype=torch.float64),
        torch.full((1,), -c, dtype=torch.float64),
    ]


@pytest.mark.parametrize("start", [None, 6.0], ids=["J0 below 1", "J0 about 3"])
@pytest.mark.parametrize("ratio, diverges", [(0.99, False), (1.01, True)])
def test_divergence_limit_is_100_times_the_start(start, ratio, diverges):
    """A cost above 100 × max(J(θ(0)), 1) stops training at that epoch; one just below it does not."""
    X, Y = planar(dtype=torch.float64)
    net = seeded_net(dtype=torch.float64)
    if start is not None:
        with torch.no_grad():
            for p, value in zip(net.parameters(), constant_logits(start)):
                p.copy_(value)
    J0 = reference_cost(X, Y, *net.parameters()).item()
    c = 2 * ratio * 100 * max(J0, 1.0)  # J = c/2 up to softplus(-c) < 1e-80
    optimizer = JumpTo(net.parameters(), constant_logits(c))
    config = TrainConfig(max_epochs=3, tol=0)
    if diverges:
        with pytest.raises(TrainingDiverged, match="diverged at epoch 1") as caught:
            fit(net, X, Y, config, optimizer=optimizer)
        costs, expected = caught.value.history.costs, [J0]
    else:
        costs, expected = fit(net, X, Y, config, optimizer=optimizer).costs, [J0, c / 2, c / 2]
    assert_close(torch.tensor(costs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64))
