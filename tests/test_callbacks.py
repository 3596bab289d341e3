"""The callbacks: when the loop calls them, what they see, a user's callback stopping training and keeping its state
through Ctrl-C and a resume, and each built-in callback against an independent computation."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_shallow import (
    Callback,
    ShallowNet,
    TrainConfig,
    TrainingInterrupted,
    evaluate,
    fit,
    fit_many,
    planar,
)
from torch_shallow.checkpoint import load_checkpoint


def seeded(d1: int = 4, seed: int = 0, **kwargs) -> ShallowNet:
    net = ShallowNet(2, d1, dtype=torch.float64, **kwargs)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


class Recorder(Callback):
    """Records each call: the hook, run.epoch, the number of costs, and W1 as the model holds it."""

    def __init__(self, every: int | None = 1) -> None:
        self.every, self.calls = every, []

    def on_fit_start(self, run):
        self.calls.append(("start", run.epoch, len(run.histories[0].costs), run.models[0].W1.detach().clone()))

    def on_epoch_end(self, run):
        self.calls.append(("epoch", run.epoch, len(run.histories[0].costs), run.models[0].W1.detach().clone()))

    def on_fit_end(self, run):
        self.calls.append(("end", run.epoch, len(run.histories[0].costs), None))


@pytest.mark.parametrize("epochs, every", [(10, 3), (9, 3), (5, 1), (7, None)])
def test_on_epoch_end_runs_every_k_epochs_and_once_after_the_last(epochs, every):
    X, Y = planar(dtype=torch.float64)
    recorder = Recorder(every)
    fit(seeded(), X, Y, TrainConfig(max_epochs=epochs, tol=0), callbacks=[recorder])
    called = [epoch for hook, epoch, _, _ in recorder.calls if hook == "epoch"]
    due = [] if every is None else [t + 1 for t in range(epochs) if (t + 1) % every == 0]
    assert called == due + ([epochs] if epochs not in due else [])
    assert recorder.calls[0][:3] == ("start", 0, 0) and recorder.calls[-1][:3] == ("end", epochs, epochs)
    # after epoch t the model holds θ(t+1) and the history J(θ(0))..J(θ(t))
    assert all(epoch == costs for hook, epoch, costs, _ in recorder.calls if hook == "epoch")


def test_a_callback_sees_the_parameters_of_its_epoch():
    """θ(t) seen at run.epoch = t equals θ after t steps of a run without callbacks."""
    X, Y = planar(dtype=torch.float64)
    recorder = Recorder(4)
    fit(seeded(), X, Y, TrainConfig(max_epochs=12, tol=0), callbacks=[recorder])
    for _, epoch, _, W1 in (c for c in recorder.calls if c[0] == "epoch"):
        alone = seeded()
        fit(alone, X, Y, TrainConfig(max_epochs=epoch, tol=0))
        assert torch.equal(W1, alone.W1)


class StopAtAccuracy(Callback):
    """Stops training once the training accuracy reaches ``threshold``, counting its checks in its state."""

    every = 10

    def __init__(self, threshold: float) -> None:
        self.threshold, self.checks = threshold, 0

    def on_epoch_end(self, run):
        self.checks += 1
        _, accuracies = run.evaluate(run.X, run.Y)
        if max(accuracies) >= self.threshold:
            run.stop("accuracy reached")

    def state_dict(self):
        return {"checks": self.checks}

    def load_state_dict(self, state):
        self.checks = state["checks"]


def test_a_users_callback_stops_training_with_its_reason():
    X, Y = planar(dtype=torch.float64)
    net = seeded()
    history = fit(net, X, Y, TrainConfig(max_epochs=5000, tol=0), callbacks=[StopAtAccuracy(0.85)])
    assert history.stop_reason == "accuracy reached" and history.epochs % 10 == 0 and history.epochs < 5000
    assert evaluate(net, X, Y)[1] >= 0.85 and history.train_accuracy == evaluate(net, X, Y)[1]
    before = seeded()
    fit(before, X, Y, TrainConfig(max_epochs=history.epochs - 10, tol=0))
    assert evaluate(before, X, Y)[1] < 0.85  # it stopped at the first check that met the threshold


def test_a_stack_stops_on_a_users_callback_too():
    X, Y = planar(dtype=torch.float64)
    histories = fit_many(
        [seeded(4, 0), seeded(3, 1)], X, Y, TrainConfig(max_epochs=5000, tol=0), callbacks=[StopAtAccuracy(0.85)]
    )
    assert {h.stop_reason for h in histories} == {"accuracy reached"}


class StopModels(Callback):
    """Stops the models of ``models`` after epoch ``at``."""

    def __init__(self, at: int, models) -> None:
        self.at, self.models = at, models

    def on_epoch_end(self, run):
        if run.epoch == self.at:
            run.stop("chosen", models=self.models)


def test_a_callback_stops_the_models_it_names_and_no_others():
    X, Y = planar(dtype=torch.float64)
    histories = fit_many(
        [seeded(2, k) for k in range(4)], X, Y, TrainConfig(max_epochs=30, tol=0), callbacks=[StopModels(10, [3, 1])]
    )
    assert [(h.stop_reason, h.epochs) for h in histories] == [
        ("max_epochs", 30),
        ("chosen", 10),
        ("max_epochs", 30),
        ("chosen", 10),
    ]


@pytest.mark.parametrize("models", [[np.int64(3), 1], (torch.tensor(3), torch.tensor([1])), range(1, 4, 2)])
def test_a_callback_names_the_models_to_stop_as_it_holds_them(models):
    X, Y = planar(dtype=torch.float64)
    callbacks = [StopModels(10, models)]
    histories = fit_many([seeded(2, k) for k in range(4)], X, Y, TrainConfig(max_epochs=30, tol=0), callbacks=callbacks)
    assert [h.epochs for h in histories] == [30, 10, 30, 10]


@pytest.mark.parametrize(
    ("models", "error"),
    [
        ([4], IndexError),
        ([-1], IndexError),
        ([1.0], IndexError),
        ([True], IndexError),
        (torch.tensor([False, False, True, False]), IndexError),  # a mask is not a list of indices
        (np.array([False, True]), IndexError),
        (2, TypeError),
        (torch.tensor(2), TypeError),
    ],
)
def test_stopping_a_model_that_is_not_there_is_refused(models, error):
    X, Y = planar(dtype=torch.float64)
    message = (
        r"models must hold indices of models, 0 to 3, got" if error is IndexError else r"models must be a sequence"
    )
    with pytest.raises(error, match=message):
        fit_many([seeded(2, k) for k in range(4)], X, Y, TrainConfig(max_epochs=30), callbacks=[StopModels(5, models)])


class Logs(Callback):
    """Logs ``scalars`` at every epoch."""

    def __init__(self, scalars) -> None:
        self.scalars = scalars

    def on_epoch_end(self, run):
        run.log(self.scalars)


def test_a_callback_logs_numbers_of_any_kind_into_the_histories_and_tensorboard(tmp_path):
    X, Y = planar(dtype=torch.float64)
    scalars = [{"a": 1, "b": np.float32(0.5)}, None, {"a": torch.tensor(2.5), "c": True}]
    config = TrainConfig(max_epochs=3, tol=0, log_dir=tmp_path)
    histories = fit_many(
        [seeded(2, k) for k in range(3)], X, Y, config, run_names=list("xyz"), callbacks=[Logs(scalars)]
    )
    assert histories[0].metrics == {"a": [(e, 1.0) for e in (1, 2, 3)], "b": [(e, 0.5) for e in (1, 2, 3)]}
    assert histories[1].metrics == {} and histories[2].metrics["c"] == [(e, 1.0) for e in (1, 2, 3)]
    events = EventAccumulator(str(tmp_path / "z"), size_guidance={"scalars": 0}).Reload()
    assert [(e.step, e.value) for e in events.Scalars("a")] == [(e, 2.5) for e in (1, 2, 3)]


@pytest.mark.parametrize(
    ("scalars", "error", "message"),
    [
        ({"a": 1.0}, TypeError, r"scalars must be a list of one dict \(or None\) per model, got dict"),
        ([{"a": 1.0}] * 3, ValueError, r"scalars must hold one dict \(or None\) per model, 2, got 3"),
        ([{"a": 1.0}, {"a": "3.0"}], TypeError, r"scalars\[1\]\['a'\] must be a number, got '3.0'"),
        ([{"a": torch.ones(2)}, None], TypeError, r"scalars\[0\]\['a'\] must be a number"),
        ([{1: 1.0}, None], TypeError, r"scalars\[0\] has the tag 1"),
        ([[1.0], None], TypeError, r"scalars\[0\] must be a dict"),
        ([None, {"cost/train": 9.0}], ValueError, r"scalars\[1\] has the tag 'cost/train', which the trainer logs"),
    ],
)
def test_what_a_callback_logs_is_checked_before_anything_is_recorded(scalars, error, message):
    X, Y = planar(dtype=torch.float64)
    nets = [seeded(2, k) for k in range(2)]
    histories = []

    class Keep(Callback):
        def on_fit_start(self, run):
            histories.extend(run.histories)

    with pytest.raises(error, match=message):
        fit_many(nets, X, Y, TrainConfig(max_epochs=3, tol=0), callbacks=[Keep(), Logs(scalars)])
    assert all(h.metrics == {} for h in histories)


class Interrupter(Callback):
    """Sends the process SIGINT, as Ctrl-C does, after epoch ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, run):
        if run.epoch == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("many", [False, True])
