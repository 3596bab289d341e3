"""Checkpoints as a crashed run finds them: written on schedule, and on disk before they replace the old one."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torch_shallow import ShallowNet, TrainConfig, TrainingInterrupted, fit, planar
from torch_shallow.checkpoint import load_checkpoint, save_checkpoint


def seeded_net(seed=0):
    net = ShallowNet(2, 4)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


class CrashingSGD(torch.optim.SGD):
    """Plain SGD whose step raises at its ``crash_at``-th call: a run that crashes in the middle of an epoch."""

    def __init__(self, params, lr, crash_at):
        super().__init__(params, lr=lr)
        self.calls, self.crash_at = 0, crash_at

    def step(self, closure=None):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("crashed in step")
        return super().step(closure)


def test_a_crash_leaves_the_last_scheduled_checkpoint(tmp_path):
    """Checkpoints every 10 epochs and a crash in the 26th step: the file on disk holds the first 20 epochs exactly,
    as an uninterrupted run of 20 epochs has them."""
    X, Y = planar()
    net = seeded_net()
    config = TrainConfig(max_epochs=100, checkpoint=tmp_path / "c.pt", checkpoint_every=10, tol=0)
    with pytest.raises(RuntimeError, match="crashed in step"):
        fit(net, X, Y, config, optimizer=CrashingSGD(net.parameters(), lr=config.lr, crash_at=26))
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["history"]["epochs"] == 20 and len(state["history"]["costs"]) == 20

    twenty = seeded_net()
    expected = fit(twenty, X, Y, TrainConfig(max_epochs=20, tol=0))
    assert state["history"]["costs"] == expected.costs
    for name, p in twenty.state_dict().items():
        assert torch.equal(state["model"][name], p), name  # θ(20), the parameters after the 20th step


class CtrlCInStep(torch.optim.SGD):
    """Plain SGD that receives a Ctrl-C (SIGINT) during its ``at``-th step."""

    def __init__(self, params, lr, at):
        super().__init__(params, lr=lr)
        self.calls, self.at = 0, at

    def step(self, closure=None):
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return super().step(closure)


def test_ctrl_c_stops_after_a_whole_epoch_with_a_checkpoint_of_it(tmp_path):
    """A Ctrl-C during the 26th step of 100 ends training within an epoch, never in the middle of one: fit raises
    TrainingInterrupted, the checkpoint holds the epochs the history holds, off the every-10 schedule, and the
    caller's SIGINT handler is back."""
    X, Y = planar()
    net = seeded_net()
    config = TrainConfig(max_epochs=100, checkpoint=tmp_path / "c.pt", checkpoint_every=10, tol=0)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as caught:
        fit(net, X, Y, config, optimizer=CtrlCInStep(net.parameters(), lr=config.lr, at=26))
    assert signal.getsignal(signal.SIGINT) is handler
    history = caught.value.history
    assert history.epochs in (26, 27) and len(history.costs) == history.epochs  # the epoch in progress, or the next
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["history"]["epochs"] == history.epochs and state["history"]["costs"] == history.costs


def test_save_makes_the_data_durable_before_the_rename(tmp_path, monkeypatch):
    """The temporary file is written in full and fsynced before it is renamed over the checkpoint, and the
    directory is fsynced after the rename: after a power cut the name points at complete data."""
    path = tmp_path / "c.pt"
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        calls.append(("fsync", target, os.fstat(fd).st_size))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        calls.append(("replace", Path(os.path.realpath(src)), Path(os.path.realpath(dst))))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    state = {
        "model": {"W1": torch.randn(64, 64)},
        "optimizer": {},
        "history": {"epochs": 3},
        "rng": {},
        "config": {},
        "hparams": {},
    }
    save_checkpoint(path, state)
    monkeypatch.undo()

    path, directory = Path(os.path.realpath(path)), Path(os.path.realpath(tmp_path))
    renames = [i for i, call in enumerate(calls) if call[0] == "replace" and call[2] == path]
    assert len(renames) == 1, calls
    rename = renames[0]
    temporary = calls[rename][1]
    assert temporary != path and temporary.parent == directory  # a rename within the directory: atomic
    size = path.stat().st_size
    assert ("fsync", temporary, size) in calls[:rename], calls  # all of the file's bytes, flushed, then fsynced
    assert any(call[:2] == ("fsync", directory) for call in calls[rename + 1 :]), calls
    assert torch.load(path, weights_only=True)["history"] == {"epochs": 3}


def test_a_full_disk_while_saving_is_an_os_error_and_keeps_the_old_checkpoint(tmp_path):
    """torch.save turns a failed write into a RuntimeError of its zip writer; the trainer's handling of a full disk
    (stop, say which checkpoint is intact) catches OSError, so save_checkpoint gives one. RLIMIT_FSIZE makes the
    write fail as a full disk does."""
    script = f"""
import resource, signal, sys, torch
from torch_shallow.checkpoint import save_checkpoint
path = {str(tmp_path / "c.pt")!r}
save_checkpoint(path, {{"x": torch.zeros(10)}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    save_checkpoint(path, {{"x": torch.ones(100_000)}})
except OSError as error:
    print("OSError", error)
print(torch.load(path, weights_only=True)["x"].tolist())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OSError writing checkpoint") and "the disk may be full" in out.stdout
    assert out.stdout.splitlines()[-1] == str([0.0] * 10)
