"""Training that survives faults: checkpoints, exact resume, SIGKILL, Ctrl-C and divergence."""

import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_shallow import ShallowNet, TrainConfig, fit, planar
from torch_shallow.checkpoint import FORMAT, REQUIRED, CheckpointError, load_checkpoint, save_checkpoint
from torch_shallow.trainer import TrainingDiverged


def seeded_net(seed=0):
    net = ShallowNet(2, 4)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


def same_parameters(a: ShallowNet, b: ShallowNet) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_equals_an_uninterrupted_run(tmp_path, optimizer):
    X, Y = planar()

    def make_optimizer(net):
        return None if optimizer == "sgd" else torch.optim.Adam(net.parameters(), lr=0.02)

    whole = seeded_net()
    expected = fit(whole, X, Y, TrainConfig(max_epochs=300, tol=0), optimizer=make_optimizer(whole))

    first = seeded_net()
    fit(first, X, Y, TrainConfig(max_epochs=130, tol=0, checkpoint=tmp_path / "c.pt"), optimizer=make_optimizer(first))
    resumed = seeded_net(seed=99)  # other parameters: everything must come from the checkpoint
    history = fit(
        resumed,
        X,
        Y,
        TrainConfig(max_epochs=300, tol=0),
        optimizer=make_optimizer(resumed),
        resume_from=tmp_path / "c.pt",
    )
    assert history == expected
    assert same_parameters(resumed, whole)


def test_checkpoint_holds_what_resume_needs(tmp_path):
    X, Y = planar()
    fit(
        seeded_net(),
        X,
        Y,
        TrainConfig(max_epochs=25, checkpoint=tmp_path / "c.pt", checkpoint_every=10),
        hparams={"dataset": "planar"},
    )
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["history"]["epochs"] == 25 and len(state["history"]["costs"]) == 25
    assert state["hparams"] == {"dataset": "planar"} and state["config"]["max_epochs"] == 25
    assert set(state["model"]) == {"W1", "b1", "W2", "b2"}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_damaged_checkpoints_are_rejected_by_name(tmp_path):
    path = tmp_path / "c.pt"
    X, Y = planar()
    fit(seeded_net(), X, Y, TrainConfig(max_epochs=5, checkpoint=path))
    data = path.read_bytes()
    rng = random.Random(0)
    for cut in sorted(rng.sample(range(1, len(data)), 20)) + [0]:
        broken = tmp_path / f"cut{cut}.pt"
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"cut{cut}.pt"):
            load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt is not a"):
        load_checkpoint(tmp_path / "list.pt")


