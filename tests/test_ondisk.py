"""csv_to_npy and the on-disk data it writes: one pass, pipes, the .npy format, atomic replacement."""

import errno
import io
import os
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
