"""What lands in TensorBoard: images, histograms, layout, graph, and the real server's view of a run."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from torch_shallow import ShallowNet, TrainConfig, fit, planar
from torch_shallow.board import DARK, KEY_ROWS, LIGHT, decision_boundary_image


def read(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    return events


def test_dashboard_tags(tmp_path):
    X, Y = planar()
    net = ShallowNet(2, 4)
    val = (X[::4].clone(), Y[::4].clone())
    history = fit(net, X, Y, TrainConfig(max_epochs=50, log_dir=tmp_path, log_every=5, dashboard_every=20), val=val)
    events = read(tmp_path)
    tags = events.Tags()
    assert [e.step for e in events.Images("decision_boundary")] == [0, 20, 40, 50]  # every 20 epochs and the end
    for name in ("W1", "b1", "W2", "b2"):
        assert [e.step for e in events.Histograms(f"parameters/{name}")] == [0, 20, 40, 50]
        assert [e.step for e in events.Histograms(f"gradients/{name}")] == [0, 20, 40, 50]
    assert {"cost/val", "accuracy/val"} <= set(tags["scalars"])
    assert events.Scalars("accuracy/val")[-1].step == 50  # the validation curve ends with the trained model's value
    assert events.Scalars("accuracy/val")[-1].value == pytest.approx(history.val_accuracy)
    layout = layout_pb2.Layout.FromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = [list(chart.multiline.tag) for category in layout.category for chart in category.chart]
    assert ["cost/train", "cost/val"] in charts and ["accuracy/train", "accuracy/val"] in charts
    assert tags["graph"] and any(node.op == "prim::PythonOp" for node in events.Graph().node)


def test_decision_boundary_image_shows_the_field_and_the_points():
    net = ShallowNet(2, 1, dtype=torch.float64)
    with torch.no_grad():  # A1 = σ(100 x1), Z2 = 40 (A1 - 1/2): class 1 exactly where x1 > 0
        net.W1.copy_(torch.tensor([[100.0, 0.0]])), net.b1.zero_()
        net.W2.fill_(40.0), net.b2.fill_(-20.0)
    X = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    image = decision_boundary_image(net, X, torch.tensor([0.0, 1.0]), size=64)
    assert image.shape == (3, 64 + KEY_ROWS, 64) and 0 <= image.min() and image.max() <= 1  # the key beneath
    torch.testing.assert_close(image[:, 32, 10], LIGHT[0], atol=1e-3, rtol=0)  # left half: class 0's colour
    torch.testing.assert_close(image[:, 32, 53], LIGHT[1], atol=1e-3, rtol=0)  # right half: class 1's
    # (-1, -1) lies at 1/12 of the width from the left and 1/12 of the height from the bottom (10% margins)
    torch.testing.assert_close(image[:, 58, 5], DARK[0])
    torch.testing.assert_close(image[:, 5, 58], DARK[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_tensorboard_server_serves_the_history(tmp_path):
    X, Y = planar()
    history = fit(ShallowNet(2, 4), X, Y, TrainConfig(max_epochs=40, log_dir=tmp_path / "run", log_every=3))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=run&tag=cost/train"
    try:
        deadline, points = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            assert server.poll() is None, "tensorboard exited"
            try:
                points = get_json(url)
                if len(points) == len(range(0, 40, 3)):
                    break
            except OSError:  # not listening yet, or the run not loaded yet
                pass
            time.sleep(0.5)
        assert points is not None, "the server never answered"
        assert [step for _, step, _ in points] == [*range(0, 40, 3), 40]
        assert [value for _, _, value in points] == pytest.approx(
            [history.costs[t] for t in range(0, 40, 3)] + [history.final_cost], rel=1e-6
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
