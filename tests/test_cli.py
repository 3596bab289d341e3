"""The command line, as a user runs it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torch_shallow import ShallowNet, TrainConfig, fit, planar
from torch_shallow.cli import main

SUMMARY = re.compile(r"^(\w+): (\d+) epochs \((\w+)\), final cost (\d+\.\d{6}), training accuracy (\d+\.\d{2})%$", re.M)


def test_defaults_are_the_planar_experiment(capsys):
    """``train`` with no settings is the planar experiment: the flower, 4 sigmoid hidden units seeded with 0, lr 1.2.
    Its printed cost and accuracy equal those of that experiment written out with the library."""
    assert main(["train", "--epochs", "30", "--no-log"]) == 0
    printed = SUMMARY.search(capsys.readouterr().out)
    assert printed, "no summary line"
    X, Y = planar()
    net = ShallowNet(2, 4, activation="sigmoid")
    net.reset_parameters(torch.Generator().manual_seed(0))
    history = fit(net, X, Y, TrainConfig(lr=1.2, max_epochs=30))
    experiment, epochs, reason, cost, accuracy = printed.groups()
    assert (experiment, int(epochs), reason) == ("planar", 30, "max_epochs")
    assert float(cost) == pytest.approx(history.final_cost, rel=0, abs=5e-7)  # printed to 6 decimals
    assert float(accuracy) == pytest.approx(100 * history.train_accuracy, rel=0, abs=5e-3)


def test_train_logs_saves_and_reports(tmp_path, capsys):
    """The run is logged where asked, and the saved model is the trained one: its cost is the one printed."""
    code = main(["train", "--epochs", "30", "--log-dir", str(tmp_path / "run"), "--save", str(tmp_path / "net.pt")])
    out = capsys.readouterr().out
    assert code == 0
    assert "planar: 30 epochs (max_epochs)" in out and "training accuracy" in out
    assert f"tensorboard --logdir {tmp_path}" in out
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))
    net = ShallowNet(2, 4)
    net.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    printed_cost = float(SUMMARY.search(out).group(4))
    assert net.cost(*planar()).item() == pytest.approx(printed_cost, rel=0, abs=1e-6)  # 6 decimals, float32


def test_seed_reproduces_the_run(capsys):
    """The same seed gives the same run; another seed, another θ(0) and so another run."""
    outputs = []
    for seed in (3, 3, 4):
        assert main(["train", "--dataset", "moons", "--epochs", "50", "--seed", str(seed), "--no-log"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert outputs[2] != outputs[0]


def test_csv_training(tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text("u,v,label\n" + "".join(f"{i / 10},{-i / 10},{int(i > 5)}\n" for i in range(10)))
    assert main(["train", "--csv", str(path), "--hidden", "2", "--epochs", "20", "--no-log"]) == 0
    assert "points: 20 epochs" in capsys.readouterr().out


def test_bad_input_exits_with_a_message(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("a,y\n1,7\n")
    assert main(["train", "--csv", str(path), "--no-log"]) == 2
    assert "bad.csv:2: label column 'y' must be 0 or 1" in capsys.readouterr().err


def test_python_dash_m_and_console_script():
    script = Path(sys.executable).parent / "torch-shallow"  # installed beside the interpreter by pip
    for command in ([sys.executable, "-m", "torch_shallow"], [str(script)]):
        result = subprocess.run(
            [*command, "train", "--epochs", "5", "--no-log"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "planar: 5 epochs" in result.stdout


def test_convert_then_train_on_disk(tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text("u,v,label\n" + "".join(f"{i / 10},{(-1) ** i * i / 7},{int(i > 5)}\n" for i in range(12)))
    assert main(["convert", str(path), str(tmp_path / "data")]) == 0
    assert "12 rows written" in capsys.readouterr().out
    assert main(["train", "--csv", str(path), "--hidden", "3", "--epochs", "40", "--no-log"]) == 0
    in_memory = capsys.readouterr().out.split(": ", 1)[1]
    assert main(["train", "--data", str(tmp_path / "data"), "--hidden", "3", "--epochs", "40", "--no-log"]) == 0
    assert capsys.readouterr().out.split(": ", 1)[1] == in_memory


def test_torchrun_two_processes_match_one(tmp_path):
    command = ["-m", "torch_shallow", "train", "--epochs", "60", "--no-log", "--dtype", "float64", "--timeout", "60"]
    one = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300)
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert two.stdout == one.stdout  # printed by rank 0 alone, the same full-batch values


def test_a_hidden_layer_too_large_for_memory_is_refused_before_any_allocation(capsys):
    """A typo such as --hidden 100000000 is refused with its size, not by PyTorch's allocator; so is a model whose
    parameters alone could not fit."""
    assert main(["train", "--hidden", "100000000", "--no-log", "--epochs", "1"]) == 2
    assert "training 100,000,000 hidden units needs" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"ShallowNet\(2, 1000000000000, 1\) needs .* GiB, but this machine has"):
        ShallowNet(2, 10**12)


def test_save_refuses_another_runs_files_and_files_that_are_not_regular(tmp_path, capsys):
    assert main(["train", "--epochs", "5", "--log-dir", str(tmp_path / "a")]) == 0
    events = next((tmp_path / "a").glob("events.out.tfevents.*"))
    size = events.stat().st_size
    assert main(["train", "--epochs", "5", "--log-dir", str(tmp_path / "b"), "--save", str(events)]) == 2
    assert "in another run's directory" in capsys.readouterr().err and events.stat().st_size == size
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["train", "--epochs", "5", "--no-log", "--save", str(fifo)]) == 2
    assert "is not a regular file" in capsys.readouterr().err and not fifo.is_file()


def test_the_sweep_table_shows_each_learning_rate_as_given(capsys):
    assert main(["sweep", "--epochs", "3", "--no-log", "--lr", "1.0000001", "1.00000011"]) == 0
    out = capsys.readouterr().out
    assert "1.0000001 " in out and "1.00000011" in out


def test_identity_outputs_show_and_log_no_accuracy(tmp_path, capsys):
    csv = tmp_path / "reg.csv"
    X, _ = planar()
    csv.write_text("a,b,y\n" + "".join(f"{a},{b},{a * b + 0.5}\n" for a, b in X.tolist()))
    assert (
        main(
            [
                "sweep",
                "--csv",
                str(csv),
                "--output",
                "identity",
                "--hidden",
                "2",
                "3",
                "--lr",
                "0.05",
                "--epochs",
                "20",
                "--log-dir",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and " -  " in out
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = next(p for p in (tmp_path / "run").iterdir() if p.is_dir())
    tags = EventAccumulator(str(run)).Reload().Tags()["scalars"]
    assert "cost/train" in tags and not any(tag.startswith("accuracy/") for tag in tags)


def test_kernel_drift_with_on_disk_data_is_refused_before_training(tmp_path, capsys):
    X, Y = planar()
    data = tmp_path / "data"
    data.mkdir()
    import numpy as np

    np.save(data / "X.npy", X.numpy())
    np.save(data / "Y.npy", Y.numpy())
    assert main(["train", "--data", str(data), "--kernel-every", "10", "--epochs", "20", "--no-log"]) == 2
    assert "--kernel-every with --data" in capsys.readouterr().err


def test_softmax_classes_without_rows_are_warned_of(tmp_path):
    csv = tmp_path / "typo.csv"
    X, Y = planar()
    labels = Y.reshape(-1).long().tolist()
    labels[7] = 9  # a mistyped label: classes 2..8 have no rows
    csv.write_text("a,b,y\n" + "".join(f"{a},{b},{y}\n" for (a, b), y in zip(X.tolist(), labels)))
    with pytest.warns(UserWarning, match=r"10 classes 0..9, but classes 2, 3, 4, 5, 6, 7, 8 have no rows"):
        assert main(["train", "--csv", str(csv), "--output", "softmax", "--epochs", "3", "--no-log"]) == 0
