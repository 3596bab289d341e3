"""Batch gradient descent, the slides' algorithm, with TensorBoard logging and checkpoints.

    1. θ(0) at random (the model's own ``reset_parameters``; ``fit`` never re-initialises)
    2. ∇J(θ(t)) over all n samples
    3. θ(t+1) = θ(t) - α ∇J(θ(t))
    4. back to 2 until convergence

One loop, :func:`train`, runs these steps for whatever is trained: one model and its optimizer (:func:`fit`), or a
stack of models swept at once (:func:`~torch_shallow.sweep.fit_many`). Around it: the run's directory, locks and
data fingerprint (:mod:`~torch_shallow.run`), checkpoints (:mod:`~torch_shallow.checkpoint`) and the dashboard
(:mod:`~torch_shallow.board`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .board import RunWriter, write_dashboard, write_graph, write_hparams, write_layout
from .checkpoint import architecture, optimizer_changes, resume_state, save_checkpoint, training_state
from .distributed import all_reduce_sum_, broadcast_, world
from .functional import Sweep, auto_block_rows, cost_and_gradients, row_blocks
from .module import ShallowNet
from .ondisk import NpyRows
from .parallel import threads_for_training
from .run import STOP_SIGNALS, Fingerprint, deferred_stop_signals, run_outputs
from .validation import check_features, check_parameters, check_targets

# The cost has diverged once it exceeds this many times max(J(θ(0)), 1). Gradient descent with a workable step
# lowers J; a step far too large throws the logits out by orders of magnitude, and J with them, where it may
# oscillate without ever becoming NaN.
DIVERGENCE_FACTOR = 100.0
# Recorded by the command line with a run's hyperparameters, for resuming; not hyperparameters themselves.
RUN_SETTINGS = ("device", "dtype", "save")
# TensorBoard keeps 1,000 points of each scalar tag by default (its reservoir size): more buys nothing.
LOGGED_POINTS = 1000


@dataclass
class TrainConfig:
    """How ``fit`` trains. The defaults are the planar experiment's."""

    lr: float = 1.2  # α, the step size; 1.2 is the deeplearning.ai course's value for the planar data
    max_epochs: int = 10_000  # at most this many gradient steps, one per epoch over all n samples
    tol: float = 1e-9  # stop once |J(θ(t)) - J(θ(t-1))| < tol, "until convergence"; 0 turns it off
    log_dir: str | Path | None = None  # TensorBoard run directory, new or empty unless resuming; None writes nothing
    log_every: int | None = None  # scalars (and the validation cost) at epochs 0, k, 2k, ...; None: ~1,000 points
    dashboard_every: int = 1000  # histograms of θ and ∇J, and the decision boundary of 2-D data, every k epochs
    checkpoint: str | Path | None = None  # checkpoint file, rewritten every checkpoint_every epochs and at the end
    checkpoint_every: int = 1000  # epochs between checkpoints
    patience: int | None = None  # early stopping: stop once the validation cost has not improved for this many
    #                              evaluations (every log_every epochs); needs validation data; None: off
    restore_best: bool = True  # with patience, end with θ of the epoch of the lowest validation cost
    progress: bool | None = None  # tqdm bar; None shows it only when the output is a terminal

    def __post_init__(self) -> None:
        # NumPy's scalars are accepted and stored as Python numbers, for a checkpoint holds plain values; bool is
        # not a number here, although Python counts it as one.
        if not (_is_real(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (_is_real(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        self.lr, self.tol = float(self.lr), float(self.tol)
        for name in ("max_epochs", "log_every", "dashboard_every", "checkpoint_every", "patience"):
            value = getattr(self, name)
            if value is None and name in ("log_every", "patience"):
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            setattr(self, name, int(value))
        for name in ("log_dir", "checkpoint"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{name} must be a path or None, got {type(value).__name__}")
        for name, value in (("progress", self.progress), ("restore_best", self.restore_best)):
            if not (isinstance(value, bool) or (value is None and name == "progress")):
                raise TypeError(
                    f"{name} must be True or False{' or None' if name == 'progress' else ''}, got {value!r}"
                )

    @property
    def every(self) -> int:
        """The logging period: ``log_every``, or the one that keeps about ``LOGGED_POINTS`` points."""
        return self.log_every or max(1, math.ceil(self.max_epochs / LOGGED_POINTS))


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class History:
    """What ``fit`` did."""

    costs: list[float] = field(default_factory=list)  # costs[t] = J(θ(t)), before epoch t's update
    epochs: int = 0  # gradient steps taken; len(costs) == epochs
    stop_reason: str = ""  # "converged" (|ΔJ| < tol), "max_epochs", "early_stopping" or "diverged"
    final_cost: float = math.nan  # J of the trained model: θ(epochs), or the best epoch's θ with restore_best
    train_accuracy: float = math.nan  # fraction of training labels the trained model predicts
    val_cost: float | None = None  # J on the validation data, if any, at the end
    val_accuracy: float | None = None  # accuracy on the validation data, if any, at the end
    val_epochs: list[int] = field(default_factory=list)  # the epochs t at which the validation cost was taken
    val_costs: list[float] = field(default_factory=list)  # J_val(θ(t)) at those epochs
    best_epoch: int | None = None  # the epoch of the lowest validation cost, if there was validation data

    @property
    def converged(self) -> bool:
        return self.stop_reason == "converged"

    def summary(self) -> str:
        if math.isnan(self.train_accuracy):
            accuracy = ""  # identity outputs: real numbers, not labels
        else:
            accuracy = f", training accuracy {100 * self.train_accuracy:.2f}%"
            accuracy += "" if self.val_accuracy is None else f", validation accuracy {100 * self.val_accuracy:.2f}%"
        best = "" if self.stop_reason != "early_stopping" else f", best epoch {self.best_epoch}"
        return f"{self.epochs} epochs ({self.stop_reason}{best}), final cost {self.final_cost:.6f}{accuracy}"


class TrainingDiverged(RuntimeError):
    """The cost became NaN or inf, or rose far above where it started; the model keeps θ of the last good epoch."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM ended training after a whole epoch; ``checkpoint`` is the file to resume from, if
    one was set, and ``signal`` the signal's number. ``history`` is a list of histories for a sweep."""

    def __init__(
        self, message: str, history: History | list[History], checkpoint: Path | None, signal: int = 2
    ) -> None:
        super().__init__(message)
        self.history = history
        self.checkpoint = checkpoint
        self.signal = signal


class Trainee(Protocol):
    """What :func:`train` trains: K models (1 for ``fit``) updated together. Per-model values are lists of K."""

    count: int  # K
    reference: ShallowNet  # a model of the stack's sizes, dtype and device, for the checks of the data
    optimizer_class: str

    def sweep(self, X: Any, Y: Any, n: int, count_right: bool) -> Sweep: ...  # J (K,) and ∇J into the gradients
    def evaluate(self, X: Any, Y: Any, n: int) -> Sweep: ...  # J and the right answers, no gradient
    def gradients(self) -> list[Tensor]: ...  # ∇J of the last sweep, as summed over ranks
    def parameters(self) -> list[Tensor]: ...  # θ, updated in place
    def step(self, running: list[bool]) -> None: ...  # θ ← θ - α ∇J for the running models; the others stay
    def select(self, tensor: Tensor, k: int) -> Tensor: ...  # model k's part of a parameter-shaped tensor
    def grad_norms(self) -> list[float]: ...
    def learning_rates(self) -> list[float]: ...
    def model(self, k: int) -> ShallowNet: ...  # model k with the current θ, for the dashboard
    def weights(self) -> dict[str, Tensor]: ...  # for checkpoints, with optimizer_state, architecture, load
    def optimizer_state(self) -> dict[str, Any]: ...
    def architecture(self) -> dict[str, Any] | list[dict[str, Any]]: ...
    def hyperparameter_changes(self, saved: dict[str, Any]) -> list[str]: ...
    def load(self, weights: dict[str, Tensor], optimizer_state: dict[str, Any]) -> None: ...


@torch.no_grad()
def evaluate(model: ShallowNet, X: Tensor, Y: Tensor, n: int | None = None) -> tuple[float, float]:
    """(J, accuracy) of the model on (X, Y (n, d2)), block by block; accuracy counts A2 > 0.5, that is Z2 > 0, or
    the argmax for softmax outputs (see :func:`~torch_shallow.functional.right_answers`).

    In a distributed run each rank passes its shard and the global n, and the sums are reduced over the ranks.
    """
    n = X.shape[0] if n is None else n
    J, _, right = cost_and_gradients(
        X,
        Y,
        model.W1,
        model.b1,
        model.W2,
        model.b2,
        model.activation,
        (False,) * 5,
        n=n,
        output=model.output,
        count_right=True,
    )
    totals = torch.stack([J.double(), right.double()])
    all_reduce_sum_([totals])
    return totals[0].item(), totals[1].item() / (n * labels_per_row(model))


def labels_per_row(model: ShallowNet) -> int:
    """How many labels a row of Y holds for the accuracy: each sigmoid unit's, or the one class of a softmax (identity
    outputs count no right answers: their accuracy is NaN)."""
    return 1 if model.output == "softmax" else model.out_features


def fit(
    model: ShallowNet,
    X: Tensor | NpyRows,
    Y: Tensor | NpyRows,
    config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    val: tuple[Tensor, Tensor] | None = None,
    hparams: dict[str, object] | None = None,
    resume_from: str | Path | None = None,
) -> History:
    """Train ``model`` on all of (X, Y) by batch gradient descent, from its current parameters.

    Each epoch t computes J(θ(t)) and ∇J(θ(t)) over all n samples through ``model.cost_and_grad`` (the values
    of ``model.cost(X, Y).backward()``, without the autograd engine's fixed cost), then takes one step of
    ``optimizer``: by default plain gradient descent θ(t+1) = θ(t) - α∇J with α = ``config.lr``, the step of
    ``torch.optim.SGD(lr=α)`` without momentum, bit for bit. X and Y are checked once, before the first epoch, not
    at every epoch; so are the output paths, which are then locked against other runs (:mod:`torch_shallow.run`).

    In a distributed run (``torch.distributed`` initialised, as ``torchrun`` and the command line do), each rank
    passes its own contiguous shard of the rows, of any size: every rank starts from rank 0's parameters, each
    epoch's J and ∇J are summed over the ranks with the global n in dZ2 = n⁻¹(A2 - Y), so they are the exact
    full-batch values, and every rank takes the same step. Only rank 0 writes TensorBoard, checkpoints and the
    progress bar; the values it logs are the global ones.

    Args:
        model: the network; its parameters are updated in place.
        X: (n, d) features, on the model's device and in its dtype, or an on-disk
            :class:`~torch_shallow.ondisk.NpyRows`, read block by block at every epoch.
        Y: (n, d2) or (n,) labels in [0, 1] (softmax: one-hot or probability rows), a tensor or an ``NpyRows``.
        config: see :class:`TrainConfig`.
        optimizer: any ``torch.optim`` optimizer over ``model.parameters()``, instead of plain SGD.
        val: validation data (X_val, Y_val), evaluated at every logged epoch (``cost/val``, ``accuracy/val``) and
            at the end; it plays no part in training, except for early stopping (``config.patience``). In a
            distributed run each rank passes its shard of it.
        hparams: extra hyperparameters for TensorBoard's HParams dashboard and the checkpoint (data set, seed, ...).
        resume_from: a checkpoint written by an earlier ``fit`` of the same model, data and optimizer: training goes
            on from its epoch, with its parameters, optimizer state, history and RNG state, and TensorBoard drops
            whatever the interrupted run logged after it. The result equals an uninterrupted run's, bit for bit on
            CPU. ``max_epochs``, ``tol`` and how often things are written may differ from the first run's; a
            different architecture, optimizer, optimizer hyperparameter (such as ``lr``) or training data is
            refused. A run that has ended (converged, diverged, stopped early or reached ``max_epochs``) takes no
            more steps.

    Returns:
        The :class:`History`: the cost at every epoch, why it stopped, the final cost and accuracy.

    Raises:
        TrainingDiverged: J(θ(t)) is NaN or inf, or above ``DIVERGENCE_FACTOR`` × max(J(θ(0)), 1); the model keeps
            θ(t-1), and the checkpoint, if set, holds it.
        TrainingInterrupted: on SIGINT (Ctrl-C) or SIGTERM, after the epoch in progress and a checkpoint.
        CheckpointError: ``resume_from`` is missing, damaged, or belongs to another run.
        RunInUse: another process is writing to ``log_dir`` or ``checkpoint``.
        OSError: writing TensorBoard output or reading on-disk data failed mid-run, after a checkpoint if possible.
    """
    config = config or TrainConfig()
    if optimizer is None and config.lr > torch.finfo(model.W1.dtype).max:
        raise ValueError(f"lr {config.lr:g} is beyond the range of the model's dtype {model.W1.dtype}")
    trainee = _OneModel(model, optimizer, config.lr)
    history = train(trainee, X, Y, config, val=val, hparams=[hparams or {}], resume_from=resume_from)[0]
    if history.stop_reason == "diverged":
        t = history.epochs
        raise TrainingDiverged(
            f"training diverged at epoch {t}: the cost went from {history.costs[0]:.6g} at epoch 0 to a NaN, inf or "
            f"more than {DIVERGENCE_FACTOR:g} × max(that, 1) = {_divergence_limit(history, 0.0):g}, with learning "
            f"rate {config.lr:g}; try a smaller learning rate. The model keeps the parameters of epoch {t - 1}.",
            history,
        )
    return history


class _OneModel:
    """``fit``'s trainee: one ShallowNet and any ``torch.optim`` optimizer over its parameters, or, for
    ``optimizer=None``, plain gradient descent θ ← θ - α∇J with α = ``lr``.

    Plain gradient descent is the update ``torch.optim.SGD(lr=α).step()`` makes, bit for bit, taken here as one
    foreach update: ``step`` spends 20 µs at each call on set-up (profiler scope, hooks, grad mode, the choice of
    implementation), a fifth of an epoch on the planar data. The SGD itself is made only when a checkpoint saves or
    loads its state: making the first optimizer of a process imports ``torch._dynamo``, a second on this machine.
    """

    count = 1

    def __init__(self, model: ShallowNet, optimizer: torch.optim.Optimizer | None, lr: float) -> None:
        self.reference = self._model = model
        self._optimizer, self._lr = optimizer, lr
        self.plain = optimizer is None
        self.optimizer_class = "SGD" if optimizer is None else type(optimizer).__name__
        self._leaves = list(model.parameters())
        self._params = [p.detach() for p in self._leaves]  # views, updated in place by the optimizer

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = torch.optim.SGD(self._leaves, lr=self._lr)
        return self._optimizer

    def sweep(self, X: Any, Y: Any, n: int, count_right: bool) -> Sweep:
        return self._model._sweep_into_grad(X, Y, n, count_right=count_right)

    def evaluate(self, X: Any, Y: Any, n: int) -> Sweep:
        m = self._model
        with torch.no_grad():
            return cost_and_gradients(
                X, Y, m.W1, m.b1, m.W2, m.b2, m.activation, (False,) * 5, n=n, output=m.output, count_right=True
            )

    def gradients(self) -> list[Tensor]:
        return [p.grad for p in self._leaves if p.grad is not None]

    def parameters(self) -> list[Tensor]:
        return self._params

    def step(self, running: list[bool]) -> None:
        if not running[0]:
            return
        if self.plain:
            pairs = [(p, q.grad) for p, q in zip(self._params, self._leaves) if q.grad is not None]
            params, grads = zip(*pairs)
            torch._foreach_add_(params, grads, alpha=-self._lr)  # θ ← θ - α∇J
        else:
            self.optimizer.step()

    def select(self, tensor: Tensor, k: int) -> Tensor:
        return tensor

    def grad_norms(self) -> list[float]:
        return [torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in self.gradients()])).item()]

    def learning_rates(self) -> list[float]:
        return [self._lr if self.plain else self.optimizer.param_groups[0]["lr"]]

    def model(self, k: int) -> ShallowNet:
        return self._model

    def weights(self) -> dict[str, Tensor]:
        return self._model.state_dict()

    def optimizer_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def architecture(self) -> dict[str, Any]:
        return architecture(self._model)

    def hyperparameter_changes(self, saved: dict[str, Any]) -> list[str]:
        return optimizer_changes(saved, self.optimizer.state_dict())

    def load(self, weights: dict[str, Tensor], optimizer_state: dict[str, Any]) -> None:
        self._model.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer_state)


def train(
    trainee: Trainee,
    X: Tensor | NpyRows,
    Y: Tensor | NpyRows,
    config: TrainConfig,
    *,
    val: tuple[Tensor, Tensor] | None,
    hparams: list[dict[str, object]],
    resume_from: str | Path | None,
    run_names: list[str] | None = None,
) -> list[History]:
    """The slides' steps 2-4 for the K models of ``trainee``, each stopping on its own; see :func:`fit`.

    ``run_names`` names each model's TensorBoard run under ``config.log_dir`` (a sweep); with one model the run
    is ``log_dir`` itself.
    """
    config = _absolute(config)
    rank, size = world()
    K, reference = trainee.count, trainee.reference
    check_parameters(reference.W1, reference.b1, reference.W2, reference.b2)
    if not any(p.requires_grad for p in reference.parameters()):
        raise ValueError("none of the model's parameters requires a gradient: there is nothing to train")
    n, first_row = _rows_over_ranks(X, reference)
    fingerprint = Fingerprint() if config.checkpoint is not None or resume_from is not None else None
    Y = _checked(X, Y, reference, fingerprint, first_row)
    data = {} if fingerprint is None else fingerprint.reduce(reference.W1.device)
    if val is not None:
        val = _checked_val(val, reference)
    if config.patience is not None and val is None:
        raise ValueError("early stopping (patience) needs validation data: pass val=(X_val, Y_val)")
    histories = [History(stop_reason="max_epochs") for _ in range(K)]
    saved_best = None
    if resume_from is not None:
        histories, saved_best = _resumed_histories(resume_from, trainee, data, config)
    params = trainee.parameters()
    broadcast_(params)
    last_good = [p.clone() for p in params]  # θ of the last epoch whose cost was finite and bounded, per model
    best = [p.clone() for p in params] if config.patience is not None else None  # θ of the best validation epoch
    if best is not None and saved_best is not None:
        torch._foreach_copy_(best, list(saved_best.values()))
    trained = None  # θ(epochs), once the best epoch's θ is put back at the end: where a resumed run goes on from
    running = [h.stop_reason == "max_epochs" for h in histories]
    first = max(h.epochs for h in histories)  # the models that still run have all taken these many steps
    # the epochs whose scalars are computed: none where neither a run directory nor validation data takes them
    every = config.every if config.log_dir is not None or val is not None else None
    per_row = labels_per_row(reference)
    checkpoints = _Checkpoints(
        config,
        rank,
        lambda: training_state(
            trainee,
            _one_or_list([dataclasses.asdict(h) for h in histories]),
            _plain(config),
            _one_or_list(hparams),
            data,
            trained=trained,
            best=best,
        ),
    )
    with _writers(config, rank, resume_from, first, run_names) as writers:
        if first == 0:
            for writer in writers:
                write_layout(writer)
            if len(writers) == 1:  # a sweep's models share one graph; tracing each would cost seconds
                write_graph(writers[0], trainee.model(0), X)
        bar = tqdm(
            range(first, config.max_epochs if any(running) else first),
            initial=first,
            total=config.max_epochs,
            desc="train",
            unit="epoch",
            disable=rank != 0 or (None if config.progress is None else not config.progress),
        )
        try:
            with threads_for_training(X, reference.hidden_features), deferred_stop_signals() as signalled:
                for t in bar:
                    logged = every is not None and t % every == 0
                    sweep = trainee.sweep(X, Y, n, count_right=logged)  # 2. J(θ(t)), ∇J(θ(t)) over all n samples
                    stop = _reduce_over_ranks(sweep, trainee, signalled()) if size > 1 else 0
                    costs = _record_costs(t, sweep, histories, running, trainee, params, last_good)
                    if logged:
                        _log_epoch(t, trainee, writers, histories, running, sweep, n * per_row, val, config, best)
                    if writers and t % config.dashboard_every == 0:
                        for k, writer in enumerate(writers):
                            write_dashboard(writer, trainee.model(k), X, Y, t)
                    if not bar.disable:
                        bar.set_postfix(cost=f"{min(costs):.6f}", refresh=False)
                    torch._foreach_copy_(last_good, params)
                    trainee.step(running)  # 3. θ(t+1) = θ(t) - α ∇J(θ(t))
                    _until_convergence(t, costs, histories, running, config.tol)  # 4. back to 2 until convergence
                    if size == 1:  # alone, a signal that came during this epoch's step stops after it too
                        stop = signalled()
                    if stop:
                        checkpoints.save(writers)
                        raise TrainingInterrupted(
                            f"interrupted by {signal.Signals(stop).name} after epoch "
                            f"{t + 1}{checkpoints.resume_hint()}",
                            _one_or_list(histories),
                            config.checkpoint,
                            stop,
                        )
                    if not any(running):
                        break
                    if (t + 1) % config.checkpoint_every == 0:
                        checkpoints.save(writers)
            if best is not None and config.restore_best and any(h.best_epoch is not None for h in histories):
                trained = {name: w.clone() for name, w in trainee.weights().items()}
                for k, h in enumerate(histories):
                    if h.best_epoch is not None:
                        for p, b in zip(params, best):
                            trainee.select(p, k).copy_(trainee.select(b, k))
            _finish(trainee, X, Y, n, val, histories, writers, config, hparams)
            checkpoints.save(writers)
        except OSError as error:  # the disk is full, a file system went away: stop now, losing as little as we can
            for h in histories:
                del h.costs[h.epochs :]  # the epoch in progress is not done
            raise OSError(
                f"training stopped at epoch {max(h.epochs for h in histories)}: {error}; "
                f"{checkpoints.after_failure(writers)}"
            ) from error
        finally:
            bar.close()
    return histories


def _record_costs(
    t: int,
    sweep: Sweep,
    histories: list[History],
    running: list[bool],
    trainee: Trainee,
    params: list[Tensor],
    last_good: list[Tensor],
) -> list[float]:
    """J(θ(t)) of each running model into its history, or, where it diverged, that model stopped with θ(t-1);
    returns the running models' costs, read in one synchronisation."""
    costs = sweep.J.tolist()  # a float for one model, a list for a stack
    costs = costs if isinstance(costs, list) else [costs]
    for k, cost in enumerate(costs):
        if running[k]:
            if cost <= _divergence_limit(histories[k], cost):  # false for NaN too
                histories[k].costs.append(cost)
            else:
                _diverged(t, cost, histories[k], trainee, k, params, last_good)
                running[k] = False
    return [cost for cost, on in zip(costs, running) if on] or [math.nan]


def _until_convergence(t: int, costs: list[float], histories: list[History], running: list[bool], tol: float) -> None:
    """After epoch t's step: a running model whose cost changed by less than ``tol`` has converged; one that early
    stopping marked stops too."""
    running_costs = iter(costs)
    for k, history in enumerate(histories):
        if not running[k]:
            continue
        cost = next(running_costs)
        history.epochs = t + 1
        if tol > 0 and t > 0 and abs(cost - history.costs[-2]) < tol:
            history.stop_reason, running[k] = "converged", False
        elif history.stop_reason == "early_stopping":
            running[k] = False


def _one_or_list(values: list[Any]) -> Any:
    """A checkpoint of ``fit`` holds its one history, hyperparameters, ...; a sweep's holds lists of them."""
    return values[0] if len(values) == 1 else values


def _log_epoch(
    t: int,
    trainee: Trainee,
    writers: list[RunWriter],
    histories: list[History],
    running: list[bool],
    sweep: Sweep,
    labels: int,
    val: tuple[Tensor, Tensor, int] | None,
    config: TrainConfig,
    best: list[Tensor] | None,
) -> None:
    """Epoch t's scalars, all at θ(t): the costs, the accuracies (counted in the cost's sweep), ‖∇J‖ and the
    learning rate about to be used; the validation cost, which early stopping watches. Every rank computes them
    (the sums are reduced over the ranks); rank 0 writes them."""
    accuracies = (sweep.right.reshape(-1).double() / labels).tolist()
    norms, lrs = trainee.grad_norms(), trainee.learning_rates()
    val_costs, val_accuracies = _evaluate_all(trainee, *val) if val is not None else (None, None)
    for k, history in enumerate(histories):
        if not running[k]:
            continue
        scalars = {"cost/train": history.costs[-1], "accuracy/train": accuracies[k]}
        if val is not None:
            val_cost = scalars["cost/val"] = val_costs[k]
            scalars["accuracy/val"] = val_accuracies[k]
            history.val_epochs.append(t)
            history.val_costs.append(val_cost)
            if config.patience is not None:
                _early_stopping(t, val_cost, history, config.patience, trainee, k, best)
        scalars["grad_norm"], scalars["lr"] = norms[k], lrs[k]
        if writers:
            writers[k].add_step_scalars(scalars, t)


def _evaluate_all(trainee: Trainee, X: Any, Y: Any, n: int) -> tuple[list[float], list[float]]:
    """(J, accuracy) of each model on (X, Y), summed over the ranks."""
    J, _, right = trainee.evaluate(X, Y, n)
    totals = torch.stack([J.reshape(-1).double(), right.reshape(-1).double()])
    all_reduce_sum_([totals])
    return totals[0].tolist(), (totals[1] / (n * labels_per_row(trainee.reference))).tolist()


def _early_stopping(
    t: int, val_cost: float, history: History, patience: int, trainee: Trainee, k: int, best: list[Tensor]
) -> None:
    """Keep θ(t) of model k if its validation cost is the lowest so far; stop it after ``patience`` evaluations
    without improvement (its epoch still ends with the step under way)."""
    if history.best_epoch is None or val_cost < history.val_costs[history.val_epochs.index(history.best_epoch)]:
        history.best_epoch = t
        for b, p in zip(best, trainee.parameters()):
            trainee.select(b, k).copy_(trainee.select(p, k))
    elif len(history.val_epochs) - 1 - history.val_epochs.index(history.best_epoch) >= patience:
        history.stop_reason = "early_stopping"


def _finish(
    trainee: Trainee,
    X: Any,
    Y: Any,
    n: int,
    val: tuple[Tensor, Tensor, int] | None,
    histories: list[History],
    writers: list[RunWriter],
    config: TrainConfig,
    hparams: list[dict[str, object]],
) -> None:
    """The trained models' final cost and accuracies, logged at step ``epochs`` so that each curve ends at the
    final cost, with the dashboard and the hyperparameters and final metrics for the HParams view."""
    costs, accuracies = _evaluate_all(trainee, X, Y, n)
    val_costs, val_accuracies = _evaluate_all(trainee, *val) if val is not None else (None, None)
    for k, h in enumerate(histories):
        h.final_cost, h.train_accuracy = costs[k], accuracies[k]
        if val is not None:
            h.val_cost, h.val_accuracy = val_costs[k], val_accuracies[k]
        if writers:
            scalars = {"cost/train": h.final_cost, "accuracy/train": h.train_accuracy}
            if val is not None:
                scalars.update({"cost/val": h.val_cost, "accuracy/val": h.val_accuracy})
            writers[k].add_step_scalars(scalars, h.epochs)
            write_dashboard(writers[k], trainee.model(k), X, Y, h.epochs)
            _write_summary(
                writers[k], trainee.model(k), config, trainee.optimizer_class, trainee.learning_rates()[k], hparams[k]
            )


@contextlib.contextmanager
def _writers(config: TrainConfig, rank: int, resume_from: str | Path | None, first: int, run_names: list[str] | None):
    """Rank 0's TensorBoard writers, one per model, opened after every output path was checked and locked
    (:func:`~torch_shallow.run.run_outputs`); none on other ranks or without ``log_dir``."""
    if rank != 0:
        yield []
        return
    runs = (
        None
        if config.log_dir is None
        else [config.log_dir / name for name in run_names]
        if run_names
        else [config.log_dir]
    )
    with run_outputs(
        config.log_dir, config.checkpoint, resume_from, runs, purge_step=first if resume_from is not None else None
    ) as writers:
        yield writers


def _absolute(config: TrainConfig) -> TrainConfig:
    """The config with absolute output paths, so that a checkpoint resumes from any working directory."""
    return dataclasses.replace(
        config,
        **{
            name: Path(getattr(config, name)).absolute()
            for name in ("log_dir", "checkpoint")
            if getattr(config, name) is not None
        },
    )


def _plain(config: TrainConfig) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}


