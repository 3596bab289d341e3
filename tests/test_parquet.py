"""Parquet files: rows read by row group for training, and converted to .npy as CSV files are."""

import copy
import gc
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_data import oracle, same_bits, write_csv
from test_ondisk import assert_untouched, old_data  # noqa: F401 (a fixture)

from torch_shallow import ShallowNet, TrainConfig, csv_to_npy, fit, planar
from torch_shallow import parquet as parquet_module
from torch_shallow.data import csv_chunks
from torch_shallow.ondisk import open_npy, parquet_to_npy
from torch_shallow.parquet import ParquetRows, open_parquet, parquet_chunks


def write_parquet(path, columns, row_group_size):
    """A Parquet file of ``columns`` {name: 1-D array}, in row groups of ``row_group_size`` rows."""
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


@pytest.fixture
def table(tmp_path):
    """30 rows of features a, b, c (float64, float32, int64) and labels y (bool) between b and c, in row groups of
    7 rows (the last one 2 rows); the same data as (X (30, 3), Y (30, 1)) in float64."""
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal(30), rng.standard_normal(30).astype(np.float32), rng.integers(-5, 5, 30)
    y = rng.random(30) > 0.5
    path = write_parquet(tmp_path / "data.parquet", {"a": a, "b": b, "y": y, "c": c}, row_group_size=7)
    X = torch.tensor(np.stack([a, b.astype(np.float64), c.astype(np.float64)], axis=1))
    return path, X, torch.tensor(y, dtype=torch.float64)[:, None]


def test_every_row_range_crossing_row_groups(table):
    path, X, Y = table
    X_disk, Y_disk = open_parquet(path, dtype=torch.float64, label="y")
    assert X_disk.shape == (30, 3) and Y_disk.shape == (30, 1) and pq.ParquetFile(path).num_row_groups == 5
    for a in range(31):
        for b in range(a, 31):
            assert torch.equal(X_disk[a:b], X[a:b]) and torch.equal(Y_disk[a:b], Y[a:b]), (a, b)
    assert torch.equal(X_disk[-3:], X[-3:]) and X_disk[5:2].shape == (0, 3)


@pytest.mark.parametrize("rows", [(0, 30), (6, 8), (7, 14), (8, 23), (29, 30), (12, 12)])
def test_row_ranges_for_shards(table, rows):
    path, X, Y = table
    X_disk, Y_disk = open_parquet(path, rows=rows, dtype=torch.float64, label="y")
    start, stop = rows
    assert X_disk.shape == (stop - start, 3) and torch.equal(X_disk[:], X[start:stop])
    assert torch.equal(Y_disk[:], Y[start:stop]) and torch.equal(X_disk[1:4], X[start:stop][1:4])


def test_shards_read_only_their_row_groups(table, monkeypatch):
    path, X, _ = table
    read, original = [], pq.ParquetFile.read_row_groups

    def read_row_groups(file, groups, **options):
        read.append(groups)
        return original(file, groups, **options)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", read_row_groups)
    X_disk, _ = open_parquet(path, rows=(8, 20), label="y")  # rows 8 to 19: row groups 1 (7-13) and 2 (14-20)
    for start in range(0, 12, 5):
        X_disk[start : start + 5]
    assert read == [[1], [2]]  # each decoded once, in turn: one kept at a time
    assert len(X_disk._kept) == 1
    read.clear()
    assert torch.equal(X_disk[:], X[8:20].float())
    assert read == [[1, 2]]  # a slice over several row groups decodes them in one read


def test_threads_read_their_own_ranges(table):
    """Threads reading at once (as fit's sweep does on each core) get their rows, each keeping one row group."""
    path, X, _ = table
    X_disk, _ = open_parquet(path, dtype=torch.float64, label="y")
    barrier = threading.Barrier(3)

    def read(start):
        barrier.wait()
        return [X_disk[a : a + 3] for a in range(start, start + 10, 3)]

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(read, (0, 10, 20)))
    for start, blocks in zip((0, 10, 20), results):
        assert torch.equal(torch.cat(blocks), X[start : start + 12][: sum(len(b) for b in blocks)])
    assert len(X_disk._kept) <= 3


