"""Compiled chunks of epochs against the eager training loop (fit, fit_many): costs, θ, stop epochs; the fallback
to eager; when compiling is chosen. Compiles are slow, so the tests share a few tiny shapes, whose compiled functions
the module caches for the process."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from torch_shallow import Callback, ShallowNet, TrainConfig, TrainingDiverged, TrainingInterrupted, fit, fit_many
from torch_shallow import compiled as compiled_module
from torch_shallow.compiled import (
    CONVERGED,
    DIVERGED,
    RUNNING,
    Chunks,
    ChunkState,
    compile_available,
    epochs_per_chunk,
    should_compile,
    stacks_by_size,
)
from torch_shallow.functional import right_answers

from conftest import assert_close
from reference import cost as reference_cost
from reference import logits as reference_logits

N, D = 24, 3
HIDDEN = [2, 3, 1]  # a stack of mixed hidden sizes, padded to 3
ACTIVATIONS = ["sigmoid", "tanh", "relu"]  # one per model of the stack
COUNTS = [1, 6, 13]  # chunks of the 20 epochs: the first alone, then uneven ones
REASONS = {RUNNING: "max_epochs", CONVERGED: "converged", DIVERGED: "diverged"}


def data(output: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    if output == "sigmoid":
        return X, (torch.rand(N, 1, generator=g) > 0.5).double()
    return X, torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (N,), generator=g)]


def models(output: str, hidden: list[int], activations: list[str]) -> list[ShallowNet]:
    out = []
    for seed, (d1, activation) in enumerate(zip(hidden, activations)):
        net = ShallowNet(D, d1, 1 if output == "sigmoid" else 3, activation, output, dtype=torch.float64)
        net.reset_parameters(torch.Generator().manual_seed(seed))
        out.append(net)
    return out


def stacked(nets: list[ShallowNet]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The models' parameters zero-padded to the largest hidden size along a leading model axis, and the unit mask."""
    d1 = max(m.hidden_features for m in nets)
    W1, b1 = torch.zeros(len(nets), d1, D, dtype=torch.float64), torch.zeros(len(nets), d1, dtype=torch.float64)
    W2 = torch.zeros(len(nets), nets[0].out_features, d1, dtype=torch.float64)
    b2 = torch.zeros(len(nets), nets[0].out_features, dtype=torch.float64)
    mask = torch.zeros(len(nets), 1, d1, dtype=torch.float64)
    for k, m in enumerate(nets):
        h = m.hidden_features
        W1[k, :h], b1[k, :h], W2[k, :, :h], b2[k], mask[k, :, :h] = m.W1, m.b1, m.W2, m.b2, 1
    return [W1, b1, W2, b2], mask


def in_chunks(chunks: Chunks, counts: list[int], t: int = 0) -> tuple[torch.Tensor, object]:
    parts = []
    for count in counts:
        chunk = chunks(t, count)
        parts.append(chunk.costs)
        t += count
    return torch.cat(parts), chunk


def history_of(costs: torch.Tensor, k: int) -> torch.Tensor:
    column = costs[:, k]
    return column[~column.isnan()]