def test_a_users_callback_state_survives_ctrl_c_and_resume(tmp_path, many):
    X, Y = planar(dtype=torch.float64)
    config = TrainConfig(max_epochs=300, tol=0, checkpoint=tmp_path / "c.pt", checkpoint_every=1000)

    def train(callbacks, **kwargs):
        if many:
            return fit_many([seeded(4, 0), seeded(2, 1)], X, Y, config, callbacks=callbacks, **kwargs)[0]
        return fit(seeded(), X, Y, config, callbacks=callbacks, **kwargs)

    first = StopAtAccuracy(2.0)  # never reached: it only counts
    with pytest.raises(TrainingInterrupted) as stopped:
        train([first, Interrupter(120)])
    assert stopped.value.signal == signal.SIGINT and first.checks == 12
    resumed = StopAtAccuracy(2.0)
    history = train([resumed], resume_from=tmp_path / "c.pt")
    assert resumed.checks == 30 and history.epochs == 300
    whole = StopAtAccuracy(2.0)
    config = dataclasses.replace(config, checkpoint=None)
    expected = train([whole])
    assert whole.checks == 30 and history.costs == expected.costs


def test_logged_values_are_kept_in_the_history(tmp_path):
    class Norms(Callback):
        every = 5

        def on_epoch_end(self, run):
            run.log([{f"norm/W1[{j}]": row.norm().item() for j, row in enumerate(m.W1)} for m in run.models])

    X, Y = planar(dtype=torch.float64)
    net = seeded()
    history = fit(net, X, Y, TrainConfig(max_epochs=20, tol=0, log_dir=tmp_path / "run"), callbacks=[Norms()])
    assert [epoch for epoch, _ in history.metrics["norm/W1[0]"]] == [5, 10, 15, 20]
    assert history.metrics["norm/W1[3]"][-1][1] == pytest.approx(net.W1[3].norm().item())
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    assert [e.step for e in events.Scalars("norm/W1[3]")] == [5, 10, 15, 20]