def test_training_on_parquet_equals_training_on_tensors(tmp_path):
    X, Y = planar()
    path = write_parquet(
        tmp_path / "planar.parquet",
        {"x1": X[:, 0].numpy(), "x2": X[:, 1].numpy(), "label": Y[:, 0].numpy().astype(np.int8)},
        row_group_size=64,
    )

    def trained(X, Y):
        net = ShallowNet(2, 4)
        net.reset_parameters(torch.Generator().manual_seed(0))
        return fit(net, X, Y, TrainConfig(max_epochs=200, tol=0))

    X_disk, Y_disk = open_parquet(path)  # the last column holds the labels
    assert trained(X_disk, Y_disk) == trained(X, Y)


@pytest.mark.parametrize(
    "labels, message", [(np.full(30, 2.0), r"labels in \[0, 1\]"), (np.full(30, np.nan), "NaN or inf")]
)
def test_fit_refuses_bad_labels(tmp_path, labels, message):
    path = write_parquet(tmp_path / "bad.parquet", {"a": np.zeros(30), "y": labels}, row_group_size=10)
    net = ShallowNet(1, 2)
    with pytest.raises(ValueError, match=message):
        fit(net, *open_parquet(path), TrainConfig(max_epochs=1))


def test_labels_by_name_and_bad_files(tmp_path):
    path = write_parquet(tmp_path / "data.parquet", {"y": [0, 1], "a": [0.5, 1.5]}, row_group_size=1)
    X, Y = open_parquet(path, label="y")
    assert X[:].tolist() == [[0.5], [1.5]] and Y[:].tolist() == [[0.0], [1.0]]
    with pytest.raises(ValueError, match=r"data.parquet: no label column 'z'; the columns are \['y', 'a'\]"):
        open_parquet(path, label="z")
    with pytest.raises(ValueError, match=r"rows \[1, 3\) are outside the file's 2 rows"):
        open_parquet(path, rows=(1, 3))
    bad = {
        "text.parquet": ({"a": ["x", "y"], "y": [0, 1]}, r"column 'a' holds string; expected numbers"),
        "one.parquet": ({"y": [0, 1]}, "expected at least one feature column and a label column"),
        "empty.parquet": ({"a": np.zeros(0), "y": np.zeros(0)}, "holds no rows"),
    }
    for name, (columns, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            open_parquet(write_parquet(tmp_path / name, columns, row_group_size=10))
    twice = tmp_path / "twice.parquet"
    pq.write_table(
        pa.Table.from_arrays([pa.array([1.0]), pa.array([1.0]), pa.array([0])], names=["a", "a", "y"]), twice
    )
    with pytest.raises(ValueError, match=r"2 columns are named 'a'"):
        open_parquet(twice)
    (tmp_path / "not.parquet").write_text("a,y\n1,0\n")
    with pytest.raises(ValueError, match=r"not.parquet is not a Parquet file"):
        open_parquet(tmp_path / "not.parquet")


def test_null_names_its_row(tmp_path):
    path = tmp_path / "null.parquet"
    pq.write_table(pa.table({"a": pa.array([1.0] * 12 + [None] + [1.0] * 7), "y": [0] * 20}), path, row_group_size=5)
    X, _ = open_parquet(path)
    assert X[0:10].shape == (10, 1)
    with pytest.raises(ValueError, match=r"null.parquet: row 12: column 'a' has no value \(null\)"):
        X[10:11]  # its row group, rows 10 to 14, is decoded whole
    with pytest.raises(ValueError, match=r"null.parquet: row 12: column 'a' has no value \(null\)"):
        list(parquet_chunks(path))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_convert_parquet_is_bit_identical_to_the_csv_path(tmp_path, dtype):
    path = write_csv(
        tmp_path / "data.csv",
        n=200,
        d=3,
        label_column=1,
        exponents={np.float16: (-9, 4), np.float32: (-42, 38), np.float64: (-320, 300)}[dtype],
    )
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)  # the CSV file's numbers, as float64
    columns = {"x0": data[:, 0], "y": data[:, 1], "x1": data[:, 2], "x2": data[:, 3]}
    parquet = write_parquet(tmp_path / "data.parquet", columns, row_group_size=64)
    assert csv_to_npy(path, tmp_path / "csv", label="y", dtype=dtype) == 200
    assert parquet_to_npy(parquet, tmp_path / "parquet", label="y", dtype=dtype) == 200
    for name in ("X.npy", "Y.npy"):
        assert (tmp_path / "csv" / name).read_bytes() == (tmp_path / "parquet" / name).read_bytes()
    X_ref, y_ref = oracle(path, 1, dtype)
    assert same_bits(np.load(tmp_path / "parquet" / "X.npy"), X_ref)


