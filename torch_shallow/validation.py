"""Checks at the boundary, where a user's tensors enter: each error names the argument, what was expected
and what came, so that bad input fails here and not as a NaN epochs later or deep inside PyTorch.

Value checks (NaN, inf, labels outside [0, 1]) read the data and synchronise with the device, so they run in
plain eager mode only (:mod:`~torch_shallow.tracing`); under ``torch.compile``, ``torch.export``,
``torch.jit.trace`` and the ``torch.func`` transforms the shape, dtype and device checks still hold.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor

from .activations import get_activation
from .distributed import all_reduce_sum_, world
from .parallel import intra_op_threads
from .tracing import plain_eager

if TYPE_CHECKING:
    from .fingerprint import Fingerprint
    from .module import ShallowNet
    from .ondisk import NpyRows


def _describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def _require_tensor(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


# The value checks read the data on one intra-op thread: a parallel reduction would leave OpenMP's helper threads
# spinning, for milliseconds, on the cores that the cost's pass over the rows is about to use (see parallel.py).


def _all_finite(t: Tensor) -> bool:
    """Whether t holds no NaN or inf. NaN and inf propagate through a sum, so one fast reduction clears the
    common case; only a sum that is not finite (which a sum of huge finite values can also be) needs the
    element-wise check, 20 times slower on large data."""
    t = t.detach()  # a check joins no autograd graph
    with intra_op_threads(1):
        return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_parameters(W1: Tensor, b1: Tensor | None, W2: Tensor, b2: Tensor | None) -> None:
    """θ = (W1 (d1, d), b1 (d1,), W2 (d2, d1), b2 (d2,)): consistent shapes, one floating dtype, one device. A bias
    may be None: a layer without one."""
    for name, t in (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2)):
        if t is not None or name in ("W1", "W2"):
            _require_tensor(name, t)
    if W1.dim() != 2 or W2.dim() != 2:
        raise ValueError(f"W1 and W2 must be 2-D, got W1 of shape {tuple(W1.shape)}, W2 of shape {tuple(W2.shape)}")
    d1, d2 = W1.shape[0], W2.shape[0]
    expected = {"b1": (d1,), "W2": (d2, d1), "b2": (d2,)}
    present = [(name, t) for name, t in (("b1", b1), ("W2", W2), ("b2", b2)) if t is not None]
    for name, t in present:
        if tuple(t.shape) != expected[name]:
            raise ValueError(
                f"{name} must have shape {expected[name]} to match W1 {tuple(W1.shape)}, got {tuple(t.shape)}"
            )
    if not W1.is_floating_point():
        raise TypeError(f"parameters must be floating point, got W1 of dtype {W1.dtype}")
    for name, t in present:
        if t.dtype != W1.dtype or t.device != W1.device:
            raise TypeError(
                f"parameters must share one dtype and device: W1 has dtype {W1.dtype} on {W1.device}, "
                f"{name} has dtype {t.dtype} on {t.device}"
            )


def check_features(X: Tensor, W1: Tensor) -> None:
    """X must be a finite floating (n, d) tensor with n ≥ 1, on W1's device and in W1's dtype."""
    _require_tensor("X", X)
    if not X.is_floating_point():
        raise TypeError(f"X must be a floating-point tensor, got dtype {X.dtype}; convert it with X.to({W1.dtype})")
    if X.dim() != 2:
        raise ValueError(f"X must be 2-D (n samples, d = {W1.shape[1]} features), got {_describe(X)}")
    if X.shape[0] == 0:
        raise ValueError(f"X must hold at least one sample, got {_describe(X)}")
    if X.shape[1] != W1.shape[1]:
        raise ValueError(
            f"X must have d = {W1.shape[1]} features (columns) to match W1 {tuple(W1.shape)}, got {_describe(X)}"
        )
    if X.device != W1.device:
        raise ValueError(f"X is on {X.device} but the parameters are on {W1.device}; move one with .to()")
    if X.dtype != W1.dtype:
        raise TypeError(f"X has dtype {X.dtype} but the parameters have {W1.dtype}; convert one with .to()")
    if plain_eager() and not _all_finite(X):
        raise ValueError(f"X contains NaN or inf ({_describe(X)})")


def check_targets(Y: Tensor, Z2_shape: tuple[int, int], like: Tensor, output: str = "sigmoid") -> Tensor:
    """Y holds labels in [0, 1] of shape (n, d2), or (n,) when d2 = 1; for softmax outputs, each row a
    probability distribution over the d2 classes (one-hot, or soft labels summing to 1); for identity outputs, any
    finite real numbers.

    Returns Y as an (n, d2) tensor in ``like``'s dtype: labels given as bool or integer tensors are converted,
    since 0 and 1 are exact in every floating dtype.
    """
    _require_tensor("Y", Y)
    n, d2 = Z2_shape
    if Y.dim() == 1 and d2 == 1:
        Y = Y.unsqueeze(1)
    if tuple(Y.shape) != (n, d2):
        expected = f"({n}, {d2})" + (f" or ({n},)" if d2 == 1 else "")
        raise ValueError(f"Y must have shape {expected} to match X and the output size, got {_describe(Y)}")
    if Y.device != like.device:
        raise ValueError(f"Y is on {Y.device} but X and the parameters are on {like.device}; move one with .to()")
    if Y.is_complex():
        raise TypeError(f"Y must hold real labels, got dtype {Y.dtype}")
    Y = Y.detach().to(like.dtype)
    if plain_eager():
        with intra_op_threads(1):
            low, high = (v.item() for v in torch.aminmax(Y))  # NaN propagates into both
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"Y contains NaN or inf ({_describe(Y)})")
        if output != "identity" and (low < 0 or high > 1):
            raise ValueError(f"Y must hold labels in [0, 1]; got values from {low} to {high}")
        if output == "softmax":
            with intra_op_threads(1):
                worst = (Y.sum(-1, dtype=torch.float64) - 1).abs().max().item()
            if worst > 1e-3:  # soft labels rounded to float16 still sum to 1 within this
                raise ValueError(
                    f"Y's rows must sum to 1 for softmax outputs (one-hot or class probabilities); "
                    f"a row sums to {1 + worst:g} or {1 - worst:g}"
                )
    return Y


def check_net_inputs(X: Tensor, W1: Tensor, b1: Tensor | None, W2: Tensor, b2: Tensor | None, activation: str) -> None:
    """The checks of the network's inputs: activation, parameters, X."""
    get_activation(activation)
    check_parameters(W1, b1, W2, b2)
    check_features(X, W1)


