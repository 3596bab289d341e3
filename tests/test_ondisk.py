"""csv_to_npy and the on-disk data it writes: one pass, pipes, the .npy format, atomic replacement."""

import copy
import errno
import gc
import io
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from test_data import oracle, same_bits, write_csv

from torch_shallow import NpyRows, csv_to_npy, open_npy
from torch_shallow.data import BLOCK_SIZE
from torch_shallow.ondisk import _npy_header

CONVERT = [sys.executable, "-m", "torch_shallow", "convert"]


def assert_converted(directory, path, k, dtype):
    """X.npy and Y.npy in ``directory`` hold the oracle's values, bit for bit, in valid version 1.0 .npy files."""
    X_ref, y_ref = oracle(path, k, dtype)
    assert sorted(os.listdir(directory)) == ["X.npy", "Y.npy"]  # no temporaries left
    for name, expected in (("X.npy", X_ref), ("Y.npy", y_ref)):
        with open(directory / name, "rb") as f:
            assert np.lib.format.read_magic(f) == (1, 0)
            shape, fortran_order, stored = np.lib.format.read_array_header_1_0(f)
            offset = f.tell()
        assert (shape, fortran_order, stored) == (expected.shape, False, expected.dtype)
        assert offset % 64 == 0 and os.path.getsize(directory / name) == offset + expected.nbytes
        assert same_bits(np.load(directory / name), expected)
    X, Y = open_npy(directory, dtype=torch.float64)
    assert torch.equal(X[:], torch.from_numpy(X_ref).double()) and torch.equal(Y[:], torch.from_numpy(y_ref)[:, None])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("shape", [(1,), (sys.maxsize,), (2, 1), (sys.maxsize, sys.maxsize)])
def test_npy_header_has_room_for_the_final_shape(dtype, shape):
    header = _npy_header(np.dtype(dtype), shape)
    assert len(header) == len(_npy_header(np.dtype(dtype), (0,) * len(shape)))  # the placeholder's length
    f = io.BytesIO(header)
    assert np.lib.format.read_magic(f) == (1, 0)
    assert np.lib.format.read_array_header_1_0(f) == (shape, False, np.dtype(dtype))
    assert f.tell() == len(header) and len(header) % 64 == 0


@pytest.mark.parametrize("block_size", [50, 700, BLOCK_SIZE])  # rows of about 90 bytes: 1, about 8, all a block
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convert_matches_numpy_bit_for_bit(tmp_path, block_size, dtype):
    path = write_csv(tmp_path / "data.csv", n=100, d=3, label_column=0)
    assert csv_to_npy(path, tmp_path / "new" / "data", label="y", dtype=dtype, block_size=block_size) == 100
    assert_converted(tmp_path / "new" / "data", path, 0, dtype)


def test_convert_reads_stdin_in_one_pass(tmp_path):
    path = write_csv(tmp_path / "data.csv", n=50, d=2)
    result = subprocess.run(
        [*CONVERT, "/dev/stdin", str(tmp_path / "data")],
        input=path.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "50 rows written" in result.stdout
    assert_converted(tmp_path / "data", path, 2, np.float32)


def test_convert_reads_a_fifo(tmp_path):
    path = write_csv(tmp_path / "data.csv", n=40, d=2)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(path.read_text()), daemon=True)  # waits for a reader
    writer.start()
    # in a process of its own, so that a second pass, waiting for a writer that is gone, ends at the timeout
    result = subprocess.run([*CONVERT, str(fifo), str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    writer.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert_converted(tmp_path / "data", path, 2, np.float32)


@pytest.fixture
def old_data(tmp_path):
    """A data directory from an earlier conversion, and its files' bytes."""
    csv_to_npy(write_csv(tmp_path / "old.csv", n=10, d=2), tmp_path / "data")
    return tmp_path / "data", {name: (tmp_path / "data" / name).read_bytes() for name in ("X.npy", "Y.npy")}


def assert_untouched(old_data):
    directory, contents = old_data
    assert sorted(os.listdir(directory)) == ["X.npy", "Y.npy"]  # the temporaries are gone
    assert all((directory / name).read_bytes() == data for name, data in contents.items())


def test_convert_failure_leaves_the_old_files(tmp_path, old_data):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(98)) + "1,2,3\n4,5,0\n")
    with pytest.raises(ValueError, match="bad.csv:100: label column 'y' must be 0 or 1"):
        csv_to_npy(path, old_data[0], block_size=64)  # many blocks written before the bad row
    assert_untouched(old_data)


