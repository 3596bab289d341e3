"""The experiments reproduce what they claim, run short where the full run takes long."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from torch_shallow import planar

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def course_planar():
    """``load_planar_dataset`` of the deeplearning.ai course, as published, returning (X (2, m), Y (1, m))."""
    np.random.seed(1)
    m = 400
    N = int(m / 2)
    D = 2
    X = np.zeros((m, D))
    Y = np.zeros((m, 1), dtype="uint8")
    a = 4
    for j in range(2):
        ix = range(N * j, N * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + np.random.randn(N) * 0.2
        r = a * np.sin(4 * t) + np.random.randn(N) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    return X.T, Y.T


def test_planar_matches_the_course_recipe():
    X, Y = planar(dtype=torch.float64)
    X_course, Y_course = course_planar()
    for i in (0, 1, 57, 199, 200, 311, 399):
        assert X[i].tolist() == pytest.approx(X_course[:, i].tolist(), rel=1e-12)
        assert Y[i, 0].item() == Y_course[0, i]
    assert X.abs().max().item() == pytest.approx(np.abs(X_course).max(), rel=1e-12)


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXPERIMENTS / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_hidden_sizes_short(tmp_path):
    """One TensorBoard run per (activation, d1, seed), each holding its own settings, and a table row per d1."""
    out = run("hidden_sizes.py", "--epochs", "200", "--log-root", str(tmp_path))
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == sorted(
        f"{a}-d1_{d1}-s{seed}"
        for a in ("tanh", "sigmoid")
        for d1 in (1, 2, 3, 4, 5, 20, 50)
        for seed in (2, 3, 4, 5, 6)
    )
    for name in runs:
        events = EventAccumulator(str(tmp_path / name))
        events.Reload()
        start = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        activation, hidden = hparams["activation"].string_value, int(hparams["hidden_features"].number_value)
        assert f"{activation}-d1_{hidden}-s{int(hparams['seed'].number_value)}" == name
        assert hparams["max_epochs"].number_value == 200
    row = r"^\| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ ± [\d.]+ \| [\d.]+ \| [\d.]+ ± [\d.]+ \|$"
    assert len(re.findall(row, out, re.M)) == 7


def test_breast_cancer_validation_accuracy(tmp_path):
    out = run("breast_cancer.py", "--log-dir", str(tmp_path / "run"))
    accuracy = float(re.search(r"\| torch_shallow .*\| ([\d.]+)% \|", out).group(1))
    assert accuracy >= 95.0
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert {"cost/val", "accuracy/val"} <= set(events.Tags()["scalars"])
