"""The training loop's epochs run as compiled code: the epochs between two events of the loop in one call.

On small data an eager epoch is the fixed cost of some twenty PyTorch calls, not arithmetic. Here the slides' steps
2-4 of a whole run of epochs are traced once from :func:`~torch_shallow.functional.cost_and_gradients` (the same
formulas, not a copy) and compiled by Inductor into one C++ loop, ``torch._higher_order_ops.while_loop`` around one
epoch, with the loop's bookkeeping (costs, divergence, convergence) inside it::

    for t in t0, t0 + 1, ..., while some model runs:
        J, ∇J = J(θ(t)), ∇J(θ(t))                                      over all n rows
        J NaN, inf or > L_k:  model k stops, θ_k ← θ_k(t-1)             (diverged; epochs stays t)
        otherwise:            costs[t] = J;  θ ← θ - α_k ∇J;  epochs = t + 1
                              |J(θ(t)) - J(θ(t-1))| < tol: model k stops      (converged; never at t = 0)

with L_k = ``DIVERGENCE_FACTOR`` × max(J_k(θ(0)), 1), the rules of :func:`~torch_shallow.trainer.train`. Each model
stops on its own; a stopped model no longer moves.

Two compiler settings make it fast: the C++ wrapper (``cpp_wrapper``), so that the loop itself runs in C++, and, for
the small problems compiling is for (:func:`should_compile`), the decomposition of every matrix product into a
product and a sum (Inductor's ``decompose_mm_pass``), which Inductor then fuses with the element-wise work around it:
an epoch becomes one C++ function, where a product left to the BLAS would be a call of its own.

A while loop, rather than a fixed number of epochs unrolled per call, because it stops at any epoch without masking,
compiles in a fraction of the time of ten unrolled epochs, whatever the count, and runs each epoch at least as fast.
Models stacked or grouped (:class:`Chunks`) share the loop.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import time
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, cast

import torch
from torch import Tensor

from .functional import Activations, Wanted, cost_and_gradients
from .parallel import threads_for_training
from .stopping import DIVERGENCE_FACTOR

if TYPE_CHECKING:
    from .module import ShallowNet

# The stop codes of each model, as :class:`Chunk` returns them.
RUNNING, CONVERGED, DIVERGED = 0, 1, 2
# Epochs per compiled call at most: the length of the buffer the costs are written into. Larger chunks take several
# calls, each a few tens of µs of Python.
CALL_EPOCHS = 256
# A chunk should return within this many seconds, so that Ctrl-C (handled between chunks) stops within about a second.
CHUNK_SECONDS = 0.5

# What the chunks read and do not change: X, Y, the learning rates α_k, tol, and each group's unit mask or None.
ChunkData = tuple[Tensor, Tensor, Tensor, Tensor, tuple[Tensor | None, ...]]


class Chunk(NamedTuple):
    """What one chunk of epochs t0 … t0 + count - 1 did."""

    costs: Tensor  # (count, K): J_k(θ(t0 + i)) where model k took epoch t0 + i, NaN where it did not
    epochs: Tensor  # (K,) int64: gradient steps each model has taken in all, t + 1 after its last epoch t
    stops: Tensor  # (K,) int64: RUNNING, CONVERGED or DIVERGED
    right: Tensor  # (K,) int64: labels predicted right at θ(t) of each model's last epoch t of the chunk
    grad_norms: Tensor  # (K,): ‖∇J(θ(t))‖ there, padded units excluded


@dataclass
class ChunkState:
    """The loop's state between chunks, as tensors. ``params`` are the caller's θ, updated in place; the others
    belong to the chunks. Make it with :meth:`start`."""

    params: list[Tensor]  # θ(t) = [W1, b1, W2, b2] of each group of models (see Chunks), each with or without a
    #                       leading model axis
    previous: list[Tensor]  # θ(t - 1), put back when J(θ(t)) diverges
    last_cost: Tensor  # (K,) float64: J(θ(t - 1)), for the convergence test; NaN before the first epoch
    limit: Tensor  # (K,) float64: the divergence limit L_k; set at epoch 0
    stops: Tensor  # (K,) int64 stop codes
    epochs: Tensor  # (K,) int64
    right: Tensor  # (K,) int64, of the last epoch
    grad_norms: Tensor  # (K,), of the last epoch

    @classmethod
    def start(
        cls,
        params: list[Tensor],
        first_costs: list[float | None] | None = None,
        last_costs: list[float | None] | None = None,
        epochs: list[int] | None = None,
        running: list[bool] | None = None,
    ) -> ChunkState:
        """The state of K models with parameters ``params`` (tensors the chunks update in place), before their first
        epoch, or, on a resume, after ``epochs[k]`` epochs whose first and last costs were ``first_costs[k]`` and
        ``last_costs[k]`` (None where there are none), model k still running where ``running[k]`` (a model that is
        not is marked CONVERGED: whatever ended it, the caller knows)."""
        K = sum(W1.shape[0] if W1.dim() == 3 else 1 for W1 in params[::4])
        device = params[0].device
        f64: dict[str, Any] = {"dtype": torch.float64, "device": device}
        i64: dict[str, Any] = {"dtype": torch.int64, "device": device}

        def floats(values: list[float | None] | None, missing: float) -> Tensor:
            values = values or [None] * K
            return torch.tensor([missing if v is None else v for v in values], **f64)

        first = floats(first_costs, math.nan)
        return cls(
            params=params,
            previous=[p.detach().clone() for p in params],
            last_cost=floats(last_costs, math.nan),
            limit=torch.where(first.isnan(), math.inf, DIVERGENCE_FACTOR * first.clamp_min(1.0)),
            stops=torch.tensor([RUNNING if on else CONVERGED for on in (running or [True] * K)], **i64),
            epochs=torch.tensor(epochs or [0] * K, **i64),
            right=torch.zeros(K, **i64),
            grad_norms=torch.full((K,), math.nan, dtype=params[0].dtype, device=device),
        )

    def tensors(self) -> list[Tensor]:
        return [*self.params, *self.previous, self.last_cost, self.limit, self.stops, self.epochs]


@dataclass(frozen=True)
class Problem:
    """What the compiled epoch is specialised on, besides the shapes and dtypes of its tensors."""

    activations: tuple[Activations, ...]  # one per group of models (see Chunks)
    output: str
    trainable: tuple[bool, bool, bool, bool]  # which of W1, b1, W2, b2 take steps
    n: int  # the number of samples J averages over


def _epoch(problem: Problem, t: Tensor, data: ChunkData, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """One epoch t of the loop for every model; returns J (K,) and the new state, whose tensors are those of
    :meth:`ChunkState.tensors` and the right answers and ‖∇J‖ of this epoch (kept where the model ran)."""
    X, Y, lrs, tol, unit_masks = data
    G = len(problem.activations)
    params, previous = state[: 4 * G], state[4 * G : 8 * G]
    last_cost, limit, stops, epochs, right, grad_norms = state[8 * G :]
    wanted = Wanted(False, *problem.trainable)
    passes = [
        cost_and_gradients(
            X,
            Y,
            params[4 * g],
            params[4 * g + 1],
            params[4 * g + 2],
            params[4 * g + 3],
            activation,
            wanted,
            n=problem.n,
            output=problem.output,
            count_right=True,
        )
        for g, activation in enumerate(problem.activations)
    ]
    J = torch.cat([result.J.reshape(-1) for result in passes])  # (K,)
    cost = J.double()  # compared in float64, as the eager loop compares Python floats
    limit = torch.where(t == 0, DIVERGENCE_FACTOR * cost.clamp_min(1.0), limit)
    running = stops == RUNNING
    diverged = running & ~(cost <= limit)  # NaN fails every comparison
    ok = running & ~diverged
    new_params: list[Tensor] = []
    new_previous: list[Tensor] = []
    squares: list[Tensor] = []
    first = 0
    for g, (result, unit_mask) in enumerate(zip(passes, unit_masks)):
        stacked = params[4 * g].dim() == 3
        models = slice(first, first + (params[4 * g].shape[0] if stacked else 1))
        first = models.stop
        gradients = list(result.gradients[1:])
        if unit_mask is not None:  # a padded unit's dW2 column, dZ2ᵀ σ(0), is not zero: masked
            dW2 = gradients[2]
            assert dW2 is not None  # narrowing, not a cast: typing.cast may break the graph in older Dynamo
            gradients[2] = dW2 * unit_mask
        group_squares: Tensor | int = 0
        for p, p_prev, grad in zip(params[4 * g : 4 * g + 4], previous[4 * g : 4 * g + 4], gradients):
            if grad is None:  # a frozen parameter
                new_params.append(p)
                new_previous.append(p_prev)
                continue
            on, back = _per_model(ok[models], p, stacked), _per_model(diverged[models], p, stacked)
            step = p - _per_model(lrs[models], p, stacked) * grad  # θ ← θ - α_k ∇J
            new_params.append(torch.where(on, step, torch.where(back, p_prev, p)))
            new_previous.append(torch.where(on, p, p_prev))
            group_squares = group_squares + grad.square().sum(dim=tuple(range(int(stacked), grad.dim()))).reshape(-1)
        assert isinstance(group_squares, Tensor)  # some parameter takes steps
        squares.append(group_squares)
    converged = ok & ((cost - last_cost).abs() < tol)  # false at t = 0, where last_cost is NaN
    stops = torch.where(diverged, DIVERGED, torch.where(converged, CONVERGED, stops))
    epochs = torch.where(ok, t + 1, epochs)
    last_cost = torch.where(ok, cost, last_cost)
    rights = []
    for result in passes:
        assert result.right is not None  # count_right=True
        rights.append(result.right.reshape(-1))
    right = torch.where(ok, torch.cat(rights), right)
    grad_norms = torch.where(ok, torch.cat(squares).sqrt(), grad_norms)
    costs = torch.where(ok, J, math.nan)
    return costs, *new_params, *new_previous, last_cost, limit, stops, epochs, right, grad_norms


def _per_model(values: Tensor, p: Tensor, stacked: bool) -> Tensor:
    """(K,) values broadcast against a parameter: (K, 1, ...) for a stack, a scalar for one model."""
    return values.view(-1, *[1] * (p.dim() - 1)) if stacked else values.view(())


def _chunk(
    problem: Problem, t0: Tensor, count: Tensor, costs: Tensor, data: ChunkData, state: tuple[Tensor, ...]
) -> None:
    """Epochs t0 … t0 + count - 1, stopping early once no model runs: the costs into ``costs`` (count, K), the
    state updated in place. Traced by torch.compile as a ``while_loop``."""
    from torch._higher_order_ops import while_loop

    stops = 8 * len(problem.activations) + 2  # where the stop codes are among the carried tensors, after i

    def running(i: Tensor, *carried: Tensor) -> Tensor:
        return (i < count) & (carried[stops] == RUNNING).any()

    def epoch(i: Tensor, *carried: Tensor) -> tuple[Tensor, ...]:
        J, *new = _epoch(problem, t0 + i, data, carried)
        costs.index_put_((i.reshape(1),), J.reshape(1, -1))  # allowed: costs is not carried
        return i + 1, *new

    final = while_loop(running, epoch, (torch.zeros_like(t0), *state))
    for target, value in zip(state, final[1:]):
        target.copy_(value)


def _chunk_eager(
    problem: Problem, t0: Tensor, count: Tensor, costs: Tensor, data: ChunkData, state: tuple[Tensor, ...]
) -> None:
    """:func:`_chunk` without the compiler, an epoch at a time."""
    stops = state[8 * len(problem.activations) + 2]
    for i in range(int(count)):
        if not (stops == RUNNING).any():
            break
        J, *new = _epoch(problem, t0 + i, data, state)
        costs[i] = J
        for target, value in zip(state, new):
            target.copy_(value)


# ---- compiling ------------------------------------------------------------------------------------------------------

# Inductor's settings for the chunk: see the module's docstring.
INDUCTOR_OPTIONS = {"cpp_wrapper": True}


def _decomposition(n: int, d: int, d2: int, units: int) -> dict[str, int]:
    """Thresholds of Inductor's decompose_mm_pass (it decomposes a product A B where A has at most ``first`` rows and
    B at most ``other`` rows and columns) for n rows, d inputs, d2 outputs and ``units`` = Σ K d1 hidden units:
    every product of a small problem (``SMALL_LIMIT``); none of a larger one, whose products summing over the n
    rows, for which Inductor recomputes the inputs inside the sum, cost more than the BLAS calls they replace."""
    limit = 1 << 30 if n * (d + d2) * units <= SMALL_LIMIT else 0
    return {"cpu_max_first_dimension_decomposition": limit, "cpu_max_other_dimension_decomposition": limit}


@functools.cache
def compile_available() -> bool:
    """Whether torch.compile can build the chunk here: a platform Dynamo supports and a C++ compiler for Inductor's
    CPU code. Checked once; where it cannot, one warning says why, and the chunks run eagerly."""
    reason = None
    if sys.platform == "win32":
        reason = "Inductor's C++ wrapper is not supported on Windows here"
    elif not _dynamo_supported():
        reason = f"torch.compile does not support Python {sys.version.split()[0]}"
    else:
        from torch._inductor import config

        compilers = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
        if not any(c is not None and shutil.which(c) for c in (os.environ.get("CXX"), *compilers)):
            reason = "no C++ compiler was found (Inductor looks for $CXX, then g++); install one, e.g. g++"
    if reason is not None:
        _warn_eager(reason)
    return reason is None


def _dynamo_supported() -> bool:
    from torch._dynamo.eval_frame import is_dynamo_supported  # torch._dynamo's own, not in its __all__

    return is_dynamo_supported()


def _warn_eager(reason: str) -> None:
    warnings.warn(f"compiled training is not available: {reason}; training runs eagerly", RuntimeWarning, 2)


_compiled: dict[tuple[Any, ...], Callable[..., None]] = {}


def _key(problem: Problem, data: ChunkData, state: tuple[Tensor, ...]) -> tuple[Any, ...]:
    tensors = [*data[:4], *state]
    masks = tuple(None if m is None else (tuple(m.shape), m.dtype) for m in data[4])
    return problem, tuple((tuple(t.shape), t.dtype, t.device.type) for t in tensors), masks


def compiled_chunk(problem: Problem, data: ChunkData, state: tuple[Tensor, ...]) -> Callable[..., None]:
    """The compiled :func:`_chunk` for these shapes, dtypes, device and problem, made once per process (Inductor's
    on-disk caches, on by default, spare later processes most of the compile)."""
    key = _key(problem, data, state)
    if key not in _compiled:
        X, Y = data[0], data[1]
        units = sum(math.prod(W1.shape[:-1]) for W1 in state[: 4 * len(problem.activations) : 4])
        thresholds = _decomposition(X.shape[0], X.shape[1], Y.shape[1], units)
        options: dict[str, Any] = {**INDUCTOR_OPTIONS, "post_grad_fusion_options": {"decompose_mm_pass": thresholds}}
        # A function of its own for each key: Dynamo keeps compiled graphs, and a limit of 8 on their number, per code
        # object, and checks a call's arguments against each graph's guards in turn.
        own = types.FunctionType(_chunk.__code__.replace(), _chunk.__globals__, _chunk.__name__)
        compiled = torch.compile(own, fullgraph=True, dynamic=False, options=options)

        def chunk(*args: object) -> None:
            # decompose_mm_pass reads its thresholds from config.post_grad_fusion_options only when it is imported;
            # they are set for the compile (the first call) here, and are in the options too, so that they are part of
            # the compile caches' key. They matter only to compiles that turn the pass on, which by default none do.
            from torch._inductor.fx_passes import decompose_mem_bound_mm

            for name, value in thresholds.items():
                setattr(decompose_mem_bound_mm, name, value)
            compiled(problem, *args)

        _compiled[key] = chunk
    return _compiled[key]


class Chunks:
    """Runs epochs of the training loop for K models on (X, Y), compiled where possible.

    The models come as one model, one stack of K models along a leading axis (padded to the largest hidden size),
    or several groups of them, each with its own [W1, b1, W2, b2] in ``state.params``, one after another: models of
    different hidden sizes grouped by size cost Σ d1 per row of X, where one stack padded to the largest costs
    K max d1. The models' order, in ``lrs`` and in what the chunks return, is the groups' order.

    Args:
        X, Y: (n, d) and (n, d2) tensors, Y in X's dtype.
        state: the loop's state, :meth:`ChunkState.start`; its ``params`` are updated in place.
        lrs: α_k of each model.
        activation, output: the models' (one activation, or one per model of a stack); for several groups, a list
            of activations, one entry per group.
        tol: stop a model once ``|J(θ(t)) - J(θ(t-1))| < tol``; 0 never.
        unit_mask: (K, 1, d1max) 1 for a model's own hidden units, 0 for padding, or None; for several groups, a
            list of them, one per group.
        trainable: which of W1, b1, W2, b2 take steps.
        compile: False runs the same epochs eagerly.
    """

    def __init__(
        self,
        X: Tensor,
        Y: Tensor,
        state: ChunkState,
        lrs: list[float],
        *,
        activation: Activations | Sequence[Activations],
        output: str = "sigmoid",
        tol: float = 0.0,
        unit_mask: Tensor | Sequence[Tensor | None] | None = None,
        trainable: tuple[bool, bool, bool, bool] = (True, True, True, True),
        compile: bool = True,
    ) -> None:
        p = state.params[0]
        groups = len(state.params) // 4
        activations = tuple(activation) if groups > 1 else (cast(Activations, activation),)
        unit_masks = (
            tuple(cast("Sequence[Tensor | None]", unit_mask)) if groups > 1 else (cast("Tensor | None", unit_mask),)
        )
        if len(activations) != groups or len(unit_masks) != groups:
            raise ValueError(f"{groups} groups of models need {groups} activations and unit masks")
        self.state = state
        self.problem = Problem(activations, output, cast("tuple[bool, bool, bool, bool]", tuple(trainable)), X.shape[0])
        lrs_ = torch.tensor(lrs, dtype=p.dtype, device=p.device)
        tol_ = torch.tensor(tol, dtype=torch.float64, device=p.device)
        self.data: ChunkData = (X, Y, lrs_, tol_, unit_masks)
        self.carried: tuple[Tensor, ...] = (*state.tensors(), state.right, state.grad_norms)
        self.K = lrs_.shape[0]
        self.compile = compile and compile_available()
        dtype = torch.promote_types(p.dtype, torch.float32)  # J's, as cross_entropy returns it
        self._buffer = torch.empty((CALL_EPOCHS, self.K), dtype=dtype, device=p.device)
        self._compiled = compiled_chunk(self.problem, self.data, self.carried) if self.compile else None

    def __call__(self, t0: int, count: int) -> Chunk:
        """Epochs t0 … t0 + count - 1, or fewer where every model stops before; see :class:`Chunk`. ``count`` is
        the caller's to bound (:func:`epochs_per_chunk`), so that a chunk stays short."""
        if (
            isinstance(t0, bool)
            or not isinstance(t0, int)
            or t0 < 0
            or isinstance(count, bool)
            or not isinstance(count, int)
            or count < 1
        ):
            raise ValueError(f"t0 must be an int >= 0 and count an int >= 1, got t0={t0!r}, count={count!r}")
        parts = []
        with torch.no_grad():
            for start in range(0, count, CALL_EPOCHS):
                if start > 0 and not (self.state.stops == RUNNING).any():
                    parts.append(torch.full_like(self._buffer[: count - start], math.nan))
                    break
                parts.append(self._call(t0 + start, min(CALL_EPOCHS, count - start)))
        s = self.state
        costs = parts[0] if len(parts) == 1 else torch.cat(parts)
        return Chunk(costs, s.epochs.clone(), s.stops.clone(), s.right.clone(), s.grad_norms.clone())

    def _call(self, t0: int, count: int) -> Tensor:
        """At most CALL_EPOCHS epochs from t0; returns their costs (count, K)."""
        device = self._buffer.device
        t0_, count_ = torch.tensor(t0, device=device), torch.tensor(count, device=device)
        costs = self._buffer[:count]
        costs.fill_(math.nan)  # the loop writes only the epochs it runs
        # The thread count the eager loop trains with: Inductor's kernels take it at compile time, and a call under
        # another would compile again.
        with threads_for_training(self.data[0], max(W1.shape[-2] for W1 in self.state.params[::4])):
            if self.compile and self._compiled is not None:  # compiled where self.compile
                try:
                    self._compiled(t0_, count_, self._buffer, self.data, self.carried)
                    return costs.clone()
                except Exception as error:  # noqa: BLE001 -- any failure of the compiler: train on, eagerly
                    _warn_eager(f"torch.compile failed ({type(error).__name__}: {error})")
                    self.compile = False
            _chunk_eager(self.problem, t0_, count_, costs, self.data, self.carried)
        return costs.clone()