def test_callbacks_must_be_callbacks():
    X, Y = planar()
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be a torch_shallow.Callback, got function"):
        fit(ShallowNet(2, 4), X, Y, TrainConfig(max_epochs=2), callbacks=[lambda run: None])


# The built-in callbacks, each against an independent computation ----------------------------------------------------


def halves():
    X, Y = planar(dtype=torch.float64)
    rows = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    return (X[rows[:300]], Y[rows[:300]]), (X[rows[300:]], Y[rows[300:]])


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_ends_with_the_best_or_the_last_parameters(restore_best):
    train, val = halves()
    config = TrainConfig(lr=2.0, max_epochs=5000, tol=0, log_every=20, patience=5, restore_best=restore_best)
    net = seeded(50, activation="tanh")
    history = fit(net, *train, config, val=val)
    assert history.stop_reason == "early_stopping"
    assert 0 < history.best_epoch < history.epochs
    again = seeded(50, activation="tanh")  # an independent run of exactly the epochs to keep
    fit(
        again,
        *train,
        dataclasses.replace(config, max_epochs=history.best_epoch if restore_best else history.epochs, patience=None),
        val=None,
    )
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), again.parameters()))


def test_a_checkpoint_keeps_the_last_parameters_only_while_the_best_are_put_back(tmp_path):
    train, val = halves()
    config = TrainConfig(lr=2.0, max_epochs=5000, tol=0, log_every=20, patience=5, checkpoint=tmp_path / "a.pt")
    fit(seeded(50, activation="tanh"), *train, config, val=val)
    assert load_checkpoint(tmp_path / "a.pt")["callbacks"]["EarlyStopping"]["trained"] is not None
    config = dataclasses.replace(config, restore_best=False, checkpoint=tmp_path / "b.pt")
    fit(seeded(50, activation="tanh"), *train, config, val=val)
    assert load_checkpoint(tmp_path / "b.pt")["callbacks"]["EarlyStopping"]["trained"] is None