def test_convert_write_error_leaves_the_old_files(tmp_path, old_data):
    limit = 64 * 1024
    path = write_csv(tmp_path / "big.csv", n=limit // 8 + 1000, d=2)  # X.npy: 8 bytes a row in float32
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [*CONVERT, str(path), str(old_data[0])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    # Python ignores SIGXFSZ, so the write past the limit fails with EFBIG
    assert result.returncode != 0 and os.strerror(errno.EFBIG) in result.stderr, result.stderr
    assert_untouched(old_data)


def test_convert_interrupted_leaves_the_old_files(tmp_path, old_data):
    directory = old_data[0]
    # Ctrl-C as a terminal sends it, whatever this process inherited: a job started in the background of a
    # non-interactive shell has SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    process = subprocess.Popen(
        [*CONVERT, "/dev/stdin", str(directory)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        process.stdin.write("a,y\n" + "1,0\n" * 100)  # then waits, reading, for the rest of its first chunk
        process.stdin.flush()
        deadline = time.monotonic() + 60  # a bound on the wait, not a check of the time taken
        while len(os.listdir(directory)) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until its temporaries exist
        assert len(os.listdir(directory)) == 4, "no temporaries" if process.poll() is None else process.stderr.read()
        process.send_signal(signal.SIGINT)
        process.stdin.close()
        assert process.wait(timeout=60) != 0
    finally:
        process.kill()
    assert_untouched(old_data)


def test_no_rows_on_disk_is_an_error(tmp_path):
    np.save(tmp_path / "X.npy", np.empty((0, 3), dtype=np.float32))
    np.save(tmp_path / "Y.npy", np.empty(0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"X.npy holds no rows"):
        open_npy(tmp_path)
    with pytest.raises(ValueError, match=r"Y.npy holds no rows"):
        NpyRows(tmp_path / "Y.npy")


def test_copies_read_their_own_file(tmp_path):
    """A copy of NpyRows opens the file again: freeing the original, whose descriptor number another file then
    gets, changes nothing that the copy reads."""
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "other.npy", -X)
    original = NpyRows(tmp_path / "X.npy", rows=(2, 18))
    copies = [copy.deepcopy(original), pickle.loads(pickle.dumps(original)), copy.copy(original)]
    assert all(c._fd != original._fd for c in copies)
    del original
    gc.collect()
    other = NpyRows(tmp_path / "other.npy")  # may take the freed descriptor's number
    for rows in copies:
        assert repr(rows) == f"NpyRows({str(tmp_path / 'X.npy')!r}, rows=(2, 18), dtype=torch.float32)"
        assert torch.equal(rows[:], torch.from_numpy(X[2:18])) and torch.equal(rows[3:5], torch.from_numpy(X[5:7]))
    assert torch.equal(other[0:1], torch.from_numpy(-X[:1]))


def test_a_copy_of_a_file_that_changed_is_refused(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((20, 2), dtype=np.float32))
    state = pickle.dumps(NpyRows(tmp_path / "X.npy"))
    np.save(tmp_path / "X.npy", np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"X.npy holds \(10, 2\) values now, not the \(20, 2\) it held when copied"):
        pickle.loads(state)


def test_big_endian_files_are_refused_by_name(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((4, 2), dtype=">f4"))
    np.save(tmp_path / "Y.npy", np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"X.npy: the numbers are big-endian \(>f4\); expected little-endian .*'<f4'"):
        open_npy(tmp_path)


def test_x_and_y_of_different_lengths_are_refused_by_name(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((10, 2), dtype=np.float32))
    np.save(tmp_path / "Y.npy", np.zeros(7, dtype=np.float32))
    for rows in (None, (0, 10), (5, 10)):  # a shard past Y.npy's end too
        with pytest.raises(ValueError, match="X.npy has 10 rows but Y.npy has 7; expected one label per row"):
            open_npy(tmp_path, rows)


def test_a_truncated_file_is_refused(tmp_path):
    np.save(tmp_path / "X.npy", np.arange(20, dtype=np.float32).reshape(10, 2))
    X = NpyRows(tmp_path / "X.npy")
    with open(tmp_path / "X.npy", "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "X.npy") - 4)  # the last value cut off
    with pytest.raises(ValueError, match=r"X.npy: the file ends before row 10; it is truncated"):
        X[8:10]  # cut after it was opened: the read finds it
    assert torch.equal(X[:9], torch.arange(18.0).reshape(9, 2))
    with pytest.raises(ValueError, match=r"announces \(10, 2\) values of float32, 208 bytes .* holds 204; it is trunc"):
        NpyRows(tmp_path / "X.npy")  # cut before: opening finds it


def test_files_are_on_disk_before_they_are_renamed(tmp_path, monkeypatch):
    """Each temporary is fsynced before os.replace makes it X.npy or Y.npy, so that a crash never leaves a
    renamed file whose data is not on disk."""
    events = []
    fsync, replace = os.fsync, os.replace

    def traced_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def traced_replace(source, target):
        events.append(("replace", str(source)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", traced_fsync)
    monkeypatch.setattr(os, "replace", traced_replace)
    csv_to_npy(write_csv(tmp_path / "d.csv", n=10, d=2), tmp_path / "data")
    replaced = [path for event, path in events if event == "replace"]
    assert len(replaced) == 2 and all(".tmp" in path for path in replaced)
    for path in replaced:
        assert events.index(("fsync", path)) < events.index(("replace", path))
    assert events[-1] == ("fsync", str(tmp_path / "data"))  # and the renames, after them


def test_a_failed_conversion_removes_the_directories_it_made(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n1,0\n2,5\n")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        csv_to_npy(bad, tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()
    (tmp_path / "there").mkdir()
    with pytest.raises(ValueError, match="must be 0 or 1"):
        csv_to_npy(bad, tmp_path / "there")
    assert (tmp_path / "there").is_dir() and not any((tmp_path / "there").iterdir())  # it was there before


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_convert_softmax_writes_class_numbers_served_one_hot(tmp_path, dtype):
    """Class numbers are written exactly as int32 (float16 would round 2049 to 2048), served as one-hot rows of
    K = the largest class + 1 columns, the same on every shard; the command line trains on them."""
    labels = np.array([0, 2049, 1, 2, 0, 1, 2, 0, 1, 2] * 3)
    lines = "".join(f"{i * 0.5},{i % 3},{c}\n" for i, c in enumerate(labels))
    (tmp_path / "k.csv").write_text("a,b,y\n" + lines)
    assert csv_to_npy(tmp_path / "k.csv", tmp_path / "npy", dtype=dtype, output="softmax") == 30
    y = np.load(tmp_path / "npy" / "Y.npy")
    assert y.dtype == np.int32 and np.array_equal(y, labels)
    X, Y = open_npy(tmp_path / "npy", rows=(10, 20), dtype=torch.float64, output="softmax")
    assert Y.shape == (10, 2050) and torch.equal(
        Y[2:7], torch.nn.functional.one_hot(torch.tensor(labels[12:17]), 2050).double()
    )


def test_the_command_line_trains_softmax_on_npy(tmp_path, capsys):
    from torch_shallow.cli import main

    rng = np.random.default_rng(0)
    X, classes = rng.standard_normal((60, 2)), np.arange(60) % 3
    text = "a,b,y\n" + "".join(f"{float(a)!r},{float(b)!r},{c}\n" for (a, b), c in zip(X, classes))
    (tmp_path / "k.csv").write_text(text)
    assert main(["convert", str(tmp_path / "k.csv"), str(tmp_path / "npy"), "--output", "softmax"]) == 0
    capsys.readouterr()
    outputs = []
    for source in (["--data", str(tmp_path / "npy")], ["--csv", str(tmp_path / "k.csv")]):
        assert main(["train", *source, "--output", "softmax", "--epochs", "5", "--no-log"]) == 0
        outputs.append(capsys.readouterr().out.split(": ", 1)[1])
    assert outputs[0] == outputs[1]
    assert main(["convert", str(tmp_path / "k.csv"), str(tmp_path / "binary")]) == 2
    assert "label column 'y' must be 0 or 1, got '2'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            [0, 1, 100_000_000, 2],
            "Y.npy: row 2: a label must be a class number 0, 1, ..., 65535 for softmax outputs, got 1",
        ),
        ([0, 1, 0.5, 2], "Y.npy: row 2: a label must be a class number .* got 0.5"),
        ([0, 0, 0, 0], "Y.npy: softmax outputs need labels of at least 2 classes 0..K-1, got only class 0"),
    ],
)
def test_softmax_labels_on_disk_are_checked_before_any_one_hot_row(tmp_path, labels, message):
    np.save(tmp_path / "X.npy", np.zeros((4, 2), dtype=np.float32))
    np.save(tmp_path / "Y.npy", np.array(labels, dtype=np.float64))
    with pytest.raises(ValueError, match=message):
        open_npy(tmp_path, rows=(0, 1), output="softmax")


def test_convert_real_labels_for_identity(tmp_path):
    (tmp_path / "r.csv").write_text("a,y\n1,0.25\n2,-3e5\n3,7\n")
    csv_to_npy(tmp_path / "r.csv", tmp_path / "npy", output="identity")
    assert np.array_equal(np.load(tmp_path / "npy" / "Y.npy"), np.array([0.25, -3e5, 7], dtype=np.float32))
    (tmp_path / "big.csv").write_text("a,y\n1,0.25\n2,1e300\n")
    with pytest.raises(ValueError, match="big.csv:3: 1e\\+300 is too large for float32"):
        csv_to_npy(tmp_path / "big.csv", tmp_path / "npy2", output="identity")