def epochs_per_chunk(epoch_seconds: float, seconds: float = CHUNK_SECONDS) -> int:
    """How many epochs of ``epoch_seconds`` each fit in a chunk of ``seconds``: at least 1."""
    return max(1, math.floor(seconds / max(epoch_seconds, 1e-9) * (1 + 1e-12)))  # 0.5 / 20e-6 is 24999.99...


# ---- when compiling pays ---------------------------------------------------------------------------------------------

# Rough costs on this project's 2-core AMD EPYC machines, enough to tell a run that repays its compile from one that
# does not (experiments/benchmark.py --only compiled measures them). An eager epoch on small data is the fixed cost of
# its PyTorch calls, a little more for each model of a stack; a compiled one is a C++ loop, whose arithmetic, with the
# products decomposed, is slower than the BLAS's. A model's epoch multiplies n (d + d2) d1 numbers.
EAGER_EPOCH_SECONDS = 80e-6
EAGER_MODEL_SECONDS = 10e-6  # each model of a stack adds this much to an eager epoch
EAGER_NUMBER_SECONDS = 0.5e-9  # per number multiplied
COMPILED_EPOCH_SECONDS = 15e-6
COMPILED_NUMBER_SECONDS = 1.5e-9
COMPILE_SECONDS = 20.0  # a first compile, with a cold on-disk cache, on a busy machine; a cached one takes a third
SMALL_LIMIT = 1 << 21  # beyond this many numbers multiplied per epoch (n (d + d2) K d1max), an epoch is arithmetic