def check_output(output: str, d2: int) -> None:
    if output not in ("sigmoid", "softmax", "identity"):
        raise ValueError(f"output must be 'sigmoid', 'softmax' or 'identity', got {output!r}")
    if output == "softmax" and d2 < 2:
        raise ValueError(f"softmax outputs need at least 2 classes (out_features), got {d2}")


def check_cost_inputs(
    X: Tensor,
    Y: Tensor,
    W1: Tensor,
    b1: Tensor | None,
    W2: Tensor,
    b2: Tensor | None,
    activation: str,
    block_rows: int | None,
    output: str = "sigmoid",
) -> Tensor:
    """The checks of the cost's inputs; returns Y as (n, d2) in X's dtype (see :func:`check_targets`)."""
    check_net_inputs(X, W1, b1, W2, b2, activation)
    check_output(output, W2.shape[0])
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1):
        raise ValueError(f"block_rows must be a positive integer or None, got {block_rows!r}")
    check_labels_need_no_gradient(isinstance(Y, Tensor) and Y.requires_grad)
    return check_targets(Y, (X.shape[0], W2.shape[0]), like=X, output=output)


def check_labels_need_no_gradient(requires_grad: bool) -> None:
    """Y is data: asking for its gradient is an error, not a silent None."""
    if requires_grad:
        raise ValueError("Y requires a gradient, but the labels are data and get none; pass Y.detach()")


# The training data, checked once before the first epoch ------------------------------------------------------------


def rows_over_ranks(X: Tensor | NpyRows, model: ShallowNet) -> tuple[int, int]:
    """(n, first row): the number of samples over all ranks, and where this rank's shard starts among them."""
    if not hasattr(X, "shape") or len(X.shape) != 2:
        raise TypeError(f"X must be a 2-D tensor or on-disk rows (NpyRows), got {type(X).__name__}")
    rank, size = world()
    counts = torch.zeros(size, dtype=torch.float64, device=model.W1.device)
    counts[rank] = X.shape[0]
    all_reduce_sum_([counts])
    n, first_row = int(counts.sum().item()), int(counts[:rank].sum().item())
    if n == 0:
        raise ValueError(f"X holds no rows: {X!r}")
    return n, first_row