def test_a_stacks_logged_values_are_each_models_alone(tmp_path):
    """grad_norm, the accuracy and the cost of each model of a stack (of mixed sizes, so padded) and of softmax
    outputs, as fit logs them for the model alone."""
    X, Y = planar(dtype=torch.float64)
    labels = torch.nn.functional.one_hot(Y.reshape(-1).long() + (X[:, 0] > 1).long(), 3).double()
    for output, targets, d2 in (("sigmoid", Y, 1), ("softmax", labels, 3)):

        def net(d1, seed):
            m = ShallowNet(2, d1, d2, output=output, dtype=torch.float64)
            m.reset_parameters(torch.Generator().manual_seed(seed))
            return m

        config = TrainConfig(max_epochs=30, tol=0, log_every=10)
        fit_many(
            [net(4, 0), net(2, 1)],
            X,
            targets,
            dataclasses.replace(config, log_dir=tmp_path / output),
            run_names=["a", "b"],
        )
        for name, (d1, seed) in zip("ab", [(4, 0), (2, 1)]):
            fit(net(d1, seed), X, targets, dataclasses.replace(config, log_dir=tmp_path / f"{output}-{name}"))
            stacked = EventAccumulator(str(tmp_path / output / name)).Reload()
            alone = EventAccumulator(str(tmp_path / f"{output}-{name}")).Reload()
            for tag in ("grad_norm", "accuracy/train", "cost/train"):
                assert [e.step for e in stacked.Scalars(tag)] == [e.step for e in alone.Scalars(tag)]
                for a, b in zip(stacked.Scalars(tag), alone.Scalars(tag)):
                    assert a.value == pytest.approx(b.value, rel=1e-6), (output, name, tag)


def test_a_stack_draws_the_dashboards_of_its_best_models_only(tmp_path):
    X, Y = planar(dtype=torch.float64)
    nets = [seeded(4, seed) for seed in range(4)]
    config = TrainConfig(max_epochs=20, tol=0, log_dir=tmp_path, dashboard_every=10, dashboard_models=2)
    histories = fit_many(nets, X, Y, config, run_names=list("abcd"))
    best = sorted(range(4), key=lambda k: histories[k].final_cost)[:2]
    drawn = {}
    for k, name in enumerate("abcd"):
        events = EventAccumulator(str(tmp_path / name), size_guidance={"images": 0}).Reload()
        drawn[k] = [e.step for e in events.Images("decision_boundary")] if events.Tags()["images"] else []
        # none at epoch 0, where untrained models' costs say nothing of which are best; at the end, only the best
        assert 0 not in drawn[k] and (20 in drawn[k]) == (k in best)
    assert sum(10 in steps for steps in drawn.values()) == 2


def test_a_stack_asked_for_every_dashboard_draws_each_model_from_epoch_0(tmp_path):
    X, Y = planar(dtype=torch.float64)
    config = TrainConfig(max_epochs=20, tol=0, log_dir=tmp_path, dashboard_every=10, dashboard_models=None)
    fit_many([seeded(4, seed) for seed in range(3)], X, Y, config, run_names=list("abc"))
    for name in "abc":
        events = EventAccumulator(str(tmp_path / name), size_guidance={"images": 0, "histograms": 0}).Reload()
        assert [e.step for e in events.Images("decision_boundary")] == [0, 10, 20]
        assert [e.step for e in events.Histograms("gradients/W1")] == [0, 10, 20]


def test_the_progress_bar_follows_the_epochs(capsys):
    X, Y = planar(dtype=torch.float64)
    fit(seeded(), X, Y, TrainConfig(max_epochs=37, tol=0, progress=True))
    err = capsys.readouterr().err
    assert "37/37" in err and "cost=" in err


def test_a_callback_before_the_one_that_stops_is_still_called_once_after_the_last_epoch():
    X, Y = planar(dtype=torch.float64)
    recorder = Recorder(every=None)
    history = fit(seeded(), X, Y, TrainConfig(max_epochs=5000, tol=0), callbacks=[recorder, StopAtAccuracy(0.85)])
    assert [epoch for hook, epoch, _, _ in recorder.calls if hook == "epoch"] == [history.epochs]