def should_compile(
    mode: str | bool,
    n: int,
    d: int,
    d1max: int,
    K: int,
    epochs_to_run: int,
    device: torch.device | str,
    out_features: int = 1,
) -> bool:
    """Whether to train compiled: ``mode`` True or False, where compiling is possible (:func:`compile_available`);
    "auto" where it is also expected to pay: on the CPU, for a problem small enough (``SMALL_LIMIT``), when the eager
    epochs' expected time exceeds the compiled epochs' by more than a compile takes (``COMPILE_SECONDS``). Large data,
    whose epochs are arithmetic, and short runs stay eager: one planar model (n = 400, d = 2, d1 = 4) gains about
    70 µs an epoch and pays from some 300,000 epochs on, a stack of 64 from some 50,000."""
    if mode not in ("auto", True, False):
        raise ValueError(f"compile must be 'auto', True or False, got {mode!r}")
    if mode is False:
        return False
    if mode is True:
        return compile_available()
    products = n * (d + out_features) * K * d1max
    if torch.device(device).type != "cpu" or products > SMALL_LIMIT:
        return False
    eager = EAGER_EPOCH_SECONDS + EAGER_MODEL_SECONDS * K + EAGER_NUMBER_SECONDS * products
    compiled = COMPILED_EPOCH_SECONDS + COMPILED_NUMBER_SECONDS * products
    return epochs_to_run * (eager - compiled) > COMPILE_SECONDS and compile_available()