@pytest.mark.parametrize(
    "activation, output", [("sigmoid", "sigmoid"), ("tanh", "softmax"), ("relu", "sigmoid")], ids=str
)
def test_one_model_matches_fit(activation, output):
    X, Y = data(output)
    net = models(output, [3], [activation])[0]
    eager = copy.deepcopy(net)
    history = fit(eager, X, Y, TrainConfig(lr=0.5, max_epochs=sum(COUNTS), tol=0, progress=False))
    params = [p.detach() for p in net.parameters()]
    chunks = Chunks(X, Y, ChunkState.start(params), [0.5], activation=activation, output=output)
    costs, last = in_chunks(chunks, COUNTS)
    assert chunks.compile == compile_available()  # no fallback to eager on the way
    assert costs.shape == (sum(COUNTS), 1)
    assert_close(costs[:, 0], torch.tensor(history.costs, dtype=torch.float64))
    for got, want in zip(net.parameters(), eager.parameters()):
        assert_close(got, want)
    assert last.epochs.tolist() == [history.epochs] and last.stops.tolist() == [RUNNING]


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_stack_of_mixed_models_matches_fit_many(output):
    """Mixed hidden sizes and activations, a learning rate each; the right answers and ‖∇J‖ of the last epoch against
    the plain-autograd reference at θ(19)."""
    X, Y = data(output)
    nets, lrs = models(output, HIDDEN, ACTIVATIONS), [0.5, 1.0, 2.0]
    eager = copy.deepcopy(nets)
    epochs = sum(COUNTS)
    histories = fit_many(eager, X, Y, TrainConfig(max_epochs=epochs, tol=0, progress=False), lrs=lrs)
    before_last = copy.deepcopy(nets)
    fit_many(before_last, X, Y, TrainConfig(max_epochs=epochs - 1, tol=0, progress=False), lrs=lrs)
    params, mask = stacked(nets)
    chunks = Chunks(X, Y, ChunkState.start(params), lrs, activation=tuple(ACTIVATIONS), output=output, unit_mask=mask)
    costs, last = in_chunks(chunks, COUNTS)
    assert chunks.compile == compile_available()
    for k, (history, m) in enumerate(zip(histories, eager)):
        h = m.hidden_features
        assert_close(history_of(costs, k), torch.tensor(history.costs, dtype=torch.float64))
        W1, b1, W2, b2 = (p[k] for p in params)
        for got, want in zip((W1[:h], b1[:h], W2[:, :h], b2), m.parameters()):
            assert_close(got, want)
        assert (W1[h:] == 0).all() and (b1[h:] == 0).all() and (W2[:, h:] == 0).all()  # the padding stays zero
        theta = [p.detach().requires_grad_() for p in before_last[k].parameters()]
        Z2 = reference_logits(X, *theta, m.activation)
        assert last.right[k] == right_answers(Z2, Y, output)
        if output == "sigmoid":
            norm = torch.cat(
                [g.reshape(-1) for g in torch.autograd.grad(reference_cost(X, Y, *theta, m.activation), theta)]
            ).norm()
            assert_close(last.grad_norms[k], norm)
    assert last.epochs.tolist() == [epochs] * 3


def test_stop_epochs_are_exact():
    """One model diverges, the others converge at their own epochs (tol), over chunk boundaries: as in fit_many, to
    the epoch, and a diverged model ends with θ(t-1). The stack's shapes are those of the test above."""
    X, Y = data("sigmoid")
    nets, lrs = models("sigmoid", HIDDEN, ACTIVATIONS), [2.0, 400.0, 1.0]
    eager = copy.deepcopy(nets)
    config = TrainConfig(max_epochs=200, tol=1e-4, progress=False)
    histories = fit_many(eager, X, Y, config, lrs=lrs)
    reasons = [h.stop_reason for h in histories]
    assert "diverged" in reasons and "converged" in reasons, reasons  # what the test is about
    params, mask = stacked(nets)
    chunks = Chunks(X, Y, ChunkState.start(params), lrs, activation=tuple(ACTIVATIONS), tol=config.tol, unit_mask=mask)
    costs, last = in_chunks(chunks, [1, 6, 13, 180])
    assert chunks.compile == compile_available()
    assert [REASONS[s] for s in last.stops.tolist()] == reasons
    assert last.epochs.tolist() == [h.epochs for h in histories]
    for k, (history, m) in enumerate(zip(histories, eager)):
        assert_close(history_of(costs, k), torch.tensor(history.costs, dtype=torch.float64))
        assert_close(params[0][k, : m.hidden_features], m.W1)


def test_models_grouped_by_hidden_size_match_fit_many():
    """Mixed sizes as one unpadded stack per size, in one compiled loop: each model as fit_many trains it."""
    X, Y = data("sigmoid")
    nets = models("sigmoid", [2, 1, 2], ["tanh", "sigmoid", "relu"])
    lrs = [0.5, 1.0, 2.0]
    eager = copy.deepcopy(nets)
    histories = fit_many(eager, X, Y, TrainConfig(max_epochs=10, tol=0, progress=False), lrs=lrs)
    params, activations, order = stacks_by_size(nets)
    assert order == [1, 0, 2] and activations == ["sigmoid", ("tanh", "relu")]
    chunks = Chunks(
        X, Y, ChunkState.start(params), [lrs[k] for k in order], activation=activations, unit_mask=[None, None]
    )
    costs, _ = in_chunks(chunks, [4, 6])
    assert chunks.compile == compile_available()
    grouped = [(params[0], 0), (params[4], 0), (params[4], 1)]  # the models in the groups' order: (W1, index)
    for i, k in enumerate(order):
        assert_close(history_of(costs, i), torch.tensor(histories[k].costs, dtype=torch.float64))
        W1, j = grouped[i]
        assert_close(W1[j], eager[k].W1)


