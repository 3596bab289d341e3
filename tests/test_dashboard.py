"""The dashboard as TensorBoard reads it back from the event files: histogram groups that sort after the curves,
the HParams plugin's view of a log directory holding runs with and without validation data, the graph's Function
node, and the colour key of the decision-boundary image."""

import errno
import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import scalar

from torch_shallow import ShallowNet, TrainConfig, board, fit, fit_many, open_npy, planar
from torch_shallow.board import (
    DARK,
    LIGHT,
    RunWriter,
    SynchronousFileWriter,
    decision_boundary_image,
    write_graph,
)


def read(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"histograms": 0, "images": 0, "scalars": 0})
    events.Reload()
    return events


def test_histograms_are_grouped_and_sort_after_the_curves(tmp_path):
    X, Y = planar()
    fit(ShallowNet(2, 4), X, Y, TrainConfig(max_epochs=20, log_dir=tmp_path, dashboard_every=10))
    tags = read(tmp_path).Tags()
    names = ("W1", "b1", "W2", "b2")
    assert sorted(tags["histograms"]) == sorted([f"parameters/{n}" for n in names] + [f"gradients/{n}" for n in names])
    # TensorBoard's dashboards sort their sections by the tag's first component, capitals before lower case
    sections = sorted({tag.split("/")[0] for kind in ("scalars", "histograms", "images") for tag in tags[kind]})
    assert sections[:2] == ["accuracy", "cost"]