def bad_parquet(path, row, column, value, n=40):
    """40 rows of features a, b and labels y, value in ``column`` at ``row``."""
    columns = {"a": np.arange(n, dtype=np.float64), "b": np.ones(n), "y": (np.arange(n) % 2).astype(np.float64)}
    columns[column][row] = value
    return write_parquet(path, columns, row_group_size=8)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("b", np.inf, r"row 29: NaN or inf values are not allowed, got inf in column 'b'"),
        ("a", np.nan, r"row 29: NaN or inf values are not allowed, got nan in column 'a'"),
        ("y", 2.0, r"row 29: label column 'y' must be 0 or 1, got 2.0"),
        ("a", 1e39, r"row 29: 1e\+39 in column 'a' is too large for float32, whose largest value is 3.40282346"),
    ],
)
def test_parquet_chunks_name_the_row_in_a_later_batch(tmp_path, monkeypatch, column, value, message):
    monkeypatch.setattr(parquet_module, "BATCH_ROWS", 6)  # row 29 in the fifth batch
    path = bad_parquet(tmp_path / "bad.parquet", 29, column, value)
    chunks = parquet_chunks(path)
    with pytest.raises(ValueError, match=rf"bad.parquet: {message}"):
        for read, (X, y) in enumerate(chunks):
            assert X.shape == (6, 2) and X.dtype == y.dtype == np.float32
    assert read == 3


def test_convert_parquet_failure_leaves_the_old_files(tmp_path, old_data):  # noqa: F811 (the fixture)
    path = bad_parquet(tmp_path / "bad.parquet", 35, "y", 0.5)
    with pytest.raises(ValueError, match=r"row 35: label column 'y' must be 0 or 1"):
        parquet_to_npy(path, old_data[0])
    assert_untouched(old_data)


def test_parquet_rows_repr_and_slices(table):
    path, _, _ = table
    X = ParquetRows(path, ["a", "c"], rows=(3, 10))
    assert repr(X) == f"ParquetRows({str(path)!r}, 2 columns, rows=(3, 10), dtype=torch.float32)"
    with pytest.raises(TypeError, match="row slices"):
        X[3]
    with pytest.raises(ValueError, match="contiguous"):
        X[::2]


PEAK = """
import sys
from pathlib import Path
import torch
from torch_shallow import ShallowNet
from torch_shallow.parquet import open_parquet

torch.set_num_threads(2)  # a sweep on 2 cores, as on this project's machines, whatever this one has

def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))

X, Y = open_parquet(sys.argv[1])
net = ShallowNet(X.shape[1], 64)
net.cost_and_grad(X, Y, block_rows=4096, check_inputs=False)  # a first epoch sets up threads and allocators
Path("/proc/self/clear_refs").write_text("5")
before = kib("VmRSS")
net.cost_and_grad(X, Y, block_rows=4096, check_inputs=False)
print((kib("VmHWM") - before) / 1024)
"""


def test_parquet_epoch_memory_is_bounded_by_the_row_group(tmp_path):
    """2,000,000 × 8 float32 features are 61 MiB; an epoch on 2 threads holds, per thread, the row group it keeps
    (50,000 rows, 1.5 MiB), the three copies that decoding the next one makes (Arrow's, stacked, transposed) and a
    few blocks of 4096 rows × 64 hidden units (1 MiB each): about 25 MiB at worst, however many row groups the file
    has. Whether the allocators reuse the first epoch's pages makes it vary between 6 and 16 MiB; reading the whole
    file would take 61."""
    n, d = 2_000_000, 8
    rng = np.random.default_rng(0)
    columns = {f"x{j}": rng.standard_normal(n, dtype=np.float32) for j in range(d)}
    path = write_parquet(tmp_path / "big.parquet", {**columns, "y": rng.random(n) > 0.5}, row_group_size=50_000)
    out = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < n * d * 4 / 2**20 / 2


