"""Many models at once: fit_many against fit model by model, padding, stopping, divergence, checkpoints, validation,
on-disk and distributed data, the sweep command and its TensorBoard runs, and logging that costs almost nothing."""

import datetime
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_shallow import ShallowNet, TrainConfig, fit, open_npy, planar
from torch_shallow.checkpoint import load_checkpoint
from torch_shallow.cli import main
from torch_shallow.distributed import shard
from torch_shallow.stack import ModelStack, fit_many

# hidden size, activation, learning rate: mixed, so that padding, activation runs and per-model steps all matter
GRID = [(1, "tanh", 1.2), (4, "sigmoid", 0.5), (5, "relu", 0.3), (20, "tanh", 1.2), (3, "sigmoid", 2.0)]


def make(k, hidden, activation, dtype=torch.float64, **kwargs):
    net = ShallowNet(2, hidden, activation=activation, dtype=dtype, **kwargs)
    net.reset_parameters(torch.Generator().manual_seed(k))
    return net


def models(grid=GRID, dtype=torch.float64):
    return [make(k, h, a, dtype) for k, (h, a, _) in enumerate(grid)]


def assert_same_run(single, many, single_net, many_net, rtol=1e-10):
    assert (many.epochs, many.stop_reason) == (single.epochs, single.stop_reason)
    np.testing.assert_allclose(many.costs, single.costs, rtol=rtol, atol=1e-13)
    assert many.final_cost == pytest.approx(single.final_cost, rel=rtol)
    assert many.train_accuracy == single.train_accuracy
    for p, q in zip(many_net.parameters(), single_net.parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("tol", [0.0, 1e-5])  # with 1e-5 the models converge at different epochs, 351 to 2997
def test_each_model_ends_where_fit_alone_leaves_it(tol):
    X, Y = planar(dtype=torch.float64)
    config = TrainConfig(max_epochs=3000 if tol else 400, tol=tol)
    stacked = models()
    histories = fit_many(stacked, X, Y, config, lrs=[lr for *_, lr in GRID])
    for k, (h, a, lr) in enumerate(GRID):
        alone = make(k, h, a)
        expected = fit(alone, X, Y, TrainConfig(max_epochs=config.max_epochs, tol=tol, lr=lr))
        assert_same_run(expected, histories[k], alone, stacked[k])
    if tol:
        assert len({h.epochs for h in histories}) == len(GRID)  # each stopped on its own


def test_padded_units_stay_exactly_zero():
    X, Y = planar(dtype=torch.float64)
    stack = ModelStack(models(), [lr for *_, lr in GRID])
    for _ in range(50):
        stack.cost_and_grad(X, Y, X.shape[0], count_right=False)
        stack.step([True] * len(GRID))
    for k, (h, _, _) in enumerate(GRID):
        assert stack.W1[k, h:].eq(0).all() and stack.b1[k, h:].eq(0).all() and stack.W2[k, :, h:].eq(0).all()
        assert stack.W1[k, :h].ne(0).all()


def test_one_diverging_model_stops_alone_with_its_last_good_parameters():
    X, Y = planar(dtype=torch.float64)
    grid = [(4, "tanh", 1.2), (4, "tanh", 500.0), (4, "sigmoid", 1.2)]
    stacked = models(grid)
    histories = fit_many(stacked, X, Y, TrainConfig(max_epochs=200, tol=0), lrs=[lr for *_, lr in grid])
    assert [h.stop_reason for h in histories] == ["max_epochs", "diverged", "max_epochs"]
    diverged = histories[1]
    assert diverged.epochs < 200 and len(diverged.costs) == diverged.epochs
    assert stacked[1].cost(X, Y).item() == pytest.approx(diverged.costs[-1], rel=1e-12)  # θ(t-1), the last good
    for k in (0, 2):
        alone = make(k, *grid[k][:2])
        assert_same_run(
            fit(alone, X, Y, TrainConfig(max_epochs=200, tol=0, lr=grid[k][2])), histories[k], alone, stacked[k]
        )


def test_an_interrupted_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    X, Y = planar(dtype=torch.float64)
    lrs = [lr for *_, lr in GRID]
    whole = models()
    expected = fit_many(whole, X, Y, TrainConfig(max_epochs=300, tol=1e-6), lrs=lrs)
    first = models()
    fit_many(first, X, Y, TrainConfig(max_epochs=120, tol=1e-6, checkpoint=tmp_path / "c.pt"), lrs=lrs)
    resumed = [make(99, h, a) for h, a, _ in GRID]  # other parameters: everything comes from the checkpoint
    histories = fit_many(resumed, X, Y, TrainConfig(max_epochs=300, tol=1e-6), lrs=lrs, resume_from=tmp_path / "c.pt")
    assert histories == expected
    for a, b in zip(resumed, whole):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="learning rates were"):
        fit_many(models(), X, Y, TrainConfig(max_epochs=300), lrs=[0.1] * 5, resume_from=tmp_path / "c.pt")