def hparams_plugin_view(log_dir: Path, runs: list[str]) -> tuple[api_pb2.Experiment, dict[str, dict[str, float]]]:
    """What TensorBoard's HParams plugin serves for ``log_dir`` when it reads ``runs`` in this order: the
    experiment (the table's columns) and each listed run's metric values."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    for run in runs:
        multiplexer.AddRun(str(log_dir / run), run)
    multiplexer.Reload()
    tb_context = base_plugin.TBContext(
        logdir=str(log_dir),
        multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(log_dir)),
    )
    plugin, request = backend_context.Context(tb_context), context.RequestContext()
    experiment = get_experiment.Handler(request, plugin, "", api_pb2.GetExperimentRequest()).run()
    every_status = api_pb2.Status.values()  # as the dashboard asks, unfiltered
    groups = list_session_groups.Handler(
        request, plugin, "", api_pb2.ListSessionGroupsRequest(allowed_statuses=every_status, slice_size=10)
    ).run()
    metrics = {group.name: {m.name.tag: m.value for m in group.metric_values} for group in groups.session_groups}
    return experiment, metrics


@pytest.mark.parametrize("first", ["with_val", "without_val"])
def test_the_hparams_view_is_complete_whichever_run_is_read_first(tmp_path, first):
    X, Y = planar()
    with_val = fit(
        ShallowNet(2, 4),
        X,
        Y,
        TrainConfig(max_epochs=30, log_dir=tmp_path / "with_val"),
        val=(X[::4], Y[::4]),
        hparams={"dataset": "planar", "validation": "every 4th sample"},
    )
    without_val = fit(
        ShallowNet(2, 3),
        X,
        Y,
        TrainConfig(max_epochs=20, log_dir=tmp_path / "without_val"),
        hparams={"dataset": "planar", "seed": 1},
    )
    runs = sorted(["with_val", "without_val"], key=lambda run: run != first)
    experiment, metrics = hparams_plugin_view(tmp_path, runs)
    columns = {info.name for info in experiment.hparam_infos}
    assert {"validation", "seed", "dataset", "hidden_features", "lr"} <= columns  # each run's own ones too
    tags = [info.name.tag for info in experiment.metric_infos]
    assert tags[:5] == ["accuracy/train", "accuracy/val", "cost/train", "cost/val", "grad_norm"]  # shown at first
    assert not any(tag.startswith("final/") for tag in tags)  # no one-point charts of what the curves end with
    assert set(metrics) == {"with_val", "without_val"}
    assert metrics["with_val"]["accuracy/val"] == pytest.approx(with_val.val_accuracy)
    assert metrics["with_val"]["cost/val"] == pytest.approx(with_val.val_cost)
    assert metrics["with_val"]["accuracy/train"] == pytest.approx(with_val.train_accuracy)
    assert metrics["with_val"]["cost/train"] == pytest.approx(with_val.final_cost)
    assert metrics["without_val"]["accuracy/train"] == pytest.approx(without_val.train_accuracy)
    assert "accuracy/val" not in metrics["without_val"]


def graph_nodes(log_dir: Path) -> dict[str, object]:
    return {node.name: node for node in read(log_dir).Graph().node}


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_graph_names_the_function_and_is_traced_with_a_few_rows(tmp_path, on_disk):
    X, Y = planar()
    if on_disk:
        np.save(tmp_path / "X.npy", X.numpy()), np.save(tmp_path / "Y.npy", Y.numpy())
        X, _ = open_npy(tmp_path)
    with SummaryWriter(tmp_path / "run") as writer:
        write_graph(writer, ShallowNet(2, 4), X)
    nodes = graph_nodes(tmp_path / "run")
    (function,) = [node for node in nodes.values() if node.op == "prim::PythonOp"]
    assert function.name.split("/")[-1] == "ShallowNetFunction"
    assert not [name for name in nodes if name.split("/")[-1].isdigit()]  # no node is a bare number
    assert {name.split("/")[-1] for name in nodes if function.name in nodes[name].input} == {"Z2", "A1"}
    (X_node,) = [node for node in nodes.values() if node.op == "IO Node" and not node.input]
    assert X_node.name == "input/X"
    assert [d.size for d in X_node.attr["_output_shapes"].list.shape[0].dim] == [8, 2]


def test_the_decision_boundary_image_has_a_colour_key():
    X, Y = planar()
    image = decision_boundary_image(ShallowNet(2, 4), X, Y, size=256).permute(1, 2, 0)  # (rows, columns, 3)
    assert image.shape[1] == 256 and image.shape[0] > 256
    key = image[256:]  # beneath the size × size field

    def where(colour: torch.Tensor) -> torch.Tensor:
        return (key - colour).abs().amax(-1) < 1e-6  # (rows, columns)

    def columns(colour: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(where(colour).any(0))[:, 0]

    # a square of each label's point colour, in the order of their names: y = 0, then y = 1
    assert where(DARK[0]).sum() >= 16 and where(DARK[1]).sum() >= 16
    assert columns(DARK[0]).max() < columns(DARK[1]).min()
    # a bar of the field's colours (1 - p) LIGHT[0] + p LIGHT[1]: p = 0 on the left, 1 on the right, many p between
    assert where(LIGHT[0]).any() and where(LIGHT[1]).any() and columns(LIGHT[0]).max() < columns(LIGHT[1]).min()
    p = ((key - LIGHT[0]) / (LIGHT[1] - LIGHT[0])).mean(-1, keepdim=True)
    on_the_bar = (
        ((key - ((1 - p) * LIGHT[0] + p * LIGHT[1])).abs().amax(-1) < 1e-5) & (p[..., 0] > 0.01) & (p[..., 0] < 0.99)
    )
    assert len(torch.unique((p[..., 0][on_the_bar] * 100).round())) >= 90
    grey = (key.amax(-1) - key.amin(-1) < 0.02) & (key.amax(-1) < 0.5)  # dark grey: the labels' text
    assert grey.sum() >= 50


def test_a_run_writer_hands_every_pending_step_over_on_flush_and_close(tmp_path):
    """The scalars a RunWriter keeps back reach the event file, in step order, at each flush and at close (the
    trainer's checkpoints, stops and end; tests/test_faults.py checks a stopped run's last logged epoch)."""
    writer = RunWriter(str(tmp_path))
    steps = 2 * RunWriter.PENDING_STEPS + 7
    logged = []
    for step in range(steps):
        before = time.time()
        writer.add_step_scalars({"a": float(step), "b": -float(step)}, step)
        logged.append((before, time.time()))
        time.sleep(0.001)
    writer.flush()
    events = read(tmp_path).Scalars("a")
    assert [(e.step, e.value) for e in events] == [(s, float(s)) for s in range(steps)]
    # each step's wall time is when it was logged, not when it was handed over (a float64 in the event file)
    assert all(before <= e.wall_time <= after for e, (before, after) in zip(events, logged))
    writer.add_step_scalars({"a": 1e3}, steps)
    writer.close()
    writer.close()  # a second close is harmless, as for a SummaryWriter
    events = read(tmp_path)
    assert [e.step for e in events.Scalars("b")] == list(range(steps))
    assert [(e.step, e.value) for e in events.Scalars("a")][-2:] == [(steps - 1, steps - 1), (steps, 1e3)]


def test_a_slow_run_hands_its_scalars_over_within_seconds(tmp_path, monkeypatch):
    """On large data 100 logged epochs take minutes; the pending scalars go out once the oldest is PENDING_SECONDS
    old, for a dashboard watching the run."""
    monkeypatch.setattr(RunWriter, "PENDING_SECONDS", 0.05)
    writer = RunWriter(str(tmp_path))
    writer.add_step_scalars({"a": 0.0}, 0)
    time.sleep(0.1)
    writer.add_step_scalars({"a": 1.0}, 1)
    writer.file_writer.flush()  # TensorBoard's own file flush only, not the RunWriter's hand-over
    assert [e.step for e in read(tmp_path).Scalars("a")] == [0, 1]
    writer.add_step_scalars({"a": 2.0}, 2)
    writer.file_writer.flush()
    assert [e.step for e in read(tmp_path).Scalars("a")] == [0, 1]  # the step before was just handed over
    writer.close()


def test_a_stacks_event_file_reaches_the_disk_every_few_seconds(tmp_path):
    """A stack's writers write in the training thread into the file's buffer; a dashboard watching a slow run still
    sees its steps, for the buffer goes to disk at the first record ``flush_secs`` after the last flush."""
    writer = SynchronousFileWriter(str(tmp_path), flush_secs=0.05)
    writer.add_summary(scalar("a", 0.0), 0)
    time.sleep(0.1)
    writer.add_summary(scalar("a", 1.0), 1)  # the first record after flush_secs: both go to disk
    assert [e.step for e in read(tmp_path).Scalars("a")] == [0, 1]
    writer.add_summary(scalar("a", 2.0), 2)
    assert [e.step for e in read(tmp_path).Scalars("a")] == [0, 1]  # the step before was just flushed
    writer.close()
    assert [e.step for e in read(tmp_path).Scalars("a")] == [0, 1, 2]


def test_a_stacks_files_are_made_while_it_trains_and_lose_no_step(tmp_path, monkeypatch):
    """The writers of a stack's models hold their records until an opener thread has made their files; a slow file
    system delays nothing and loses nothing."""
    made = board._new_file

    def slow(path):
        time.sleep(0.02)
        return made(path)

    monkeypatch.setattr(board, "_new_file", slow)
    X, Y = planar()
    nets = [ShallowNet(2, d1) for d1 in (1, 2, 3, 4, 5)]
    histories = fit_many(nets, X, Y, TrainConfig(max_epochs=30, tol=0, log_dir=tmp_path), run_names=list("abcde"))
    for name, history in zip("abcde", histories):
        events = read(tmp_path / name)
        assert [e.step for e in events.Scalars("cost/train")] == [*range(30), 30]
        assert [e.value for e in events.Scalars("cost/train")] == pytest.approx([*history.costs, history.final_cost])
        assert "_hparams_/session_start_info" in events.summary_metadata


def test_a_stack_whose_file_cannot_be_made_stops_with_the_error(tmp_path, monkeypatch):
    made = board._new_file

    def full(path):
        if "/c/" in path:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return made(path)

    monkeypatch.setattr(board, "_new_file", full)
    X, Y = planar()
    config = TrainConfig(max_epochs=100_000, tol=0, log_dir=tmp_path, log_every=10)
    with pytest.raises(
        OSError, match=r"training stopped at epoch \d+: \[Errno 28\] No space left on device: .*/c/"
    ) as e:
        fit_many([ShallowNet(2, 2) for _ in range(4)], X, Y, config, run_names=list("abcd"))
    # at the first record after the failure, not at the next flush (10 s) or checkpoint
    assert int(str(e.value).split()[4].rstrip(":")) < 1000


def test_the_logged_decision_boundary_is_the_image_drawn(tmp_path):
    X, Y = planar()
    net = ShallowNet(2, 4)
    fit(net, X, Y, TrainConfig(max_epochs=20, log_dir=tmp_path))
    (*_, last) = read(tmp_path).Images("decision_boundary")
    assert last.step == 20
    logged = torch.from_numpy(np.array(Image.open(io.BytesIO(last.encoded_image_string))))  # (H, W, 3) bytes
    drawn = decision_boundary_image(net, X, Y)  # (3, H, W) in [0, 1]
    assert (last.height, last.width) == drawn.shape[1:]
    assert torch.equal(logged, (drawn.permute(1, 2, 0) * 255).to(torch.uint8))  # as add_image scales it


@pytest.mark.parametrize("synchronous", [False, True])
def test_a_run_writer_writes_each_steps_own_values(tmp_path, synchronous):
    """One model's writer hands its steps to TensorBoard's thread; a stack's refills one event per set of tags."""
    writer = RunWriter(str(tmp_path), synchronous=synchronous)
    for step in range(5):
        writer.add_step_scalars({"a": float(step), "b": -float(step), "c": float(step**2)}, step)
        if step == 2:
            writer.add_step_scalars({"c": 0.5, "a": 7.0}, 12)  # other tags, in another order
            writer.add_step_scalars({"a": 8.0, "c": 0.25}, 13)
    writer.close()
    events = read(tmp_path)
    a, c = [(0, 0), (1, 1), (2, 2), (12, 7), (13, 8), (3, 3), (4, 4)], [(0, 0), (1, 1), (2, 4), (12, 0.5), (13, 0.25)]
    assert [(e.step, e.value) for e in events.Scalars("a")] == a
    assert [(e.step, e.value) for e in events.Scalars("b")] == [(s, -s) for s in range(5)]
    assert [(e.step, e.value) for e in events.Scalars("c")] == [*c, (3, 9), (4, 16)]