def test_the_command_line_converts_and_trains_on_parquet(tmp_path, capsys):
    from torch_shallow.cli import main

    X, Y = planar()
    table = pa.table({"u": X[:, 0].numpy(), "v": X[:, 1].numpy(), "y": Y[:, 0].numpy()})
    pq.write_table(table, tmp_path / "points.parquet", row_group_size=64)
    assert main(["convert", str(tmp_path / "points.parquet"), str(tmp_path / "data")]) == 0
    assert "400 rows written" in capsys.readouterr().out
    outputs = []
    for data in (tmp_path / "points.parquet", tmp_path / "data"):
        assert main(["train", "--data", str(data), "--epochs", "50", "--no-log"]) == 0
        outputs.append(capsys.readouterr().out.split(": ", 1)[1])
    assert outputs[0] == outputs[1]  # streamed by row group, or converted: the same training
    assert main(["train", "--data", str(tmp_path / "points.parquet"), "--label", "u", "--epochs", "5", "--no-log"]) == 2
    assert "Y must hold labels in [0, 1]" in capsys.readouterr().err  # fit checks on-disk labels block by block


def test_torchrun_trains_on_parquet_as_one_process(tmp_path):
    """Two ranks each read their own row groups of one Parquet file; rank 0 prints what one process prints."""
    X, Y = planar(dtype=torch.float64)
    pq.write_table(
        pa.table({"u": X[:, 0].numpy(), "v": X[:, 1].numpy(), "y": Y[:, 0].numpy()}),
        tmp_path / "points.parquet",
        row_group_size=50,
    )
    command = [
        "-m",
        "torch_shallow",
        "train",
        "--data",
        str(tmp_path / "points.parquet"),
        "--epochs",
        "60",
        "--no-log",
        "--dtype",
        "float64",
        "--timeout",
        "60",
    ]
    one = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300)
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert two.stdout == one.stdout and "points: 60 epochs" in one.stdout


def test_one_reader_per_thread_whatever_the_row_groups(tmp_path, monkeypatch):
    """A file of 1-row row groups is opened once per reading thread, not once per row group; the row groups of a
    block are decoded together."""
    n = 300
    X = np.random.default_rng(0).standard_normal((n, 2))
    path = write_parquet(tmp_path / "tiny.parquet", {"a": X[:, 0], "b": X[:, 1], "y": np.arange(n) % 2}, 1)
    opened, original = [], parquet_module._parquet_file
    monkeypatch.setattr(parquet_module, "_parquet_file", lambda *args: opened.append(args) or original(*args))
    X_disk, Y_disk = open_parquet(path, dtype=torch.float64)
    for start in range(0, n, 64):
        assert torch.equal(X_disk[start : start + 64], torch.from_numpy(X[start : start + 64]))
    assert len(opened) == 1
    barrier = threading.Barrier(2)

    def read(start):
        barrier.wait()  # both threads read
        return X_disk[start : start + 150]

    with ThreadPoolExecutor(2) as pool:  # threads of their own: a reader each
        assert torch.equal(torch.cat(list(pool.map(read, (0, 150)))), torch.from_numpy(X))
    assert len(opened) == 3


def test_copies_read_on_their_own(table):
    """A copy (deepcopy, pickle) reads its rows by path, whatever becomes of the original and its readers."""
    path, X, Y = table
    X_disk, Y_disk = open_parquet(path, rows=(3, 25), dtype=torch.float64, label="y")
    X_disk[0:4]  # the original has a reader and kept rows
    copies = [copy.deepcopy(X_disk), pickle.loads(pickle.dumps(X_disk)), copy.copy(X_disk)]
    del X_disk
    gc.collect()
    for X_copy in copies:
        assert repr(X_copy).endswith("rows=(3, 25), dtype=torch.float64)")
        assert torch.equal(X_copy[:], X[3:25]) and torch.equal(X_copy[5:9], X[8:12])
    assert torch.equal(pickle.loads(pickle.dumps(Y_disk))[:], Y[3:25])


@pytest.mark.parametrize("name", ["data.PARQUET", "data.pq", "data"])
def test_parquet_is_known_by_its_content(tmp_path, name, capsys):
    """A Parquet file of any name is read as Parquet, by --data, by --csv and by convert; a CSV file named .parquet
    is read as CSV, and a pipe is left unread."""
    from torch_shallow.cli import main
    from torch_shallow.parquet import is_parquet

    X, Y = planar()
    path = tmp_path / name
    pq.write_table(pa.table({"u": X[:, 0].numpy(), "v": X[:, 1].numpy(), "y": Y[:, 0].numpy()}), path)
    assert is_parquet(path)
    outputs = []
    for source in ("--data", "--csv"):
        assert main(["train", source, str(path), "--epochs", "20", "--no-log"]) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr().out.split(": ", 1)[1])
    assert outputs[0] == outputs[1]
    assert main(["convert", str(path), str(tmp_path / "npy")]) == 0
    assert torch.equal(open_npy(tmp_path / "npy")[0][:], X)
    csv = tmp_path / "text.parquet"
    csv.write_text("u,v,y\n1,2,0\n3,4,1\n")
    assert not is_parquet(csv) and not is_parquet(tmp_path / "missing") and not is_parquet(tmp_path)
    assert main(["convert", str(csv), str(tmp_path / "from-text")]) == 0