class _Checkpoints:
    """Rank 0 writes ``config.checkpoint`` (if set) from ``state()``, flushing TensorBoard first so that a failing
    disk shows at the latest here; remembers the last epoch on disk, for the messages."""

    def __init__(self, config: TrainConfig, rank: int, state: Callable[[], dict[str, object]]) -> None:
        self.path = config.checkpoint if rank == 0 else None
        self.state, self.epoch = state, None

    def save(self, writers: list[RunWriter]) -> None:
        for writer in writers:
            writer.flush()
        if self.path is not None:
            state = self.state()
            save_checkpoint(self.path, state)
            self.epoch = _epochs(state["history"])

    def resume_hint(self) -> str:
        return "" if self.path is None else f"; resume from {self.path}"

    def after_failure(self, writers: list[RunWriter]) -> str:
        """Try once more to save the last whole epoch; say what is on disk."""
        if self.path is None:
            return "no checkpoint was set"
        try:
            save_checkpoint(self.path, self.state())
            return f"checkpoint written{self.resume_hint()}"
        except OSError as error:
            last = "none was written" if self.epoch is None else f"the last one, of epoch {self.epoch}, is intact"
            return f"the checkpoint could not be written either ({error}); {last}"


def _epochs(history: dict[str, Any] | list[dict[str, Any]]) -> int:
    return max(h["epochs"] for h in history) if isinstance(history, list) else history["epochs"]