def test_validation_and_early_stopping_per_model():
    X, Y = planar(dtype=torch.float64)
    X_val, Y_val = X[::3], Y[::3]
    config = TrainConfig(max_epochs=3000, tol=0, log_every=10, patience=5)
    stacked = models()
    histories = fit_many(stacked, X[1::3], Y[1::3], config, lrs=[lr for *_, lr in GRID], val=(X_val, Y_val))
    for k, (h, a, lr) in enumerate(GRID):
        alone = make(k, h, a)
        expected = fit(
            alone,
            X[1::3],
            Y[1::3],
            TrainConfig(max_epochs=3000, tol=0, log_every=10, patience=5, lr=lr),
            val=(X_val, Y_val),
        )
        assert (histories[k].best_epoch, histories[k].stop_reason) == (expected.best_epoch, expected.stop_reason)
        np.testing.assert_allclose(histories[k].val_costs, expected.val_costs, rtol=1e-10)
        assert histories[k].val_accuracy == expected.val_accuracy
    assert any(h.stop_reason == "early_stopping" for h in histories)


def test_on_disk_data_gives_the_in_memory_result(tmp_path):
    X, Y = planar(dtype=torch.float64)
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "X.npy", X.numpy())
    np.save(tmp_path / "d" / "Y.npy", Y.numpy())
    config = TrainConfig(max_epochs=100, tol=0)
    in_memory = fit_many(models(), X, Y, config, lrs=[lr for *_, lr in GRID])
    on_disk = fit_many(models(), *open_npy(tmp_path / "d", dtype=torch.float64), config, lrs=[lr for *_, lr in GRID])
    assert on_disk == in_memory


