"""Run with ``python peak_memory.py METHOD N D D1 BLOCK``: prints the peak resident memory, in MiB, of one full-batch
cost + gradient above what the process held with the data. Linux: writing 5 to /proc/self/clear_refs resets the
peak (VmHWM) to the current resident size."""

import sys
from pathlib import Path

import torch

from torch_shallow import ShallowNet

from reference import cost as reference_cost


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


method, n, d, d1, block_rows = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
X, Y = torch.randn(n, d, generator=g), (torch.rand(n, 1, generator=g) > 0.5).float()
net = ShallowNet(d, d1)
params = list(net.parameters())
Path("/proc/self/clear_refs").write_text("5")
before = status_kib("VmRSS")
if method == "torch_shallow":
    torch.autograd.grad(net.cost(X, Y, block_rows=block_rows), params)
else:
    torch.autograd.grad(reference_cost(X, Y, *params), params)
print((status_kib("VmHWM") - before) / 1024)