def _resumed_histories(
    path: str | Path, trainee: Trainee, data: dict[str, object], config: TrainConfig
) -> tuple[list[History], dict[str, Tensor] | None]:
    """The histories of the checkpointed run, with the trainee restored, and the best validation epoch's weights if
    the run kept them. A model that ended stays ended, but one that "converged" only if its last two costs meet this
    ``tol`` too, so that a converged run takes no more steps and a smaller ``tol`` lets it go on."""
    state = resume_state(path, trainee, data)
    saved = state["history"]
    histories = [History(**h) for h in (saved if isinstance(saved, list) else [saved])]
    for h in histories:
        if h.converged and not (config.tol > 0 and len(h.costs) >= 2 and abs(h.costs[-1] - h.costs[-2]) < config.tol):
            h.stop_reason = "max_epochs"
    return histories, state.get("best")


def _write_summary(
    writer: RunWriter, model: ShallowNet, config: TrainConfig, optimizer: str, lr: float, hparams: dict[str, object]
) -> None:
    """The run's hyperparameters, for the HParams dashboard, whose metrics are the curves' last points. Of
    ``hparams``, values that are None (options not used) and the settings of where and in what precision it ran are
    kept in the checkpoint only."""
    run = {
        "lr": lr,
        "max_epochs": config.max_epochs,
        "tol": config.tol,
        "optimizer": optimizer,
        "hidden_features": model.hidden_features,
        "activation": model.activation,
        **{k: v for k, v in hparams.items() if v is not None and k not in RUN_SETTINGS},
    }
    if config.patience is not None:
        run["patience"] = config.patience
    if model.output != "sigmoid":
        run["output"] = model.output
    write_hparams(writer, run)