def test_one_model_diverges_at_the_same_epoch_as_fit():
    X, Y = data("sigmoid")
    net = models("sigmoid", [3], ["sigmoid"])[0]
    eager = copy.deepcopy(net)
    with pytest.raises(TrainingDiverged) as raised:
        fit(eager, X, Y, TrainConfig(lr=2000.0, max_epochs=50, tol=0, progress=False))
    history = raised.value.history
    params = [p.detach() for p in net.parameters()]
    costs, last = in_chunks(Chunks(X, Y, ChunkState.start(params), [2000.0], activation="sigmoid"), [3, 47])
    assert last.stops.tolist() == [DIVERGED] and last.epochs.tolist() == [history.epochs]
    assert_close(history_of(costs, 0), torch.tensor(history.costs, dtype=torch.float64))
    for got, want in zip(net.parameters(), eager.parameters()):
        assert_close(got, want)


def test_a_resumed_state_goes_on_as_one_run():
    """ChunkState.start from a history (first and last costs, epochs): the divergence limit and the convergence test
    carry over, so that the resumed model stops where fit does."""
    X, Y = data("sigmoid")
    net = models("sigmoid", [3], ["sigmoid"])[0]
    eager = copy.deepcopy(net)
    history = fit(eager, X, Y, TrainConfig(lr=0.5, max_epochs=100, tol=5e-5, progress=False))
    assert history.converged and history.epochs > 4
    params = [p.detach() for p in net.parameters()]
    split = history.epochs - 1  # the resumed run's first epoch is the one that converges, by J of the one before
    costs, _ = in_chunks(Chunks(X, Y, ChunkState.start(params), [0.5], activation="sigmoid", tol=5e-5), [split])
    state = ChunkState.start(params, [costs[0, 0].item()], [costs[-1, 0].item()], [split])
    rest, last = in_chunks(Chunks(X, Y, state, [0.5], activation="sigmoid", tol=5e-5), [100 - split], t=split)
    assert last.stops.tolist() == [CONVERGED] and last.epochs.tolist() == [history.epochs]
    assert_close(history_of(torch.cat([costs, rest[:, None, 0]]), 0), torch.tensor(history.costs, dtype=torch.float64))


def test_falls_back_to_eager_when_compiling_fails(monkeypatch):
    """A compiler that fails (simulated) gives one warning, and the chunks run the same epochs eagerly."""

    def failing(fn, **options):
        def run(*args):
            raise RuntimeError("simulated: the C++ compiler crashed")

        return run

    monkeypatch.setattr(compiled_module.torch, "compile", failing)
    monkeypatch.setattr(compiled_module, "_compiled", {})
    monkeypatch.setattr(compiled_module, "compile_available", lambda: True)
    X, Y = data("sigmoid", seed=1)
    net = models("sigmoid", [2], ["tanh"])[0]
    eager = copy.deepcopy(net)
    history = fit(eager, X, Y, TrainConfig(lr=0.5, max_epochs=8, tol=0, progress=False))
    params = [p.detach() for p in net.parameters()]
    chunks = Chunks(X, Y, ChunkState.start(params), [0.5], activation="tanh")
    with pytest.warns(RuntimeWarning, match=r"simulated: the C\+\+ compiler crashed.*runs eagerly"):
        costs, _ = in_chunks(chunks, [3, 5])
    assert not chunks.compile
    assert_close(costs[:, 0], torch.tensor(history.costs, dtype=torch.float64))
    assert_close(net.W1, eager.W1)


def test_no_compiler_means_no_compiling(monkeypatch):
    monkeypatch.setattr(compiled_module.shutil, "which", lambda name: None)
    compile_available.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler was found"):
            assert not compile_available()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once only
            assert not compile_available()
            assert not should_compile(True, 400, 2, 4, 64, 10**6, torch.device("cpu"))
    finally:
        compile_available.cache_clear()


def test_compiling_is_chosen_where_it_pays():
    cpu = torch.device("cpu")
    assert not should_compile(False, 400, 2, 4, 64, 10**6, cpu)
    assert should_compile(True, 100_000, 20, 64, 1, 10, cpu) == compile_available()
    assert not should_compile("auto", 100_000, 20, 64, 1, 10**6, cpu)  # arithmetic: compiling gains nothing
    assert not should_compile("auto", 400, 2, 4, 1, 10_000, cpu)  # make train: too short to repay the compile
    assert should_compile("auto", 400, 2, 4, 64, 100_000, cpu) == compile_available()
    with pytest.raises(ValueError, match="compile must be 'auto', True or False, got 'yes'"):
        should_compile("yes", 400, 2, 4, 1, 10, cpu)


def test_a_chunk_needs_epochs():
    X, Y = data("sigmoid")
    params = [p.detach() for p in models("sigmoid", [2], ["tanh"])[0].parameters()]
    chunks = Chunks(X, Y, ChunkState.start(params), [0.5], activation="tanh", compile=False)
    with pytest.raises(ValueError, match="count an int >= 1, got t0=0, count=0"):
        chunks(0, 0)


