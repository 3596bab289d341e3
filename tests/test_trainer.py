"""fit against the same loop written with plain autograd, the planar result, and the TensorBoard output."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from torch_shallow import ShallowNet, TrainConfig, fit, planar

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
    X, Y = planar()
    net = seeded_net()
    history = fit(net, X, Y, TrainConfig(max_epochs=300), optimizer=torch.optim.Adam(net.parameters(), lr=0.05))
    assert history.final_cost < 0.7 * history.costs[0]


def test_tensorboard_holds_the_history(tmp_path):
    X, Y = planar()
    history = fit(seeded_net(), X, Y, TrainConfig(max_epochs=50, log_dir=tmp_path, log_every=7),
                  hparams={"dataset": "planar"})
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # hparams did not split off a sub-run
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    logged = events.Scalars("cost/train")
    assert [e.step for e in logged] == list(range(0, 50, 7))
    for e in logged:
        assert e.value == pytest.approx(history.costs[e.step], rel=1e-6)
    assert {"accuracy/train", "grad_norm", "lr", "final/cost", "final/accuracy"} <= set(events.Tags()["scalars"])
    assert events.Scalars("final/accuracy")[0].value == pytest.approx(history.train_accuracy)
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


@pytest.mark.parametrize("field, value", [("lr", 0), ("lr", math.nan), ("max_epochs", 0), ("tol", -1.0),
                                          ("log_every", 0)])
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_thread_count_is_restored():
    X, Y = planar()
    before = torch.get_num_threads()
    fit(seeded_net(), X, Y, TrainConfig(max_epochs=3))  # small data: trains on one thread
    assert torch.get_num_threads() == before