def test_a_runs_hparams_are_the_sessions_torch_records(tmp_path, monkeypatch):
    """The session start and end summaries equal those of torch's ``hparams`` (whose experiment is not written)."""
    from torch.utils.tensorboard.summary import hparams

    values = {"lr": 1.2, "hidden_features": 4, "activation": "tanh", "restore_best": True, "note": None}
    written = []
    writer = RunWriter(str(tmp_path))
    monkeypatch.setattr(writer, "add_summary", lambda summary, step=None: written.append(summary))
    board.write_hparams(writer, values)
    assert written == list(hparams({**values, "note": "None"}, {})[1:])
    writer.close()


class FullDisk:
    """A file on a full disk: each write and flush fails as the operating system's does, naming no file."""

    closed = False

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    flush = close = lambda self: self.write(b"")


def test_a_stacks_writer_names_its_file_when_the_disk_is_full(tmp_path):
    writer = SynchronousFileWriter(str(tmp_path))
    opened, writer._file = writer._file, FullDisk()
    named = rf"\[Errno 28\] No space left on device: '{re.escape(writer.path)}'"
    with pytest.raises(OSError, match=named):
        writer.add_summary(scalar("a", 1.0), 1)
    for method in (writer.flush, writer.close):
        with pytest.raises(OSError, match=named):
            method()
    opened.close()