def test_epochs_per_chunk():
    assert epochs_per_chunk(20e-6) == 25_000
    assert epochs_per_chunk(2.0) == 1
    assert math.isclose(epochs_per_chunk(1e-3) * 1e-3, compiled_module.CHUNK_SECONDS)


# The training loop with compiled chunks: fit and fit_many with compile=True against compile=False ---------------------


class EveryFive(Callback):
    """An event every 5 epochs, so that the chunks run from one event to the next; SIGINT after epoch ``stop_at``."""

    every = 5

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.seen = stop_at, []

    def on_epoch_end(self, run):
        self.seen.append(run.epoch)
        if run.epoch == self.stop_at:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)


def test_fit_compiled_equals_fit_eager_between_events():
    X, Y = data("sigmoid")
    results = {}
    for mode in (True, False):
        net = models("sigmoid", [3], ["sigmoid"])[0]
        events = EveryFive()
        config = TrainConfig(lr=0.5, max_epochs=23, tol=0, progress=False, compile=mode)
        results[mode] = (fit(net, X, Y, config, callbacks=[events]), net, events.seen)
    (compiled, net_c, seen_c), (eager, net_e, seen_e) = results[True], results[False]
    assert seen_c == seen_e == [5, 10, 15, 20, 23]  # the callbacks see the same epochs
    assert compiled.epochs == eager.epochs == 23 and compiled.stop_reason == eager.stop_reason == "max_epochs"
    assert_close(torch.tensor(compiled.costs), torch.tensor(eager.costs))
    for got, want in zip(net_c.parameters(), net_e.parameters()):
        assert_close(got, want)


def test_fit_many_compiled_stops_each_model_where_the_eager_loop_does():
    X, Y = data("sigmoid")
    histories = {}
    for mode in (True, False):
        nets = models("sigmoid", HIDDEN, ACTIVATIONS)
        config = TrainConfig(max_epochs=60, tol=1e-3, progress=False, compile=mode)
        histories[mode] = fit_many(nets, X, Y, config, lrs=[0.5, 1.0, 1e5])
    for compiled, eager in zip(histories[True], histories[False]):
        assert (compiled.epochs, compiled.stop_reason) == (eager.epochs, eager.stop_reason)
        assert_close(torch.tensor(compiled.costs), torch.tensor(eager.costs))
    assert {h.stop_reason for h in histories[True]} >= {"diverged"}


def test_a_resumed_compiled_run_equals_an_uninterrupted_one(tmp_path):
    X, Y = data("sigmoid")
    config = TrainConfig(lr=0.5, max_epochs=23, tol=0, progress=False, compile=True, checkpoint=tmp_path / "c.pt")
    with pytest.raises(TrainingInterrupted):
        fit(models("sigmoid", [3], ["sigmoid"])[0], X, Y, config, callbacks=[EveryFive(stop_at=10)])
    resumed = models("sigmoid", [3], ["sigmoid"])[0]
    history = fit(resumed, X, Y, config, resume_from=tmp_path / "c.pt", callbacks=[EveryFive()])
    whole = models("sigmoid", [3], ["sigmoid"])[0]
    expected = fit(
        whole, X, Y, TrainConfig(lr=0.5, max_epochs=23, tol=0, progress=False, compile=True), callbacks=[EveryFive()]
    )
    assert history.costs == expected.costs
    assert all(torch.equal(p, q) for p, q in zip(resumed.parameters(), whole.parameters()))


def test_compile_true_where_a_run_cannot_compile_warns_and_trains_eagerly():
    X, Y = data("sigmoid")
    net = ShallowNet(D, 3, bias=(True, False), dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="trains eagerly, for a model has no bias"):
        history = fit(net, X, Y, TrainConfig(max_epochs=5, tol=0, progress=False, compile=True))
    assert history.epochs == 5


def test_auto_leaves_float32_runs_eager_where_tol_asks_for_js_last_bits(monkeypatch):
    """Below RESOLVED_TOL a float32 model stops where J no longer changes in its last bits, which compiled sums round
    otherwise: "auto" keeps such a run eager; with tol 0 it would compile."""
    from torch_shallow.callbacks import Run
    from torch_shallow.trainer import History, OneModel

    monkeypatch.setattr(compiled_module, "should_compile", lambda *args, **kwargs: True)
    X, Y = data("sigmoid")
    net = ShallowNet(D, 3)
    run = Run(OneModel(net, None, 0.5), X.float(), Y.float(), N, [History()], 100)
    assert compiled_module.compiled_epochs(run, "auto", 1e-9, plain=True) is None
    assert compiled_module.compiled_epochs(run, "auto", 1e-5, plain=True) is not None
