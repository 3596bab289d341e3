"""Full-batch gradient descent over several processes with ``torch.distributed``.

Each rank holds a contiguous shard of the rows, and the shards may be uneven. The cost and its gradient are sums
over samples, each divided by the global n, so the ranks' parts computed with the global n add up to the exact
full-batch values: one ``all_reduce(SUM)`` gives every rank the same J and ∇J, and every rank takes the same step.
(DistributedDataParallel averages per-rank means instead, which is wrong for uneven shards.)
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [start, stop) of rank ``rank`` among ``size``: contiguous, as even as n allows."""
    return n * rank // size, n * (rank + 1) // size


def init_from_environment(device: torch.device, timeout_s: float) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...),
    with Gloo on CPU and NCCL on GPU. Returns whether this is a distributed run of more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def all_reduce_sum_(tensors: list[Tensor]) -> None:
    """Sum each tensor over the ranks, in place, in one collective call over one flat buffer."""
    if world()[1] == 1:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    torch._foreach_copy_(
        tensors, [part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]
    )


def broadcast_(tensors: list[Tensor]) -> None:
    """Give every rank rank 0's values of ``tensors`` (the parameters), so that all of them start from the same θ."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t, src=0)
