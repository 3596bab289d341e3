"""Runs that lose nothing: the resume rule, run directories and locks, absolute paths, the data fingerprint,
output paths checked before the first epoch, signals under torchrun, and clear errors for bad options."""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_shallow import RunInUse, ShallowNet, TrainConfig, fit, load_csv, planar
from torch_shallow.checkpoint import CheckpointError, load_checkpoint
from torch_shallow.cli import main
from torch_shallow.fingerprint import Fingerprint
from torch_shallow.run import new_run_dir


def seeded_net(seed=0, **kwargs):
    net = ShallowNet(2, 4, **kwargs)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


def cli(*args, cwd=None, timeout=300, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "torch_shallow", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        **kwargs,
    )


def history_of(checkpoint):
    return load_checkpoint(checkpoint)["history"]


def write_csv(path, n=40, edit=None):
    """A small 2-feature CSV; ``edit`` = (row, column, value) changes one cell."""
    g = np.random.default_rng(0)
    X, y = g.normal(size=(n, 2)).round(3), (g.random(n) > 0.5).astype(int)
    rows = [[f"{X[i, 0]}", f"{X[i, 1]}", f"{y[i]}"] for i in range(n)]
    if edit is not None:
        rows[edit[0]][edit[1]] = edit[2]
    path.write_text("u,v,label\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


# 1. The resume rule ---------------------------------------------------------------------------------------------


def test_resume_applies_epochs_and_equals_an_uninterrupted_run(tmp_path, capsys):
    assert main(["train", "--epochs", "400", "--tol", "0", "--log-dir", str(tmp_path / "whole")]) == 0
    assert main(["train", "--epochs", "150", "--tol", "0", "--log-dir", str(tmp_path / "run")]) == 0
    assert main(["train", "--resume", str(tmp_path / "run" / "checkpoint.pt"), "--epochs", "400"]) == 0
    assert "planar: 400 epochs (max_epochs)" in capsys.readouterr().out
    assert history_of(tmp_path / "run" / "checkpoint.pt") == history_of(tmp_path / "whole" / "checkpoint.pt")


@pytest.mark.parametrize(
    "option, value, shown",
    [
        ("--lr", "0.01", "--lr 0.01 (the run's: 1.2)"),
        ("--hidden", "8", "--hidden 8 (the run's: 4)"),
        ("--activation", "tanh", "--activation tanh (the run's: sigmoid)"),
        ("--seed", "3", "--seed 3 (the run's: 0)"),
        ("--dtype", "float64", "--dtype float64 (the run's: float32)"),
    ],
)
def test_resume_refuses_what_would_change_the_run(tmp_path, capsys, option, value, shown):
    assert main(["train", "--epochs", "20", "--log-dir", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    before = checkpoint.read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoint), "--epochs", "40", option, value]) == 2
    err = capsys.readouterr().err
    assert shown in err and f"--init-from {checkpoint}" in err
    assert checkpoint.read_bytes() == before  # nothing was trained


def test_resume_accepts_the_run_own_values_given_again(tmp_path, capsys):
    assert main(["train", "--epochs", "20", "--lr", "0.5", "--log-dir", str(tmp_path / "run")]) == 0
    assert (
        main(
            [
                "train",
                "--resume",
                str(tmp_path / "run" / "checkpoint.pt"),
                "--lr",
                "0.5",
                "--hidden",
                "4",
                "--epochs",
                "30",
            ]
        )
        == 0
    )
    assert "planar: 30 epochs" in capsys.readouterr().out


@pytest.mark.parametrize("option", [["--log-dir", "elsewhere"], ["--checkpoint", "c.pt"], ["--no-log"]])
def test_resume_refuses_options_about_where_a_new_run_writes(tmp_path, capsys, option):
    assert main(["train", "--epochs", "5", "--log-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run" / "checkpoint.pt"), *option]) == 2
    assert f"{option[0]} with --resume" in capsys.readouterr().err