def test_is_parquet_leaves_a_pipe_unread(tmp_path):
    from torch_shallow.parquet import is_parquet

    read, write = os.pipe()
    try:
        os.write(write, b"PAR1")
        assert not is_parquet(f"/dev/fd/{read}")
        assert os.read(read, 4) == b"PAR1"
    finally:
        os.close(read)
        os.close(write)


def test_csv_chunks_name_a_parquet_file(table):
    path, _, _ = table
    with pytest.raises(ValueError, match="is a Parquet file, not CSV text"):
        next(csv_chunks(path))


def test_softmax_on_parquet_serves_one_hot_rows(tmp_path, capsys):
    """Class numbers 0..K-1 of a Parquet file are served block by block as one-hot rows (n, K), K from the whole
    file whatever the rows asked for, the same as training on the tensors."""
    from torch_shallow.cli import main

    rng = np.random.default_rng(0)
    X, classes = rng.standard_normal((90, 2)), np.arange(90) % 3
    path = write_parquet(tmp_path / "three.parquet", {"a": X[:, 0], "b": X[:, 1], "y": classes}, 16)
    X_disk, Y_disk = open_parquet(path, rows=(0, 20), dtype=torch.float64, output="softmax")
    assert Y_disk.shape == (20, 3) and Y_disk.dtype == torch.float64
    assert torch.equal(Y_disk[3:19], torch.nn.functional.one_hot(torch.from_numpy(classes[3:19]), 3).double())
    assert torch.equal(pickle.loads(pickle.dumps(Y_disk))[:], Y_disk[:])
    assert main(["train", "--data", str(path), "--output", "softmax", "--epochs", "5", "--no-log"]) == 0
    disk = capsys.readouterr().out.split(": ", 1)[1]
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "y": classes.astype(float)}), tmp_path / "three.csv.pq")
    assert (
        main(["train", "--csv", str(tmp_path / "three.csv.pq"), "--output", "softmax", "--epochs", "5", "--no-log"])
        == 0
    )
    assert capsys.readouterr().out.split(": ", 1)[1] == disk


@pytest.mark.parametrize(
    "label, message",
    [
        (100_000_000, "row 7: a label must be a class number 0, 1, ..., 65535 for softmax outputs, got 100000000"),
        (1.5, "row 7: a label must be a class number .* got 1.5"),
        (-1, "row 7: a label must be a class number .* got -1"),
    ],
)
def test_softmax_labels_on_parquet_are_checked_before_any_one_hot_row(tmp_path, label, message):
    classes = (np.arange(20) % 3).astype(np.float64)
    classes[7] = label
    path = write_parquet(tmp_path / "bad.parquet", {"a": np.zeros(20), "y": classes}, 5)
    with pytest.raises(ValueError, match=f"bad.parquet: column 'y': {message}"):
        open_parquet(path, output="softmax")
    with pytest.raises(ValueError, match="row 7: label column 'y' must be a class number"):
        parquet_to_npy(path, tmp_path / "npy", output="softmax")
    assert not (tmp_path / "npy").exists()  # made for the files, removed with them


def test_parquet_real_labels_for_identity(tmp_path):
    y = np.array([0.25, -3.0, 1e30, 7.0])
    path = write_parquet(tmp_path / "real.parquet", {"a": np.arange(4.0), "y": y}, 2)
    parquet_to_npy(path, tmp_path / "npy", output="identity")
    assert np.array_equal(np.load(tmp_path / "npy" / "Y.npy"), y.astype(np.float32))
    with pytest.raises(ValueError, match="must be 0 or 1, got 0.25"):
        parquet_to_npy(path, tmp_path / "binary")
    with pytest.raises(ValueError, match="row 2: 1e\\+30 in column 'y' is too large for float16"):
        parquet_to_npy(path, tmp_path / "half", dtype=np.float16, output="identity")