def sweep_rank(rank, size, rendezvous, out):
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=size, timeout=datetime.timedelta(seconds=60)
    )
    try:
        X, Y = planar(dtype=torch.float64)
        start, stop = shard(400, rank, size)
        stacked = [make(k + 10 * rank, h, a) for k, (h, a, _) in enumerate(GRID)]  # rank 0's θ must win
        histories = fit_many(
            stacked, X[start:stop], Y[start:stop], TrainConfig(max_epochs=60, tol=0), lrs=[lr for *_, lr in GRID]
        )
        torch.save({"costs": [h.costs for h in histories], "W1": [m.W1.detach() for m in stacked]}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_ranks_sweep_exactly_as_one_process(tmp_path):
    from test_distributed import run_ranks

    X, Y = planar(dtype=torch.float64)
    expected = fit_many(stacked := models(), X, Y, TrainConfig(max_epochs=60, tol=0), lrs=[lr for *_, lr in GRID])
    assert run_ranks(sweep_rank, 2, tmp_path / "rendezvous", str(tmp_path / "result")) == [0, 0]
    for rank in range(2):
        result = torch.load(tmp_path / f"result.{rank}")
        for k in range(len(GRID)):
            np.testing.assert_allclose(result["costs"][k], expected[k].costs, rtol=1e-9)
            torch.testing.assert_close(result["W1"][k], stacked[k].W1.detach(), rtol=1e-9, atol=1e-12)


def test_bad_stacks_are_refused():
    X, Y = planar()
    with pytest.raises(ValueError, match="models is empty"):
        fit_many([], X, Y)
    with pytest.raises(ValueError, match=r"models\[1\] .* needs the in_features"):
        fit_many([ShallowNet(2, 3), ShallowNet(3, 3)], X, Y)
    with pytest.raises(ValueError, match=r"lrs must have one entry per model \(2\), got 3"):
        fit_many([ShallowNet(2, 3), ShallowNet(2, 4)], X, Y, lrs=[1, 2, 3])
    with pytest.raises(ValueError, match=r"lrs\[0\] must be a finite number > 0"):
        fit_many([ShallowNet(2, 3)], X, Y, lrs=[float("nan")])
    frozen = ShallowNet(2, 3)
    frozen.b2.requires_grad_(False)
    with pytest.raises(ValueError, match=r"models\[1\].b2 does not require a gradient; fit_many trains all"):
        fit_many([ShallowNet(2, 3), frozen], X, Y)


# The command line ---------------------------------------------------------------------------------------------------


def test_the_sweep_command_trains_logs_and_tabulates_every_model(tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "--hidden",
                "2",
                "4",
                "--activation",
                "tanh",
                "sigmoid",
                "--lr",
                "0.5",
                "1.2",
                "--seeds",
                "0",
                "1",
                "--epochs",
                "300",
                "--log-dir",
                str(tmp_path / "sweep"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:] if line.strip() and not line.startswith("TensorBoard")]
    assert len(rows) == 16
    costs = [float(row[4]) for row in rows]
    assert costs == sorted(costs)  # sorted by final cost
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(runs) == 16 and "h4-tanh-lr1.2-s1" in runs
    # one model of the table, against fit alone
    row = next(r for r in rows if r[:4] == ["4", "tanh", "1.2", "1"])
    X, Y = planar()
    alone = make(1, 4, "tanh", torch.float32)
    history = fit(alone, X, Y, TrainConfig(max_epochs=300, lr=1.2))
    assert float(row[4]) == pytest.approx(history.final_cost, abs=2e-6)
    events = EventAccumulator(str(tmp_path / "sweep" / "h4-tanh-lr1.2-s1"), size_guidance={"scalars": 0})
    events.Reload()
    assert events.Scalars("cost/train")[-1].step == 300  # the curve ends at the final cost
    assert events.Scalars("cost/train")[-1].value == pytest.approx(history.final_cost, abs=2e-6)


def test_the_hparams_of_each_model_of_a_sweep(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert main(["sweep", "--hidden", "2", "3", "--seeds", "4", "--epochs", "20", "--log-dir", str(tmp_path)]) == 0
    events = EventAccumulator(str(tmp_path / "h3-sigmoid-lr1.2-s4"), size_guidance={"tensors": 0})
    events.Reload()
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert hparams["hidden_features"] == 3 and hparams["seed"] == 4 and hparams["activation"] == "sigmoid"
    assert hparams["lr"] == pytest.approx(1.2)
    assert "device" not in hparams and "dtype" not in hparams and "csv" not in hparams  # settings, not hparams


def test_a_terminated_sweep_resumes(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch_shallow",
        "sweep",
        "--hidden",
        "3",
        "4",
        "--seeds",
        "0",
        "1",
        "--tol",
        "0",
        "--checkpoint-every",
        "100",
        "--log-dir",
        str(tmp_path / "sweep"),
    ]
    process = subprocess.Popen(
        [*command, "--epochs", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    checkpoint = tmp_path / "sweep" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    epochs = max(h["epochs"] for h in load_checkpoint(checkpoint)["history"])
    assert f"after epoch {epochs}; resume with: torch-shallow sweep --resume {checkpoint}" in err
    resumed = subprocess.run(
        [sys.executable, "-m", "torch_shallow", "sweep", "--resume", str(checkpoint), "--epochs", str(epochs + 50)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert all(h["epochs"] == epochs + 50 for h in load_checkpoint(checkpoint)["history"])


# Logging that costs almost nothing ----------------------------------------------------------------------------------


def test_default_logging_keeps_about_a_thousand_points_and_the_last(tmp_path):
    X, Y = planar()
    net = make(0, 4, "sigmoid", torch.float32)
    history = fit(net, X, Y, TrainConfig(max_epochs=4321, tol=0, log_dir=tmp_path))
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("cost/train")]
    assert steps == [*range(0, 4321, 5), 4321]  # every ceil(4321 / 1000) = 5 epochs, and J(θ(4321)) at the end
    accuracy = events.Scalars("accuracy/train")
    assert accuracy[-1].value == pytest.approx(history.train_accuracy)
    start = make(0, 4, "sigmoid", torch.float32)  # the accuracy counted in the sweep, against θ(0)'s predictions
    assert accuracy[0].value == pytest.approx(((start(X) > 0).float() == Y).float().mean().item())


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a", "a"], r"run_names must be distinct; 'a' appear"),
        (["", "b"], r"run_names\[0\] must be a plain directory name, got ''"),
        (["a", ".."], r"run_names\[1\] must be a plain directory name, got '\.\.'"),
        (["a/b", "c"], r"run_names\[0\] must be a plain directory name"),
        (["a", ".lock"], r"run_names\[1\] must be a plain directory name"),  # the run directory's lock file
        (["a", "x" * 256], r"run_names\[1\] must be a plain directory name"),  # longer than a file name may be
    ],
)
def test_run_names_are_distinct_plain_directory_names(tmp_path, names, message):
    X, Y = planar()
    with pytest.raises(ValueError, match=message):
        fit_many(
            [ShallowNet(2, 2), ShallowNet(2, 3)], X, Y, TrainConfig(max_epochs=5, log_dir=tmp_path), run_names=names
        )
    assert not list(tmp_path.iterdir())


def test_default_run_names_tell_every_model_apart():
    from torch_shallow.run import model_run_names

    names = model_run_names([4, 4, 4, 4], ["tanh"] * 4, [1.0000001, 1.00000011, 1.2, 1.2], [None, None, 0, 0])
    assert names == ["h4-tanh-lr1.0000001", "h4-tanh-lr1.00000011", "h4-tanh-lr1.2-s0-2", "h4-tanh-lr1.2-s0-3"]


@pytest.mark.parametrize("taken", ["file", "checkpoint", "checkpoint by a link", "broken link"])
def test_a_run_directory_taken_by_a_file_is_refused_before_the_first_epoch(tmp_path, taken):
    """A stack's run directories are made while it trains; what would keep one from being made is refused first."""
    X, Y = planar()
    (tmp_path / "sweep").mkdir()
    checkpoint = tmp_path / "sweep" / "c.pt"
    if taken == "checkpoint by a link":
        (tmp_path / "alias").symlink_to(tmp_path / "sweep")
        checkpoint = tmp_path / "alias" / "c.pt"
    config = TrainConfig(max_epochs=5, log_dir=tmp_path / "sweep", checkpoint=checkpoint)
    names = ["a", "c.pt"] if taken.startswith("checkpoint") else ["a", "b"]
    if taken == "file":
        (tmp_path / "sweep" / "b").write_text("not a run")
    elif taken == "broken link":
        (tmp_path / "sweep" / "b").symlink_to(tmp_path / "nowhere")
    what = {"file": "a file", "broken link": "a broken symbolic link"}.get(taken, "the checkpoint's path")
    with pytest.raises(ValueError, match=rf"run directory .*sweep/{names[1]} is {what}; expected a directory"):
        fit_many([ShallowNet(2, 2), ShallowNet(2, 3)], X, Y, config, run_names=names)
    assert not (tmp_path / "sweep" / "a").exists()