def test_resume_and_init_from_exclude_each_other(capsys):
    assert main(["train", "--resume", "a.pt", "--init-from", "a.pt"]) == 2
    assert "--resume with --init-from" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, named",
    [
        (["--dataset", "moons", "--csv", "{csv}"], "--dataset with --csv"),
        (["--dataset", "moons", "--data", "{dir}"], "--dataset with --data"),
        (["--label", "label", "--data", "{dir}"], "--label with --data"),
        (["--label", "label"], "--label without --csv"),
        (["--no-log", "--log-dir", "{dir}"], "--no-log with --log-dir"),
        (["--no-log", "--log-every", "5"], "--no-log with --log-every and no --val-fraction"),
        (["--no-log", "--checkpoint-every", "5"], "--checkpoint-every with --no-log"),
        (["--init-from", "{dir}/c.pt", "--seed", "1"], "--init-from with --seed"),
    ],
)
def test_contradicting_options_are_refused(tmp_path, capsys, options, named):
    csv = write_csv(tmp_path / "d.csv")
    options = [o.format(csv=csv, dir=tmp_path) for o in options]
    assert main(["train", "--epochs", "5", *options]) == 2
    assert named in capsys.readouterr().err


def test_log_every_without_a_log_sets_how_often_early_stopping_looks(capsys):
    """--log-every is also the period of the validation cost that --patience counts, logged or not."""
    common = [
        "train",
        "--dataset",
        "moons",
        "--hidden",
        "40",
        "--activation",
        "tanh",
        "--val-fraction",
        "0.2",
        "--patience",
        "5",
        "--epochs",
        "3000",
        "--no-log",
    ]
    for every in (1, 2):
        assert main([*common, "--log-every", str(every)]) == 0
        epochs, best = map(
            int, re.search(r"(\d+) epochs \(early_stopping, best epoch (\d+)\)", capsys.readouterr().out).groups()
        )
        assert best % every == 0 and epochs == best + 5 * every  # 5 evaluations every k epochs after the best


def test_init_from_starts_a_new_run_from_the_weights(tmp_path, capsys):
    assert main(["train", "--epochs", "200", "--hidden", "6", "--log-dir", str(tmp_path / "first")]) == 0
    first = load_checkpoint(tmp_path / "first" / "checkpoint.pt")
    assert (
        main(
            [
                "train",
                "--init-from",
                str(tmp_path / "first" / "checkpoint.pt"),
                "--lr",
                "0.3",
                "--epochs",
                "50",
                "--log-dir",
                str(tmp_path / "second"),
            ]
        )
        == 0
    )
    second = load_checkpoint(tmp_path / "second" / "checkpoint.pt")
    assert second["architecture"]["hidden_features"] == 6  # the checkpoint's model, without --hidden
    assert second["config"]["lr"] == 0.3 and second["history"]["epochs"] == 50
    net = ShallowNet(2, 6)
    net.load_state_dict(first["model"])
    X, Y = planar()
    assert second["history"]["costs"][0] == pytest.approx(net.cost(X, Y).item(), rel=1e-6)  # J at those weights


def test_a_finished_run_takes_no_more_steps(tmp_path, capsys):
    """Resuming a converged run used to take more steps; a run at its max_epochs says there is nothing to do."""
    assert main(["train", "--tol", "1e-4", "--log-dir", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    before = load_checkpoint(checkpoint)
    assert before["history"]["stop_reason"] == "converged"
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "had already ended (converged)" in out
    after = load_checkpoint(checkpoint)
    assert after["history"] == before["history"]
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    assert main(["train", "--resume", str(checkpoint), "--tol", "1e-6"]) == 0  # a smaller tol goes on
    assert history_of(checkpoint)["epochs"] > before["history"]["epochs"]
    assert main(["train", "--resume", str(checkpoint), "--epochs", "3"]) == 2
    assert "--epochs 3: the run has already taken" in capsys.readouterr().err


def test_api_resume_of_a_converged_run_takes_no_step(tmp_path):
    X, Y = planar()
    net = seeded_net()
    done = fit(net, X, Y, TrainConfig(tol=1e-4, checkpoint=tmp_path / "c.pt"))
    assert done.converged
    again = seeded_net(seed=5)
    history = fit(again, X, Y, TrainConfig(tol=1e-4), resume_from=tmp_path / "c.pt")
    assert history.epochs == done.epochs and history.converged
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), again.parameters()))