def stacks_by_size(models: Sequence[ShallowNet]) -> tuple[list[Tensor], list[Activations], list[int]]:
    """ShallowNets of mixed hidden sizes as one stack per size, without padding, for :class:`Chunks`: the groups'
    [W1, b1, W2, b2] one after another (copies), their activations, and the models' order, ``order[i]`` being the
    index in ``models`` of the i-th model of the groups."""
    sizes = sorted({m.hidden_features for m in models})
    order = [k for h in sizes for k, m in enumerate(models) if m.hidden_features == h]
    params, activations = [], []
    for h in sizes:
        group = [m for m in models if m.hidden_features == h]
        params += [torch.stack([getattr(m, name).detach() for m in group]) for name in ("W1", "b1", "W2", "b2")]
        names = tuple(m.activation for m in group)
        activations.append(names[0] if len(set(names)) == 1 else names)
    return params, activations, order


# ---- the training loop's epochs as chunks ---------------------------------------------------------------------------


class CompiledEpochs:
    """The epochs of :func:`~torch_shallow.trainer.train` between two events as compiled chunks (:class:`Chunks`),
    kept in step with the run: each chunk's costs go into the histories, its stops become the models' stop reasons,
    and models that a callback stopped stop in the chunks too. A chunk is bounded to about ``CHUNK_SECONDS``
    (:func:`epochs_per_chunk`, from the last chunk's time), so that Ctrl-C and SIGTERM stop training within about a
    second."""

    def __init__(self, run: Any, tol: float, compile: bool = True) -> None:
        trainee = run.trainee
        params = trainee.parameters()
        self.state = ChunkState.start(
            params,
            first_costs=[h.costs[0] if h.costs else None for h in run.histories],
            last_costs=[h.costs[-1] if h.costs else None for h in run.histories],
            epochs=[h.epochs for h in run.histories],
            running=list(run.running),
        )
        trainable = tuple(p.requires_grad for p in trainee.reference.parameters())
        self.chunks = Chunks(
            run.X,
            run.Y,
            self.state,
            trainee.learning_rates(),
            activation=trainee.activation,
            output=trainee.output,
            tol=tol,
            unit_mask=getattr(trainee, "unit_mask", None),
            trainable=trainable,
            compile=compile,
        )
        self.bound = 16  # epochs per chunk until a chunk's time is known

    def __call__(self, run: Any, count: int) -> None:
        """Up to ``count`` epochs (fewer where all models stop first, or the time bound is shorter)."""
        count = max(1, min(count, self.bound))
        for k, on in enumerate(run.running):  # stopped by a callback since the last chunk
            if not on:
                self.state.stops[k] = CONVERGED
        started = time.perf_counter()
        chunk = self.chunks(run.epoch, count)
        self.bound = epochs_per_chunk((time.perf_counter() - started) / count)
        costs, epochs, stops = chunk.costs.T.tolist(), chunk.epochs.tolist(), chunk.stops.tolist()
        ran = [k for k, on in enumerate(run.running) if on]
        for k in ran:
            history = run.histories[k]
            history.costs += [cost for cost in costs[k] if not math.isnan(cost)]
            history.epochs = epochs[k]
            if stops[k] == DIVERGED:
                if not history.costs:
                    raise ValueError("the initial parameters give a cost of nan or inf; check the model's parameters")
                run.stop("diverged", models=[k])
            elif stops[k] == CONVERGED:
                run.stop("converged", models=[k])
            elif history.epochs >= run.max_epochs:
                run.stop("max_epochs", models=[k])
        run.epoch = max([run.epoch, *(epochs[k] for k in ran)])


