"""Past one process: exact full-batch training over gloo ranks with uneven shards, and data on disk."""

import datetime
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torch_shallow import NpyRows, ShallowNet, TrainConfig, fit, open_npy, planar
from torch_shallow.distributed import shard

EPOCHS = 40


def seeded_net(seed, dtype=torch.float64):
    net = ShallowNet(2, 4, dtype=dtype)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


def data(n):
    X, Y = planar(dtype=torch.float64)
    return X[:n], Y[:n]


def train_rank(rank, size, n, rendezvous, out):
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=size, timeout=datetime.timedelta(seconds=60)
    )
    try:
        X, Y = data(n)
        start, stop = shard(n, rank, size)
        net = seeded_net(seed=rank)  # other ranks start elsewhere: fit must give them rank 0's θ
        history = fit(net, X[start:stop], Y[start:stop], TrainConfig(max_epochs=EPOCHS, tol=0))
        torch.save({"history": history, "state": net.state_dict()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def run_ranks(target, size, *args, timeout=120) -> list[int]:
    """Start ``size`` processes running target(rank, size, *args) and wait for all of them; their exit codes.

    Plain processes, not ``torch.multiprocessing.spawn``, whose join terminates the others as soon as one fails:
    here each rank must stop by itself."""
    context = mp.get_context("spawn")
    processes = [context.Process(target=target, args=(rank, size, *args)) for rank in range(size)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.join(timeout=max(deadline - time.monotonic(), 0))
        assert not any(process.is_alive() for process in processes), "a rank was still running at the timeout"
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    return [process.exitcode for process in processes]


@pytest.mark.parametrize("size, n", [(2, 397), (3, 400)])  # 198 + 199 rows; 133 + 133 + 134 rows
def test_ranks_train_exactly_as_one_process(tmp_path, size, n):
    X, Y = data(n)
    net = seeded_net(seed=0)
    expected = fit(net, X, Y, TrainConfig(max_epochs=EPOCHS, tol=0))
    assert run_ranks(train_rank, size, n, tmp_path / "rendezvous", str(tmp_path / "result")) == [0] * size
    for rank in range(size):
        result = torch.load(tmp_path / f"result.{rank}", weights_only=False)
        torch.testing.assert_close(
            torch.tensor(result["history"].costs), torch.tensor(expected.costs), rtol=1e-6, atol=0
        )
        assert result["history"].train_accuracy == expected.train_accuracy
        for name, p in net.state_dict().items():
            torch.testing.assert_close(result["state"][name], p, rtol=1e-6, atol=1e-9)


class FailingRows:
    """Rows of a tensor that raise on the k-th read: a rank whose disk fails in the middle of training."""

    def __init__(self, X, k):
        self.X, self.shape, self.device, self.reads, self.k = X, X.shape, X.device, 0, k

    def __getitem__(self, rows):
        self.reads += 1
        if self.reads == self.k:
            raise OSError("the disk went away")
        return self.X[rows]


# Longer than the test waits for the ranks: a rank that stops only at its own collective timeout fails the test.
FAILING_RANK_TIMEOUT_S = 300


def failing_rank(rank, size, rendezvous, out):
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=size,
        timeout=datetime.timedelta(seconds=FAILING_RANK_TIMEOUT_S),
    )
    X, Y = data(400)
    start, stop = shard(400, rank, size)
    X, Y = X[start:stop], Y[start:stop]
    if rank == 1:
        X, Y = FailingRows(X, k=10), FailingRows(Y, k=10**9)
    try:
        fit(seeded_net(0), X, Y, TrainConfig(max_epochs=10_000, tol=0))
    except Exception as error:
        Path(f"{out}.{rank}").write_text(f"{type(error).__name__}: {error}")
        raise SystemExit(1)
    finally:
        dist.destroy_process_group()


def test_a_failing_rank_stops_the_others(tmp_path):
    """Rank 1 fails at its 10th read; rank 0, waiting in all_reduce, must stop with an error, not hang. Its own
    collective timeout is past the deadline of run_ranks, so only the failure reaching it stops it in time."""
    codes = run_ranks(
        failing_rank, 2, tmp_path / "rendezvous", str(tmp_path / "error"), timeout=FAILING_RANK_TIMEOUT_S // 3
    )
    assert all(code != 0 for code in codes)  # 1, or gloo's abort while the failed rank tears its group down
    assert "the disk went away" in (tmp_path / "error.1").read_text()
    assert (tmp_path / "error.0").read_text()  # rank 0's own error: the peer is gone


def save_npy(directory, X, Y):
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "X.npy", X.numpy())
    np.save(directory / "Y.npy", Y.numpy())


def test_on_disk_run_equals_in_memory_run(tmp_path):
    X, Y = planar()
    save_npy(tmp_path, X, Y)
    expected = fit(seeded_net(0, torch.float32), X, Y, TrainConfig(max_epochs=300, tol=0))
    X_disk, Y_disk = open_npy(tmp_path)
    assert isinstance(X_disk, NpyRows)
    assert fit(seeded_net(0, torch.float32), X_disk, Y_disk, TrainConfig(max_epochs=300, tol=0)) == expected


def test_on_disk_shards_read_their_own_rows(tmp_path):
    X, Y = planar()
    save_npy(tmp_path, X, Y)
    X_disk, Y_disk = open_npy(tmp_path, rows=(133, 266))
    assert X_disk.shape == (133, 2) and torch.equal(X_disk[10:20], X[143:153])
    assert torch.equal(Y_disk[0:133], Y[133:266])
    with pytest.raises(ValueError, match="outside the file's 400 rows"):
        open_npy(tmp_path, rows=(300, 500))


def test_on_disk_checks_name_the_rows(tmp_path):
    X, Y = planar()
    X[250, 1] = float("nan")
    save_npy(tmp_path, X, Y)
    with pytest.raises(ValueError, match="NaN.*rows from 0"):
        fit(seeded_net(0, torch.float32), *open_npy(tmp_path), TrainConfig(max_epochs=1))


PEAK = """
import sys
from pathlib import Path
import torch
from torch_shallow import ShallowNet, open_npy

def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))

X, Y = open_npy(sys.argv[1])
net = ShallowNet(X.shape[1], 64)
net.cost_and_grad(X, Y, block_rows=4096, check_inputs=False)  # a first epoch sets up threads and allocators
Path("/proc/self/clear_refs").write_text("5")
before = kib("VmRSS")
net.cost_and_grad(X, Y, block_rows=4096, check_inputs=False)
print((kib("VmHWM") - before) / 1024)
"""


def test_on_disk_epoch_memory_is_bounded_by_the_block(tmp_path):
    """A 2,000,000 × 8 float32 file is 61 MiB; one epoch over it holds a few 4096-row blocks at a time."""
    n, d = 2_000_000, 8
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.standard_normal((n, d), dtype=np.float32))
    np.save(tmp_path / "Y.npy", (rng.random(n) > 0.5).astype(np.float32))
    out = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    file_mib = n * d * 4 / 2**20
    assert float(out.stdout.split()[-1]) < file_mib / 4