def test_api_resume_refuses_another_optimizer_or_learning_rate(tmp_path):
    X, Y = planar()
    fit(seeded_net(), X, Y, TrainConfig(max_epochs=5, checkpoint=tmp_path / "c.pt"))
    net = seeded_net()
    with pytest.raises(CheckpointError, match="the optimizer was SGD, now Adam"):
        fit(
            net,
            X,
            Y,
            TrainConfig(max_epochs=9),
            optimizer=torch.optim.Adam(net.parameters()),
            resume_from=tmp_path / "c.pt",
        )
    with pytest.raises(CheckpointError, match="lr was 1.2, now 0.01"):
        fit(seeded_net(), X, Y, TrainConfig(lr=0.01, max_epochs=9), resume_from=tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="activation='sigmoid'.*now.*activation='tanh'"):
        fit(ShallowNet(2, 4, activation="tanh"), X, Y, TrainConfig(max_epochs=9), resume_from=tmp_path / "c.pt")


# 2. Runs that collide -------------------------------------------------------------------------------------------


def test_run_directories_claimed_at_once_are_distinct(tmp_path):
    claimed, barrier = [], threading.Barrier(8)

    def claim():
        barrier.wait()
        claimed.append(new_run_dir(tmp_path / "runs" / "same-name"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in claimed) == sorted(["same-name"] + [f"same-name-{k}" for k in range(2, 9)])


def test_two_runs_given_one_log_dir_write_apart(tmp_path):
    log_dir = tmp_path / "run"
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch_shallow",
                "train",
                "--epochs",
                "300",
                "--seed",
                str(seed),
                "--log-dir",
                str(log_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum(f"{log_dir} is taken: this run writes to {log_dir}-2" in err for _, err in outputs) == 1
    seeds = {load_checkpoint(d / "checkpoint.pt")["hparams"]["seed"] for d in (log_dir, tmp_path / "run-2")}
    assert seeds == {0, 1}
    for directory in (log_dir, tmp_path / "run-2"):
        assert len(list(directory.glob("events.out.tfevents.*"))) == 1
        events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
        events.Reload()
        assert [e.step for e in events.Scalars("cost/train")] == [*range(300), 300]  # no curve mixed into another


def test_a_second_writer_fails_fast_naming_the_first(tmp_path):
    assert main(["train", "--epochs", "10", "--log-dir", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch_shallow",
            "train",
            "--resume",
            str(checkpoint),
            "--epochs",
            "1000000",
            "--checkpoint-every",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while history_of(checkpoint)["epochs"] == 10:  # the first resume is training
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = cli("train", "--resume", checkpoint, "--epochs", "1000000")
        assert second.returncode == 1
        assert f"{tmp_path / 'run'} is in use by another training run (process {first.pid})" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 143  # the first one was not disturbed, and stops cleanly
    assert not (tmp_path / "run" / ".lock").exists()  # and leaves no lock behind


def test_the_api_refuses_to_mix_runs_or_overwrite_a_checkpoint(tmp_path):
    X, Y = planar()
    fit(seeded_net(), X, Y, TrainConfig(max_epochs=3, log_dir=tmp_path / "run", checkpoint=tmp_path / "c.pt"))
    with pytest.raises(ValueError, match="already holds a run's TensorBoard files"):
        fit(seeded_net(), X, Y, TrainConfig(max_epochs=3, log_dir=tmp_path / "run"))
    with pytest.raises(ValueError, match="c.pt already exists and a new run would overwrite it"):
        fit(seeded_net(), X, Y, TrainConfig(max_epochs=3, checkpoint=tmp_path / "c.pt"))


def test_a_held_lock_is_refused_through_the_api(tmp_path):
    from torch_shallow.run import locked

    (tmp_path / "run").mkdir()
    with locked([tmp_path / "run"]):
        with pytest.raises(RunInUse, match=f"process {os.getpid()}"):
            with locked([tmp_path / "run"]):
                pass
    with locked([tmp_path / "run"]):  # released, and free again
        pass


# 3. Paths that hold from any working directory --------------------------------------------------------------------


def test_resume_from_another_directory_continues_in_the_run_directory(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    write_csv(home / "d.csv")
    assert (
        cli(
            "train", "--csv", "d.csv", "--hidden", "3", "--epochs", "100", "--tol", "0", "--log-dir", "run", cwd=home
        ).returncode
        == 0
    )
    resumed = cli("train", "--resume", "../home/run/checkpoint.pt", "--epochs", "250", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran
    assert history_of(home / "run" / "checkpoint.pt")["epochs"] == 250
    assert (
        cli(
            "train", "--csv", "d.csv", "--hidden", "3", "--epochs", "250", "--tol", "0", "--log-dir", "whole", cwd=home
        ).returncode
        == 0
    )
    assert history_of(home / "run" / "checkpoint.pt") == history_of(home / "whole" / "checkpoint.pt")


def test_a_moved_run_directory_resumes_where_it_now_lies(tmp_path):
    assert main(["train", "--epochs", "50", "--tol", "0", "--log-dir", str(tmp_path / "run")]) == 0
    shutil.move(tmp_path / "run", tmp_path / "moved")
    assert main(["train", "--resume", str(tmp_path / "moved" / "checkpoint.pt"), "--epochs", "80"]) == 0
    assert not (tmp_path / "run").exists()
    assert history_of(tmp_path / "moved" / "checkpoint.pt")["epochs"] == 80


def test_moved_data_is_found_with_its_new_place(tmp_path, capsys):
    csv = write_csv(tmp_path / "d.csv")
    assert main(["train", "--csv", str(csv), "--epochs", "20", "--log-dir", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    csv.rename(tmp_path / "moved.csv")
    assert main(["train", "--resume", str(checkpoint), "--epochs", "30"]) == 2
    assert (
        f"the run's data {csv} is not there; if it has moved, give its new place with --csv" in capsys.readouterr().err
    )
    assert main(["train", "--resume", str(checkpoint), "--epochs", "30", "--csv", str(tmp_path / "moved.csv")]) == 0
    assert history_of(checkpoint)["epochs"] == 30


# 4. Changed data ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, n, change",
    [
        ((7, 0, "0.123"), 40, "X's values differ"),
        ((30, 2, "{flip}"), 40, "Y's values differ"),
        (None, 41, "X's shape was (40, 2), now (41, 2)"),
    ],
)
def test_resume_on_changed_data_is_refused_naming_the_change(tmp_path, capsys, edit, n, change):
    csv = write_csv(tmp_path / "d.csv")
    assert main(["train", "--csv", str(csv), "--epochs", "20", "--log-dir", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    before = checkpoint.read_bytes()
    if edit is not None and edit[2] == "{flip}":
        label = load_csv(csv)[1][edit[0], 0].item()
        edit = (edit[0], edit[1], str(1 - int(label)))
    write_csv(csv, n=n, edit=edit)
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoint), "--epochs", "40"]) == 2
    err = capsys.readouterr().err
    assert f"the training data changed: {change}" in err
    assert checkpoint.read_bytes() == before


def test_fingerprint_ignores_blocks_and_shards_but_sees_a_swap():
    X, Y = planar(dtype=torch.float64)
    whole = Fingerprint()
    whole.update("X", X, 0)
    whole.update("Y", Y, 0)
    pieces = Fingerprint()
    for start, stop in ((300, 400), (0, 7), (7, 300)):  # any cut, in any order: shards of a distributed run
        pieces.update("X", X[start:stop], start)
        pieces.update("Y", Y[start:stop], start)
    device = torch.device("cpu")
    assert pieces.reduce(device) == whole.reduce(device)
    swapped = X.clone()
    swapped[[3, 4]] = swapped[[4, 3]]
    other = Fingerprint()
    other.update("X", swapped, 0)
    other.update("Y", Y, 0)
    assert other.reduce(device)["X"]["hash"] != whole.reduce(device)["X"]["hash"]
    assert other.reduce(device)["Y"] == whole.reduce(device)["Y"]
    assert {k: v for k, v in whole.reduce(device)["X"].items() if k != "hash"} == {
        "shape": [400, 2],
        "dtype": "float64",
    }


def test_api_resume_on_other_data_is_refused(tmp_path):
    X, Y = planar()
    fit(seeded_net(), X, Y, TrainConfig(max_epochs=5, checkpoint=tmp_path / "c.pt"))
    X2 = X.clone()
    X2[0, 0] += 1e-3
    with pytest.raises(CheckpointError, match="the training data changed: X's values differ"):
        fit(seeded_net(), X2, Y, TrainConfig(max_epochs=9), resume_from=tmp_path / "c.pt")


# 5. Signals under torchrun ----------------------------------------------------------------------------------------


def torchrun(*args, **kwargs):
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "torch_shallow",
        "train",
        "--dtype",
        "float64",
        "--timeout",
        "60",
        "--tol",
        "0",
        *map(str, args),
    ]


def test_ctrl_c_under_torchrun_stops_every_rank_after_one_epoch_and_resumes(tmp_path):
    """A Ctrl-C in a terminal reaches torchrun and its workers (one process group), and torchrun forwards it to the
    workers once more; every rank must stop after the same epoch, with one checkpoint, and resume."""
    run = tmp_path / "run"
    process = subprocess.Popen(
        torchrun("--epochs", "100000", "--checkpoint-every", "200", "--log-every", "50", "--log-dir", run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    checkpoint = run / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what the terminal does
    out, err = process.communicate(timeout=120)
    epochs = history_of(checkpoint)["epochs"]
    assert err.count("torch-shallow: interrupted by SIGINT after epoch") == 1, err  # rank 0 speaks, once
    assert f"after epoch {epochs}; resume with: torchrun" in err
    assert "torch_shallow/" not in err and "KeyboardInterrupt" not in err, err  # torchrun's own traceback only
    resumed = subprocess.run(
        torchrun("--resume", checkpoint, "--epochs", epochs + 100), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = cli(
        "train",
        "--dtype",
        "float64",
        "--tol",
        "0",
        "--epochs",
        epochs + 100,
        "--no-log",
        "--checkpoint",
        tmp_path / "whole.pt",
    )
    assert whole.returncode == 0, whole.stderr
    torch.testing.assert_close(
        torch.tensor(history_of(checkpoint)["costs"]),
        torch.tensor(history_of(tmp_path / "whole.pt")["costs"]),
        rtol=1e-9,
        atol=0,
    )


# 6. Output paths, checked before the first epoch; a failing disk mid-run ----------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (["--save", "{tmp}/nodir/net.pt"], "the directory {tmp}/nodir does not exist"),
        (["--save", "{tmp}"], "--save {tmp} is a directory"),
        (["--checkpoint", "{tmp}"], "checkpoint {tmp} is a directory"),
        (["--log-dir", "{tmp}/file"], "is a file"),
    ],
)
def test_bad_output_paths_fail_before_training(tmp_path, capsys, options, message):
    (tmp_path / "file").write_text("")
    options = [o.format(tmp=tmp_path) for o in options]
    code = main(["train", "--epochs", "100000000", *options, *([] if "--log-dir" in options else ["--no-log"])])
    assert code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def limited_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail with EFBIG

    return apply


def test_a_full_disk_stops_the_run_with_a_checkpoint(tmp_path):
    """The TensorBoard file can no longer grow: the run stops at the next checkpoint at the latest, says so, and
    its checkpoint resumes to the uninterrupted result."""
    command = ["train", "--epochs", "20000", "--tol", "0", "--checkpoint-every", "500", "--log-dir", tmp_path / "run"]
    # the whole run's event file is about 490 kB, its last checkpoint 190 kB
    failed = cli(*command, preexec_fn=limited_file_size(350_000))
    assert failed.returncode == 1
    assert "training stopped at epoch" in failed.stderr and "File too large" in failed.stderr
    assert "checkpoint written; resume from" in failed.stderr
    assert "Traceback" not in failed.stderr  # one message, not TensorBoard's writer thread's traceback too
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    stopped = history_of(checkpoint)["epochs"]
    assert 0 < stopped < 20000
    assert cli("train", "--resume", checkpoint).returncode == 0
    whole = cli("train", "--epochs", "20000", "--tol", "0", "--no-log", "--checkpoint", tmp_path / "whole.pt")
    assert whole.returncode == 0
    assert history_of(checkpoint) == history_of(tmp_path / "whole.pt")


# 8. The decision-boundary image, block by block -----------------------------------------------------------------


def test_the_decision_boundary_of_a_wide_layer_needs_no_grid_sized_memory():
    """One (256², d1) float32 activation at d1 = 2048 is 512 MiB; block by block the image needs a few MiB."""
    script = """
import sys, torch
from pathlib import Path
from torch_shallow import ShallowNet, planar
from torch_shallow.board import decision_boundary_image
def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
torch.set_num_threads(1)
X, Y = planar()
net = ShallowNet(2, 2048)
Path("/proc/self/clear_refs").write_text("5")
before = kib("VmRSS:")
decision_boundary_image(net, X, Y)
print((kib("VmHWM:") - before) / 1024)
"""
    # glibc's dynamic mmap threshold makes the peak depend on the allocator's history (51 or 312 MiB in repeated
    # runs of this script); a fixed threshold measures what the code asks for (14 MiB)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < 512 / 8


# 9. Clear errors where tracebacks were ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (["--device", "nonsense"], "expected a torch device such as cpu"),
        (["--device", "mps"], "training runs on cpu or cuda, not mps"),
        (["--device", "meta"], "training runs on cpu or cuda, not meta"),
        (["--timeout", "0"], "--timeout: expected a finite number > 0"),
        (["--timeout", "-5"], "--timeout: expected a finite number > 0"),
        (["--lr", "nan"], "--lr: expected a finite number > 0"),
    ],
)
def test_bad_option_values_are_usage_errors(capsys, options, message):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--no-log", *options])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_a_learning_rate_beyond_float32_is_refused(capsys):
    assert main(["train", "--no-log", "--lr", "1e39"]) == 2
    assert "lr 1e+39 is beyond the range of the model's dtype torch.float32" in capsys.readouterr().err


def test_empty_on_disk_data_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "X.npy", np.zeros((0, 2), np.float32))
    np.save(tmp_path / "data" / "Y.npy", np.zeros((0,), np.float32))
    assert main(["train", "--no-log", "--data", str(tmp_path / "data")]) == 2
    assert "no rows" in capsys.readouterr().err


def test_config_takes_numpy_numbers_and_refuses_bools():
    config = TrainConfig(lr=np.float32(0.5), max_epochs=np.int64(7), tol=np.float64(0))
    assert (config.lr, config.max_epochs, config.tol) == (0.5, 7, 0.0)
    assert type(config.lr) is float and type(config.max_epochs) is int  # plain values, for the checkpoint
    for bad in ({"lr": True}, {"tol": False}, {"max_epochs": True}, {"lr": "0.5"}, {"lr": float("inf")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)
    with pytest.raises(TypeError, match="log_dir must be a path"):
        TrainConfig(log_dir=5)


def test_numpy_numbers_reach_a_loadable_checkpoint(tmp_path):
    X, Y = planar()
    fit(seeded_net(), X, Y, TrainConfig(lr=np.float32(0.5), max_epochs=np.int64(3), checkpoint=tmp_path / "c.pt"))
    assert load_checkpoint(tmp_path / "c.pt")["config"]["lr"] == 0.5


def test_val_must_be_a_pair():
    X, Y = planar()
    with pytest.raises(TypeError, match=r"val must be a pair \(X_val, Y_val\), got Tensor"):
        fit(seeded_net(), X, Y, TrainConfig(max_epochs=2), val=X)
    with pytest.raises(ValueError, match="val: X must have d = 2 features"):
        fit(seeded_net(), X, Y, TrainConfig(max_epochs=2), val=(X[:, :1], Y))


def test_a_model_with_nothing_to_train_is_refused():
    X, Y = planar()
    net = seeded_net().requires_grad_(False)
    with pytest.raises(ValueError, match="none of the model's parameters requires a gradient"):
        fit(net, X, Y, TrainConfig(max_epochs=5))


# Found by trying the command line carelessly ---------------------------------------------------------------------


def test_on_disk_data_whose_files_differ_in_rows_is_refused(tmp_path, capsys):
    (tmp_path / "mix").mkdir()
    np.save(tmp_path / "mix" / "X.npy", np.zeros((10, 2), np.float32))
    np.save(tmp_path / "mix" / "Y.npy", np.zeros((20,), np.float32))  # labels of another data set
    assert main(["train", "--data", str(tmp_path / "mix"), "--epochs", "3", "--no-log"]) == 2
    assert "X.npy has 10 rows but Y.npy has 20" in capsys.readouterr().err


def test_a_resumed_run_still_saves_the_model_it_was_asked_to(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--epochs",
                "40",
                "--tol",
                "0",
                "--log-dir",
                str(tmp_path / "run"),
                "--save",
                str(tmp_path / "net.pt"),
            ]
        )
        == 0
    )
    (tmp_path / "net.pt").unlink()
    assert main(["train", "--resume", str(tmp_path / "run" / "checkpoint.pt"), "--epochs", "60"]) == 0
    net = ShallowNet(2, 4)
    net.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    assert torch.equal(net.W1, load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]["W1"])


@pytest.mark.parametrize(
    "options, message",
    [
        (["train", "--resume", "{tmp}"], "is a directory; expected a checkpoint file, such as"),
        (["train", "--resume", "{tmp}/garbage.pt"], "cannot be read: it is truncated, corrupt or not a checkpoint"),
        (["train", "--csv", "{tmp}/nothere.csv"], "--csv {tmp}/nothere.csv: no such file"),
        (["train", "--data", "{tmp}/garbage.pt"], "expected a directory of X.npy and Y.npy, or a .parquet file"),
        (["sweep", "--seeds", "0", "1", "0"], "--seeds lists 0 more than once"),
        (["train", "--init-from", "{tmp}/sweep/checkpoint.pt"], "this is a sweep's checkpoint, of 2 models"),
        (
            ["train", "--init-from", "{tmp}/one/checkpoint.pt", "--hidden", "7"],
            "its weights are of a model with 2 inputs, 4 hidden units and 1 outputs; this one has 2, 7 and 1",
        ),
    ],
)
def test_careless_paths_and_options_get_a_clear_error(tmp_path, capsys, options, message):
    (tmp_path / "garbage.pt").write_text("garbage")
    if "sweep/checkpoint.pt" in " ".join(options):
        assert main(["sweep", "--hidden", "2", "3", "--epochs", "5", "--log-dir", str(tmp_path / "sweep")]) == 0
    if "one/checkpoint.pt" in " ".join(options):
        assert main(["train", "--epochs", "5", "--log-dir", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([o.format(tmp=tmp_path) for o in options] + ([] if "--resume" in options else ["--no-log"])) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err


def test_sigterm_before_training_leaves_no_empty_run_directory(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            """
import os, signal, sys, time
from torch_shallow import cli
def stopped_before_the_first_epoch(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # as if stopped after the run directory was made, before training
    time.sleep(5)
cli.commands.fit = stopped_before_the_first_epoch
sys.exit(cli.main(sys.argv[1:]))
""",
            "train",
            "--epochs",
            "100",
            "--log-dir",
            str(tmp_path / "run"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_outside_its_run_directory_is_locked(tmp_path):
    """A checkpoint kept elsewhere than its run directory has a lock of its own: a second run resuming from that
    file while the first one writes it is refused, whichever run directory that one writes to."""
    from torch_shallow.run import run_outputs

    checkpoint = tmp_path / "elsewhere" / "c.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")  # resumed from: there already
    for log_dir in (tmp_path / "run", None):
        with run_outputs(log_dir, checkpoint, checkpoint, []):
            assert (checkpoint.parent / ".c.pt.lock").exists()
            with pytest.raises(RunInUse, match=f"c.pt is in use by another training run \\(process {os.getpid()}\\)"):
                with run_outputs(tmp_path / "other-run", checkpoint, checkpoint, []):
                    pass
        assert not (checkpoint.parent / ".c.pt.lock").exists()


def test_a_run_directory_holding_files_is_never_reused(tmp_path, monkeypatch):
    """new_run_dir passes over a directory that holds anything (a run's event files, a checkpoint, a lock being
    claimed) and takes an empty one; default_run_dir's name, the second fixed here, gets the next free suffix."""
    from torch_shallow.run import default_run_dir

    taken = {"name": "events.out.tfevents.1.host", "name-2": "checkpoint.pt", "name-3": ".lock"}
    for directory, file in taken.items():
        (tmp_path / directory).mkdir()
        (tmp_path / directory / file).write_bytes(b"a run's")
    (tmp_path / "name-4").mkdir()  # empty: a claim that stopped before its lock file, free to take
    assert new_run_dir(tmp_path / "name") == tmp_path / "name-4"
    assert new_run_dir(tmp_path / "name") == tmp_path / "name-5"  # name-4 now holds its lock file
    for directory, file in taken.items():
        assert (tmp_path / directory / file).read_bytes() == b"a run's"
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261129-101500")
    (tmp_path / "runs" / "planar-20261129-101500").mkdir(parents=True)
    (tmp_path / "runs" / "planar-20261129-101500" / "events.out.tfevents.1.host").write_bytes(b"")
    assert default_run_dir("planar", tmp_path / "runs") == tmp_path / "runs" / "planar-20261129-101500-2"