class Exploit:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_a_tampered_checkpoint_runs_no_code(tmp_path, monkeypatch):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "model": Exploit()}, path, pickle_module=pickle)
    monkeypatch.chdir(tmp_path)  # where the exploit's relative "touch pwned" would land
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_resume_into_another_shape_is_a_clear_error(tmp_path):
    X, Y = planar()
    fit(seeded_net(), X, Y, TrainConfig(max_epochs=3, checkpoint=tmp_path / "c.pt"))
    with pytest.raises(CheckpointError, match=r"the model was ShallowNet\(2, 4, .*now ShallowNet\(2, 5, "):
        fit(ShallowNet(2, 5), X, Y, TrainConfig(max_epochs=5), resume_from=tmp_path / "c.pt")


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint whole."""
    path = tmp_path / "c.pt"
    empty = {key: (kind[0] if isinstance(kind, tuple) else kind)() for key, kind in REQUIRED.items()}
    save_checkpoint(path, {**empty, "history": {"epochs": 1}})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {}})
    assert load_checkpoint(path)["history"] == {"epochs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_divergence_stops_with_the_last_good_parameters():
    X, Y = planar()
    net = seeded_net()
    # J(θ(0)) is 0.69 here, so the limit is 100 × 1
    with pytest.raises(
        TrainingDiverged, match=r"diverged at epoch \d+.* max\(that, 1\) = 100, .*smaller learning rate"
    ) as caught:
        fit(net, X, Y, TrainConfig(lr=1e6, max_epochs=100))
    history = caught.value.history
    assert all(torch.isfinite(p).all() for p in net.parameters())
    # the model holds θ(t-1), the parameters of the last cost recorded
    assert net.cost(X, Y).item() == pytest.approx(history.costs[-1], rel=1e-5)


def train_command(tmp_path, *extra):
    return [
        sys.executable,
        "-m",
        "torch_shallow",
        "train",
        "--seed",
        "0",
        "--epochs",
        "30000",
        "--tol",
        "0",
        "--log-dir",
        str(tmp_path / "run"),
        "--checkpoint-every",
        "500",
        *extra,
    ]


def wait_for(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def final_state(path):
    state = load_checkpoint(path)
    return state["history"], state["model"]


def test_killed_run_resumes_to_the_same_result(tmp_path):
    uninterrupted = tmp_path / "whole"
    subprocess.run(
        train_command(uninterrupted, "--epochs", "20000", "--log-every", "100"),
        check=True,
        capture_output=True,
        timeout=300,
    )
    expected_history, expected_model = final_state(uninterrupted / "run" / "checkpoint.pt")

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(killed, "--epochs", "20000", "--log-every", "100"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    checkpoint = killed / "run" / "checkpoint.pt"
    wait_for(checkpoint, process)
    time.sleep(random.Random(1).uniform(0.0, 0.3))
    process.kill()  # SIGKILL: no clean-up of any kind
    process.wait()
    assert load_checkpoint(checkpoint)["history"]["epochs"] < 20000, "the run ended before it was killed"
    subprocess.run(
        [sys.executable, "-m", "torch_shallow", "train", "--resume", str(checkpoint)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    history, model = final_state(checkpoint)
    assert history == expected_history
    assert all(torch.equal(model[k], expected_model[k]) for k in expected_model)

    events = EventAccumulator(str(killed / "run"), size_guidance={"scalars": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("cost/train")]
    assert steps == [*range(0, 20000, 100), 20000]  # no step twice, none out of order; the curve ends at J(θ(20000))
    assert [e.value for e in events.Scalars("cost/train")] == pytest.approx(
        [history["costs"][s] for s in steps[:-1]] + [history["final_cost"]], rel=1e-6
    )


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_epoch_writes_a_checkpoint_and_says_how_to_resume(tmp_path, signum, code):
    """Ctrl-C, and the SIGTERM of docker stop, SLURM and systemd: a whole epoch, a checkpoint, the resume command,
    the shell's exit code for that signal; the resumed run ends where an uninterrupted one does."""
    process = subprocess.Popen(
        train_command(tmp_path, "--log-every", "100", "--epochs", "3000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    wait_for(checkpoint, process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert f"resume with: torch-shallow train --resume {checkpoint}" in err
    epochs = load_checkpoint(checkpoint)["history"]["epochs"]
    assert f"interrupted by {signum.name} after epoch {epochs};" in err  # the checkpoint is of that very epoch
    assert 500 < epochs < 3000
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0})
    events.Reload()
    # the last logged epoch: the signal is seen after the epoch's other callbacks, TensorBoard's included, so a run
    # stopped at a multiple of 100 (a signal that came while its checkpoint was written) has logged that epoch too
    assert events.Scalars("cost/train")[-1].step == epochs // 100 * 100

    subprocess.run(
        [sys.executable, "-m", "torch_shallow", "train", "--resume", str(checkpoint)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    whole = tmp_path / "whole"
    subprocess.run(
        train_command(whole, "--log-every", "100", "--epochs", "3000"), check=True, capture_output=True, timeout=300
    )
    assert final_state(checkpoint)[0] == final_state(whole / "run" / "checkpoint.pt")[0]
