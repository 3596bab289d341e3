"""Batch gradient descent, the slides' algorithm, with TensorBoard logging and checkpoints.

    1. θ(0) at random (the model's own ``reset_parameters``; ``fit`` never re-initialises)
    2. ∇J(θ(t)) over all n samples
    3. θ(t+1) = θ(t) - α ∇J(θ(t))
    4. back to 2 until convergence
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from .board import write_dashboard, write_graph, write_hparams, write_layout
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .distributed import all_reduce_sum_, broadcast_parameters_, world
from .functional import auto_block_rows, cross_entropy, forward_pass, row_blocks
from .module import ShallowNet
from .ondisk import NpyRows
from .parallel import threads_for_training
from .validation import check_features, check_targets

# The cost has diverged once it exceeds this many times max(J(θ(0)), 1). Gradient descent with a workable step
# lowers J; a step far too large throws the logits out by orders of magnitude, and J with them, where it may
# oscillate without ever becoming NaN.
DIVERGENCE_FACTOR = 100.0


@dataclass
class TrainConfig:
    """How ``fit`` trains. The defaults are the planar experiment's."""

    lr: float = 1.2  # α, the step size; 1.2 is the deeplearning.ai course's value for the planar data
    max_epochs: int = 10_000  # at most this many gradient steps, one per epoch over all n samples
    tol: float = 1e-9  # stop once |J(θ(t)) - J(θ(t-1))| < tol, "until convergence"; 0 turns it off
    log_dir: str | Path | None = None  # TensorBoard run directory; None writes nothing
    log_every: int = 1  # write scalars at epochs 0, k, 2k, ...
    dashboard_every: int = 1000  # histograms of θ and ∇J, and the decision boundary of 2-D data, every k epochs
    checkpoint: str | Path | None = None  # checkpoint file, rewritten every checkpoint_every epochs and at the end
    checkpoint_every: int = 1000  # epochs between checkpoints
    progress: bool | None = None  # tqdm bar; None shows it only when the output is a terminal

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        for name in ("max_epochs", "log_every", "dashboard_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass
class History:
    """What ``fit`` did."""

    costs: list[float] = field(default_factory=list)  # costs[t] = J(θ(t)), before epoch t's update
    epochs: int = 0  # gradient steps taken; len(costs) == epochs
    stop_reason: str = ""  # "converged" (|ΔJ| < tol) or "max_epochs"
    final_cost: float = math.nan  # J(θ(epochs)), the trained model's cost
    train_accuracy: float = math.nan  # fraction of training labels the trained model predicts
    val_cost: float | None = None  # J on the validation data, if any, at the end
    val_accuracy: float | None = None  # accuracy on the validation data, if any, at the end

    @property
    def converged(self) -> bool:
        return self.stop_reason == "converged"

    def summary(self) -> str:
        val = "" if self.val_accuracy is None else f", validation accuracy {100 * self.val_accuracy:.2f}%"
        return (f"{self.epochs} epochs ({self.stop_reason}), final cost {self.final_cost:.6f}, "
                f"training accuracy {100 * self.train_accuracy:.2f}%{val}")


class TrainingDiverged(RuntimeError):
    """The cost became NaN or inf, or rose far above where it started; the model keeps θ of the last good epoch."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C ended training after a whole epoch; ``checkpoint`` is the file to resume from, if one was set."""

    def __init__(self, message: str, history: History, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.history = history
        self.checkpoint = checkpoint


@torch.no_grad()
def evaluate(model: ShallowNet, X: Tensor, Y: Tensor, n: int | None = None) -> tuple[float, float]:
    """(J, accuracy) of the model on (X, Y (n, d2)), block by block; accuracy counts A2 > 0.5, that is Z2 > 0.

    In a distributed run each rank passes its shard and the global n, and the sums are reduced over the ranks.
    """
    n = X.shape[0] if n is None else n
    params = (model.W1, model.b1, model.W2, model.b2)
    totals = torch.zeros(2, dtype=torch.float64, device=model.W1.device)  # Σ of J's terms / n, right answers
    for X_rows, Y_rows in row_blocks(X, Y, auto_block_rows(model.W1)):
        _, Z2 = forward_pass(X_rows, *params, model.activation)
        totals[0] += cross_entropy(Z2, Y_rows, n)
        totals[1] += ((Z2 > 0) == (Y_rows > 0.5)).sum()
    all_reduce_sum_([totals])
    return totals[0].item(), totals[1].item() / (n * model.out_features)


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
    ``optimizer``: by default ``torch.optim.SGD(lr=config.lr)`` without momentum, which is
    θ(t+1) = θ(t) - α∇J. X and Y are checked once, before the first epoch, not at every epoch.

    In a distributed run (``torch.distributed`` initialised, as ``torchrun`` and the command line do), each rank
    passes its own contiguous shard of the rows, of any size: every rank starts from rank 0's parameters, each
    epoch's J and ∇J are summed over the ranks with the global n in dZ2 = n⁻¹(A2 - Y), so they are the exact
    full-batch values, and every rank takes the same step. Only rank 0 writes TensorBoard, checkpoints and the
    progress bar; the values it logs are the global ones.

    Args:
        model: the network; its parameters are updated in place.
        X: (n, d) features, on the model's device and in its dtype, or an on-disk
            :class:`~torch_shallow.ondisk.NpyRows`, read block by block at every epoch.
        Y: (n, d2) or (n,) labels in [0, 1], a tensor or an ``NpyRows``.
        config: see :class:`TrainConfig`.
        optimizer: any ``torch.optim`` optimizer over ``model.parameters()``, instead of plain SGD.
        val: validation data (X_val, Y_val), evaluated at every logged epoch (``cost/val``, ``accuracy/val``) and
            at the end; it plays no part in training. In a distributed run each rank passes its shard of it.
        hparams: extra hyperparameters for TensorBoard's HParams dashboard and the checkpoint (data set, seed, ...).
        resume_from: a checkpoint written by an earlier ``fit`` of the same model, data and optimizer: training goes
            on from its epoch, with its parameters, optimizer state, history and RNG state, and TensorBoard drops
            whatever the interrupted run logged after it. The result equals an uninterrupted run's, bit for bit on CPU.

    Returns:
        The :class:`History`: the cost at every epoch, why it stopped, the final cost and accuracy.

    Raises:
        TrainingDiverged: J(θ(t)) is NaN or inf, or above ``DIVERGENCE_FACTOR`` × max(J(θ(0)), 1).
        TrainingInterrupted: on Ctrl-C (SIGINT), after the epoch in progress and a checkpoint.
        CheckpointError: ``resume_from`` is missing, damaged, or does not fit the model or optimizer.
    """
    config = config or TrainConfig()
    rank, size = world()
    Y = _checked(X, Y, model)
    n = _global_rows(X, model)
    if val is not None:
        val = val[0], _checked(*val, model), _global_rows(val[0], model)  # (X_val, Y_val, global n_val)
    if optimizer is None:
        # PyTorch's own choice of implementation: on CPU the plain loop over W1, b1, W2, b2, which on the planar
        # data is 4 µs per epoch faster than fused=True or foreach=True, whose set-up outweighs four tiny updates
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    history = History(stop_reason="max_epochs")
    if resume_from is not None:
        history = _restore(resume_from, model, optimizer)
    broadcast_parameters_(model)
    hparams = hparams or {}
    params = [p.detach() for p in model.parameters()]  # views of the parameters, updated in place by the optimizer
    last_good = [p.clone() for p in params]  # θ of the last epoch whose cost was finite and bounded
    logging = config.log_dir is not None
    writer = None
    if logging and rank == 0:
        writer = SummaryWriter(str(config.log_dir), purge_step=history.epochs if resume_from is not None else None)
        if history.epochs == 0:
            write_layout(writer)
            write_graph(writer, model, X[:1])
    bar = tqdm(range(history.epochs, config.max_epochs), initial=history.epochs, total=config.max_epochs,
               desc="train", unit="epoch",
               disable=rank != 0 or (None if config.progress is None else not config.progress))

    def save() -> None:
        if config.checkpoint is not None and rank == 0:
            save_checkpoint(config.checkpoint, _state(model, optimizer, history, config, hparams))

    try:
        with threads_for_training(X, model.hidden_features), _deferred_sigint() as interrupted:
            for t in bar:
                J = model.cost_and_grad(X, Y, n=n, check_inputs=False)  # J(θ(t)), ∇J into .grad; X, Y checked
                stop = _reduce_over_ranks(J, model, interrupted()) if size > 1 else interrupted()
                cost = J.item()
                if not cost <= _divergence_limit(history, cost):  # also true for NaN
                    _diverged(t, cost, history, config.lr, params, last_good)
                history.costs.append(cost)
                if logging and t % config.log_every == 0:
                    scalars = _epoch_scalars(cost, model, X, Y, n, optimizer, val)
                    if writer is not None:
                        for tag, value in scalars.items():
                            writer.add_scalar(tag, value, t)
                if writer is not None and t % config.dashboard_every == 0:
                    write_dashboard(writer, model, X, Y, t)
                if not bar.disable:
                    bar.set_postfix(cost=f"{cost:.6f}", refresh=False)
                torch._foreach_copy_(last_good, params)
                optimizer.step()
                history.epochs = t + 1
                if config.tol > 0 and t > 0 and abs(cost - history.costs[-2]) < config.tol:
                    history.stop_reason = "converged"
                    break
                if stop:
                    save()
                    where = f"; resume from {config.checkpoint}" if config.checkpoint is not None else ""
                    raise TrainingInterrupted(f"interrupted after epoch {history.epochs}{where}", history,
                                              None if config.checkpoint is None else Path(config.checkpoint))
                if history.epochs % config.checkpoint_every == 0:
                    save()
        history.final_cost, history.train_accuracy = evaluate(model, X, Y, n)
        if val is not None:
            history.val_cost, history.val_accuracy = evaluate(model, *val)
        save()
        if writer is not None:
            write_dashboard(writer, model, X, Y, history.epochs)
            _write_summary(writer, model, config, optimizer, hparams, history)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return history


def _write_summary(writer: SummaryWriter, model: ShallowNet, config: TrainConfig, optimizer: torch.optim.Optimizer,
                   hparams: dict[str, object], history: History) -> None:
    """The run's hyperparameters and final metrics, for the HParams dashboard."""
    run = {**dataclasses.asdict(config), "optimizer": type(optimizer).__name__,
           "hidden_features": model.hidden_features, "activation": model.activation, **hparams}
    for key in ("log_dir", "checkpoint", "checkpoint_every", "dashboard_every", "progress"):
        run.pop(key)  # where and how often things are written: not hyperparameters
    metrics = {"final/cost": history.final_cost, "final/accuracy": history.train_accuracy}
    if history.val_accuracy is not None:
        metrics.update({"final/val_cost": history.val_cost, "final/val_accuracy": history.val_accuracy})
    write_hparams(writer, run, metrics, history.epochs)


def _checked(X: Tensor | NpyRows, Y: Tensor | NpyRows, model: ShallowNet) -> Tensor | NpyRows:
    """Check (X, Y) once; returns Y as (n, d2) in X's dtype. On-disk data is read through once, block by block."""
    if isinstance(X, Tensor) and isinstance(Y, Tensor):
        check_features(X, model.W1)
        return check_targets(Y, (X.shape[0], model.out_features), like=X)
    if X.shape[1] != model.in_features or Y.shape != (X.shape[0], model.out_features):
        raise ValueError(f"on-disk data of shapes X {X.shape}, Y {Y.shape} does not fit the model: expected "
                         f"X (n, {model.in_features}) and Y (n, {model.out_features}) with the same n")
    block_rows = auto_block_rows(model.W1)
    for start, (X_rows, Y_rows) in zip(range(0, X.shape[0], block_rows), row_blocks(X, Y, block_rows)):
        try:
            check_features(X_rows, model.W1)
            check_targets(Y_rows, (X_rows.shape[0], model.out_features), like=model.W1)
        except ValueError as error:
            raise ValueError(f"{error}, in the block of rows from {start} of {X!r} and {Y!r}") from None
    return Y


def _global_rows(X: Tensor | NpyRows, model: ShallowNet) -> int:
    """n, the number of samples over all ranks."""
    count = torch.tensor([X.shape[0]], dtype=torch.float64, device=model.W1.device)
    all_reduce_sum_([count])
    return int(count.item())


def _reduce_over_ranks(J: Tensor, model: ShallowNet, interrupted: bool) -> bool:
    """Sum J, ∇J and the ranks' Ctrl-C flags over the ranks in one collective; whether any rank was interrupted,
    so that all of them stop after the same epoch."""
    flag = J.new_tensor(float(interrupted))
    all_reduce_sum_([J, *(p.grad for p in model.parameters() if p.grad is not None), flag])
    return flag.item() > 0


def _epoch_scalars(cost: float, model: ShallowNet, X: Tensor | NpyRows, Y: Tensor | NpyRows, n: int,
                   optimizer: torch.optim.Optimizer, val: tuple[Tensor, Tensor, int] | None) -> dict[str, float]:
    """An epoch's scalars, all at θ(t): the costs, the accuracies, ‖∇J‖ and the learning rate about to be used.
    Every rank computes them (the accuracies are sums over the ranks); rank 0 writes them."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    scalars = {"cost/train": cost, "accuracy/train": evaluate(model, X, Y, n)[1]}
    if val is not None:
        scalars["cost/val"], scalars["accuracy/val"] = evaluate(model, *val)
    scalars["grad_norm"] = torch.nn.utils.get_total_norm(grads).item()
    scalars["lr"] = optimizer.param_groups[0]["lr"]
    return scalars


def _divergence_limit(history: History, cost: float) -> float:
    return DIVERGENCE_FACTOR * max(history.costs[0] if history.costs else cost, 1.0)


def _diverged(t: int, cost: float, history: History, lr: float, params: list[Tensor], last_good: list[Tensor]):
    """Stop at a NaN, inf or runaway J(θ(t)), putting back θ(t-1), whose cost was fine."""
    if not history.costs:
        raise ValueError(f"the initial parameters give a cost of {cost}; check the model's parameters for NaN or inf")
    torch._foreach_copy_(params, last_good)
    raise TrainingDiverged(
        f"training diverged at epoch {t}: the cost went from {history.costs[0]:.6g} at epoch 0 to {cost:.6g} "
        f"with learning rate {lr:g}; try a smaller learning rate. The model keeps the parameters of epoch {t - 1}.",
        history)


def _state(model: ShallowNet, optimizer: torch.optim.Optimizer, history: History, config: TrainConfig,
           hparams: dict[str, object]) -> dict[str, object]:
    plain = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": dataclasses.asdict(history),
            "rng": rng, "config": plain, "hparams": dict(hparams)}


def _restore(path: str | Path, model: ShallowNet, optimizer: torch.optim.Optimizer) -> History:
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} does not fit this model or optimizer: {error}") from error
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    history.stop_reason = "max_epochs"
    return history


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[Callable[[], bool]]:
    """Ctrl-C only raises a flag that the loop reads between epochs, so that an epoch is never cut in half and a
    checkpoint can be written; a second Ctrl-C interrupts at once. Signals reach the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received = []
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        received.append(signum)
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)
