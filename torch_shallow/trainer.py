"""Batch gradient descent, the slides' algorithm, with TensorBoard logging.

    1. θ(0) at random (the model's own ``reset_parameters``; ``fit`` never re-initialises)
    2. ∇J(θ(t)) over all n samples
    3. θ(t+1) = θ(t) - α ∇J(θ(t))
    4. back to 2 until convergence
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from .board import write_hparams
from .module import ShallowNet
from .validation import check_features, check_targets


@dataclass
class TrainConfig:
    """How ``fit`` trains. The defaults are the planar experiment's."""

    lr: float = 1.2  # α, the step size; 1.2 is the deeplearning.ai course's value for the planar data
    max_epochs: int = 10_000  # at most this many gradient steps, one per epoch over all n samples
    tol: float = 1e-9  # stop once |J(θ(t)) - J(θ(t-1))| < tol, "until convergence"; 0 turns it off
    log_dir: str | Path | None = None  # TensorBoard run directory; None writes nothing
    log_every: int = 1  # write scalars at epochs 0, k, 2k, ...
    progress: bool | None = None  # tqdm bar; None shows it only when the output is a terminal

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if isinstance(self.max_epochs, bool) or not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"max_epochs must be an integer >= 1, got {self.max_epochs!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        if isinstance(self.log_every, bool) or not isinstance(self.log_every, int) or self.log_every < 1:
            raise ValueError(f"log_every must be an integer >= 1, got {self.log_every!r}")


@dataclass
class History:
    """What ``fit`` did."""

    costs: list[float] = field(default_factory=list)  # costs[t] = J(θ(t)), before epoch t's update
    epochs: int = 0  # gradient steps taken; len(costs) == epochs
    stop_reason: str = ""  # "converged" (|ΔJ| < tol) or "max_epochs"
    final_cost: float = math.nan  # J(θ(epochs)), the trained model's cost
    train_accuracy: float = math.nan  # fraction of training labels the trained model predicts

    @property
    def converged(self) -> bool:
        return self.stop_reason == "converged"

    def summary(self) -> str:
        return (f"{self.epochs} epochs ({self.stop_reason}), final cost {self.final_cost:.6f}, "
                f"training accuracy {100 * self.train_accuracy:.2f}%")


# ATen splits element-wise work across threads only above this many elements (at::internal::GRAIN_SIZE).
_GRAIN_SIZE = 32768


@contextlib.contextmanager
def _threads_for(X: Tensor, hidden_features: int) -> Iterator[None]:
    """One intra-op thread while training on data too small for any operation to be split across threads: the
    others would only add synchronisation (on the planar data, 57 instead of 64 µs per epoch on 2 cores)."""
    if X.device.type != "cpu" or X.shape[0] * max(X.shape[1], hidden_features) >= _GRAIN_SIZE:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def accuracy(model: ShallowNet, X: Tensor, Y: Tensor) -> float:
    """Fraction of labels predicted right, 1 where A2 > 0.5; Y (n, d2) in {0, 1}."""
    return (model.predict(X) == Y).to(torch.float64).mean().item()


def _log_epoch(writer: SummaryWriter, t: int, cost: float, model: ShallowNet, X: Tensor, Y: Tensor,
               optimizer: torch.optim.Optimizer) -> None:
    """Epoch t's scalars, all at θ(t): the cost, the accuracy, ‖∇J‖ and the learning rate about to be used."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    writer.add_scalar("cost/train", cost, t)
    writer.add_scalar("accuracy/train", accuracy(model, X, Y), t)
    writer.add_scalar("grad_norm", torch.nn.utils.get_total_norm(grads).item(), t)
    writer.add_scalar("lr", optimizer.param_groups[0]["lr"], t)


def fit(
    model: ShallowNet,
    X: Tensor,
    Y: Tensor,
    config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    hparams: dict[str, object] | None = None,
) -> History:
    """Train ``model`` on all of (X, Y) by batch gradient descent, from its current parameters.

    Each epoch t computes J(θ(t)) and ∇J(θ(t)) over all n samples through ``model.cost_and_grad`` (the values
    of ``model.cost(X, Y).backward()``, without the autograd engine's fixed cost), then takes one step of
    ``optimizer``: by default ``torch.optim.SGD(lr=config.lr, fused=True)`` without momentum, which is
    θ(t+1) = θ(t) - α∇J. X and Y are checked once, before the first epoch, not at every epoch.

    Args:
        model: the network; its parameters are updated in place.
        X: (n, d) features, on the model's device and in its dtype.
        Y: (n, d2) or (n,) labels in [0, 1].
        config: see :class:`TrainConfig`.
        optimizer: any ``torch.optim`` optimizer over ``model.parameters()``, instead of plain SGD.
        hparams: extra hyperparameters for TensorBoard's HParams dashboard (data set, seed, ...).

    Returns:
        The :class:`History`: the cost at every epoch, why it stopped, the final cost and accuracy.
    """
    config = config or TrainConfig()
    check_features(X, model.W1)
    Y = check_targets(Y, (X.shape[0], model.out_features), like=X)
    if optimizer is None:
        # fused: one kernel for the whole update θ ← θ - α∇J, where the per-tensor loop costs more than the update
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, fused=True)
    writer = SummaryWriter(str(config.log_dir)) if config.log_dir is not None else None
    history = History(stop_reason="max_epochs")
    bar = tqdm(range(config.max_epochs), desc="train", unit="epoch",
               disable=None if config.progress is None else not config.progress)
    try:
        with _threads_for(X, model.hidden_features):
            for t in bar:
                J = model.cost_and_grad(X, Y, check_inputs=False)  # J(θ(t)) and ∇J into .grad; X, Y checked above
                cost = J.item()
                history.costs.append(cost)
                if writer is not None and t % config.log_every == 0:
                    _log_epoch(writer, t, cost, model, X, Y, optimizer)
                if not bar.disable:
                    bar.set_postfix(cost=f"{cost:.6f}", refresh=False)
                optimizer.step()
                history.epochs = t + 1
                if config.tol > 0 and t > 0 and abs(cost - history.costs[-2]) < config.tol:
                    history.stop_reason = "converged"
                    break
        with torch.no_grad():
            history.final_cost = model.cost(X, Y, check_inputs=False).item()
        history.train_accuracy = accuracy(model, X, Y)
        if writer is not None:
            run = {**dataclasses.asdict(config), "optimizer": type(optimizer).__name__,
                   "hidden_features": model.hidden_features, "activation": model.activation, **(hparams or {})}
            run.pop("log_dir"), run.pop("progress")
            write_hparams(writer, run, {"final/cost": history.final_cost,
                                        "final/accuracy": history.train_accuracy}, history.epochs)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return history