@pytest.mark.parametrize("many", [False, True])
def test_a_model_stopped_by_a_callback_ends_its_curve_with_one_point(tmp_path, many):
    """TensorBoard logs the epoch before the user's callback stops training there: the final values, at the same
    step, are not logged a second time."""
    X, Y = planar(dtype=torch.float64)
    config = TrainConfig(max_epochs=50, tol=0, log_dir=tmp_path, log_every=1)
    if many:
        fit_many([seeded(2), seeded(3)], X, Y, config, run_names=["a", "b"], callbacks=[StopModels(3, None)])
    else:
        fit(seeded(), X, Y, dataclasses.replace(config, log_dir=tmp_path / "a"), callbacks=[StopModels(3, None)])
    events = EventAccumulator(str(tmp_path / "a"), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in events.Scalars("cost/train")] == [0, 1, 2, 3]


def test_a_stacks_stopped_models_are_not_drawn_again(tmp_path):
    """Each model's dashboards while it trains, then one at the end with its final θ: a model that converged early
    is not drawn again at each later dashboard step."""
    X, Y = planar(dtype=torch.float64)
    nets = [seeded(d1, seed) for d1, seed in ((1, 0), (2, 1), (4, 2))]
    config = TrainConfig(max_epochs=1000, tol=1e-4, log_dir=tmp_path, dashboard_every=50, dashboard_models=None)
    histories = fit_many(nets, X, Y, config, run_names=list("abc"))
    assert [h.epochs for h in histories] == [111, 298, 580]  # converged apart, none at a dashboard step
    for name, history in zip("abc", histories):
        events = EventAccumulator(str(tmp_path / name), size_guidance={"images": 0, "histograms": 0}).Reload()
        steps = [e.step for e in events.Images("decision_boundary")]
        expected = [*range(0, history.epochs, 50), history.epochs]
        assert steps == expected, name
        assert [e.step for e in events.Histograms("parameters/W1")] == expected


def test_a_resumed_stack_logs_each_step_of_each_model_once(tmp_path):
    """Models that had stopped log their final values and dashboards again from their own epoch, which the resumed
    run's event files purge from; one that reached max_epochs goes on. No step of any curve or image is repeated."""
    X, Y = planar(dtype=torch.float64)

    def stack():
        return [seeded(d1, seed) for d1, seed in ((1, 0), (2, 1), (4, 2))]  # converge at 111, 298 and 580

    config = TrainConfig(
        max_epochs=400,
        tol=1e-4,
        log_dir=tmp_path,
        checkpoint=tmp_path / "c.pt",
        dashboard_every=50,
        dashboard_models=None,
    )
    fit_many(stack(), X, Y, config, run_names=list("abc"))
    config = dataclasses.replace(config, max_epochs=1000)
    histories = fit_many(stack(), X, Y, config, run_names=list("abc"), resume_from=tmp_path / "c.pt")
    assert [h.epochs for h in histories] == [111, 298, 580]
    for name, history in zip("abc", histories):
        events = EventAccumulator(str(tmp_path / name), size_guidance={"scalars": 0, "images": 0}).Reload()
        assert [e.step for e in events.Scalars("cost/train")] == [*range(history.epochs), history.epochs], name
        assert [e.step for e in events.Images("decision_boundary")] == [*range(0, history.epochs, 50), history.epochs]


def test_the_tags_a_callback_may_not_log_are_those_tensorboard_logs(tmp_path):
    from torch_shallow.callbacks import BUILT_IN_TAGS

    X, Y = planar(dtype=torch.float64)
    fit(seeded(), X, Y, TrainConfig(max_epochs=5, log_dir=tmp_path), val=(X[::4], Y[::4]))
    assert set(EventAccumulator(str(tmp_path)).Reload().Tags()["scalars"]) == BUILT_IN_TAGS


def test_a_stopped_model_takes_no_dashboard_from_the_models_still_training(tmp_path):
    X, Y = planar(dtype=torch.float64)
    config = TrainConfig(max_epochs=150, tol=0, log_dir=tmp_path, dashboard_every=50, dashboard_models=1)
    fit_many(
        [seeded(4, seed) for seed in range(3)],
        X,
        Y,
        config,
        lrs=[1.2, 0.01, 0.01],  # the first learns fastest: the lowest cost, also once it has stopped
        run_names=list("abc"),
        callbacks=[StopModels(50, [0])],
    )
    drawn = {}
    for name in "abc":
        events = EventAccumulator(str(tmp_path / name), size_guidance={"images": 0}).Reload()
        drawn[name] = [e.step for e in events.Images("decision_boundary")] if events.Tags()["images"] else []
    assert drawn["a"] == [50]  # the best while it trained, and at the end, where it is not drawn twice
    assert sorted(drawn["b"] + drawn["c"]) == [100]  # the best of those still training