def check_training_data(
    X: Tensor | NpyRows, Y: Tensor | NpyRows, model: ShallowNet, fingerprint: Fingerprint | None, first_row: int
) -> Tensor | NpyRows:
    """Check (X, Y) once and add them to ``fingerprint``; returns Y as (n, d2) in X's dtype. On-disk data is read
    through once, block by block, for both. A rank's shard may be empty where other ranks hold the rows."""
    from .functional import auto_block_rows, row_blocks  # which imports this module

    if isinstance(X, Tensor) and isinstance(Y, Tensor) and X.shape[0] == 0 and world()[1] > 1:
        # an empty shard (more ranks than rows): nothing to check but its shape; the other ranks hold the rows
        if X.dim() != 2 or X.shape[1] != model.in_features or Y.shape[0] != 0:
            raise ValueError(
                f"an empty shard must be X (0, {model.in_features}) with an empty Y, got X "
                f"{tuple(X.shape)} and Y {tuple(Y.shape)}"
            )
        return Y.reshape(0, model.out_features).to(X.dtype)
    block_rows = auto_block_rows(model.W1)
    shape, output = (X.shape[0], model.out_features), model.output
    if isinstance(X, Tensor) and isinstance(Y, Tensor):
        check_features(X, model.W1)
        Y = check_targets(Y, shape, like=X, output=output)
        checked = True
    elif X.shape[1] != model.in_features or Y.shape != shape:
        raise ValueError(
            f"on-disk data of shapes X {X.shape}, Y {Y.shape} does not fit the model: expected "
            f"X (n, {model.in_features}) and Y (n, {model.out_features}) with the same n"
        )
    else:
        checked = False
    if checked and fingerprint is None:
        return Y
    for start, (X_rows, Y_rows) in zip(range(0, X.shape[0], block_rows), row_blocks(X, Y, block_rows)):
        if not checked:
            try:
                check_features(X_rows, model.W1)
                check_targets(Y_rows, (X_rows.shape[0], model.out_features), like=model.W1, output=output)
            except ValueError as error:
                raise ValueError(f"{error}, in the block of rows from {start} of {X!r} and {Y!r}") from None
        if fingerprint is not None:
            fingerprint.update("X", X_rows, first_row + start)
            fingerprint.update("Y", Y_rows, first_row + start)
    return Y


def check_validation_data(val: object, model: ShallowNet) -> tuple[Tensor, Tensor, int]:
    """(X_val, Y_val (n_val, d2), global n_val) from the pair ``val``, checked as the training data."""
    if not isinstance(val, (tuple, list)) or len(val) != 2:
        raise TypeError(
            f"val must be a pair (X_val, Y_val), got {type(val).__name__}"
            + (f" of length {len(val)}" if isinstance(val, (tuple, list)) else "")
        )
    X_val, Y_val = val
    n_val, _ = rows_over_ranks(X_val, model)
    try:
        Y_val = check_training_data(X_val, Y_val, model, None, 0)
        return X_val, cast(Tensor, Y_val), n_val  # on-disk rows stand in for tensors, as for the training data
    except (TypeError, ValueError) as error:
        raise type(error)(f"val: {error}") from None


def available_memory() -> int | None:
    """The bytes of memory this machine can still give (Linux's MemAvailable), None where it does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# Sizes below this are not checked: reading /proc/meminfo (about 0.1 ms) would cost a stack of hundreds of small
# models more than allocating them, and a machine that runs PyTorch has this much to give.
UNCHECKED_BYTES = 64 * 2**20


def check_fits_in_memory(elements: int, element_size: int, what: str) -> None:
    """Refuse, before allocating it, something of ``elements`` numbers that cannot fit in the memory left: a typo
    such as ``hidden_features=100000000`` should fail here, with its name, not deep in PyTorch's allocator."""
    needed = elements * element_size
    if needed < UNCHECKED_BYTES:
        return
    free = available_memory()
    if free is not None and needed > free:
        raise ValueError(f"{what} needs {needed / 2**30:,.1f} GiB, but this machine has {free / 2**30:,.1f} GiB free")