# A tol below this (in float32; scaled by the dtype's epsilon) asks that J stop changing in its last bits, which the
# compiled epochs round otherwise than the eager ones (their sums run in another order), so that a model would stop
# at another epoch: "auto" leaves such runs eager. float32's epsilon is 1.2e-7; float64's makes the bound 2e-15.
RESOLVED_TOL = 1e-6


def compiled_epochs(run: Any, mode: str | bool, tol: float, plain: bool) -> CompiledEpochs | None:
    """The run's epochs as compiled chunks where ``mode`` asks for them (:func:`should_compile`) and the run can
    have them: plain gradient descent on tensors in one process, every model with both biases, sigmoid or softmax
    outputs. Otherwise None (the eager loop), with a warning where ``mode`` is True."""
    trainee = run.trainee
    reasons = [
        (not plain, "it takes a torch.optim optimizer's steps"),
        (not (isinstance(run.X, Tensor) and isinstance(run.Y, Tensor)), "its data is on disk"),
        (torch.distributed.is_available() and torch.distributed.is_initialized(), "it runs in several processes"),
        (trainee.b1 is None or trainee.b2 is None, "a model has no bias"),
        (trainee.output not in ("sigmoid", "softmax"), f"its output is {trainee.output!r}"),
    ]
    why = [reason for applies, reason in reasons if applies]
    if mode is False or (why and mode == "auto"):
        return None
    if why:
        warnings.warn(f"compile=True: this run trains eagerly, for {' and '.join(why)}", RuntimeWarning, stacklevel=4)
        return None
    W1 = trainee.W1
    if mode == "auto" and 0 < tol < RESOLVED_TOL * torch.finfo(W1.dtype).eps / torch.finfo(torch.float32).eps:
        return None  # see RESOLVED_TOL
    K = W1.shape[0] if W1.dim() == 3 else 1
    n, d = run.X.shape
    epochs = run.max_epochs - run.epoch
    if not should_compile(mode, n, d, W1.shape[-2], K, epochs, W1.device, trainee.W2.shape[-2]):
        return None
    return CompiledEpochs(run, tol)