def _rows_over_ranks(X: Tensor | NpyRows, model: ShallowNet) -> tuple[int, int]:
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


def _checked(
    X: Tensor | NpyRows, Y: Tensor | NpyRows, model: ShallowNet, fingerprint: Fingerprint | None, first_row: int
) -> Tensor | NpyRows:
    """Check (X, Y) once and add them to ``fingerprint``; returns Y as (n, d2) in X's dtype. On-disk data is read
    through once, block by block, for both."""
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


def _checked_val(val: object, model: ShallowNet) -> tuple[Tensor, Tensor, int]:
    """(X_val, Y_val (n_val, d2), global n_val) from the pair ``val``, checked as the training data."""
    if not isinstance(val, (tuple, list)) or len(val) != 2:
        raise TypeError(
            f"val must be a pair (X_val, Y_val), got {type(val).__name__}"
            + (f" of length {len(val)}" if isinstance(val, (tuple, list)) else "")
        )
    X_val, Y_val = val
    n_val, _ = _rows_over_ranks(X_val, model)
    try:
        return X_val, _checked(X_val, Y_val, model, None, 0), n_val
    except (TypeError, ValueError) as error:
        raise type(error)(f"val: {error}") from None


def _reduce_over_ranks(sweep: Sweep, trainee: Trainee, signalled: int) -> int:
    """Sum J, ∇J, the right answers and the ranks' stop signals over the ranks in one collective, so that all of
    them stop after the same epoch; returns the signal this rank received, else one that another rank received, 0
    for none."""
    flags = sweep.J.new_tensor([float(signalled == s) for s in STOP_SIGNALS])
    right = [] if sweep.right is None else [sweep.right]
    all_reduce_sum_([sweep.J, *trainee.gradients(), *right, flags])
    return signalled or next((int(s) for s, count in zip(STOP_SIGNALS, flags.tolist()) if count > 0), 0)


def _divergence_limit(history: History, cost: float) -> float:
    return DIVERGENCE_FACTOR * max(history.costs[0] if history.costs else cost, 1.0)


def _diverged(
    t: int, cost: float, history: History, trainee: Trainee, k: int, params: list[Tensor], last_good: list[Tensor]
) -> None:
    """Stop model k at a NaN, inf or runaway J(θ(t)), putting back θ(t-1), whose cost was fine."""
    if not history.costs:
        raise ValueError(f"the initial parameters give a cost of {cost}; check the model's parameters for NaN or inf")
    for p, good in zip(params, last_good):
        trainee.select(p, k).copy_(trainee.select(good, k))
    history.stop_reason = "diverged"
