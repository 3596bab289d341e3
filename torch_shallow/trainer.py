"""Batch gradient descent, the slides' algorithm::

    1. θ(0) at random (the model's own ``reset_parameters``; ``fit`` never re-initialises)
    2. J(θ(t)) and ∇J(θ(t)) over all n samples
    3. θ(t+1) = θ(t) - α ∇J(θ(t))
    4. back to 2 until convergence

One loop, :func:`train`, runs these steps for whatever is trained: one model and its optimizer (:func:`fit`), or a
stack of models at once (:func:`~torch_shallow.stack.fit_many`). What happens around it is done by callbacks
(:mod:`~torch_shallow.callbacks`), which :class:`TrainConfig` builds: validation, early stopping, TensorBoard,
checkpoints, the progress bar and stop signals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, cast

import torch
from torch import Tensor

from .callbacks import Callback, Events, Run, state_keys
from .checkpoint import Checkpointing, architecture, optimizer_changes, resume_state, training_state
from .compiled import CompiledEpochs, compiled_epochs
from .distributed import broadcast_, world
from .early_stopping import EarlyStopping
from .errors import TrainingDiverged
from .evaluation import Evaluation
from .fingerprint import Fingerprint
from .functional import RowPass, auto_block_rows
from .hyperparameters import CONSTRAINTS
from .module import ShallowNet
from .ondisk import NpyRows
from .parallel import threads_for_training
from .progress import ProgressBar
from .run import run_outputs
from .signals import StopSignals
from .stopping import DIVERGENCE_FACTOR, divergence_limit, record_costs, until_convergence
from .validation import (
    check_fits_in_memory,
    check_parameters,
    check_training_data,
    check_validation_data,
    rows_over_ranks,
)

__all__ = ["History", "TrainConfig", "fit", "run_training", "train"]

# TensorBoard keeps 1,000 points of each scalar tag by default (its reservoir size): more buys nothing.
LOGGED_POINTS = 1000


@dataclass
class TrainConfig:
    """How ``fit`` trains, and what it records. The defaults are the planar experiment's."""

    lr: float = 1.2
    """α, the step size; 1.2 is the deeplearning.ai course's value for the planar data."""
    max_epochs: int = 10_000
    """At most this many gradient steps, one per epoch over all n samples."""
    tol: float = 1e-9
    """Stop once ``|J(θ(t)) - J(θ(t-1))| < tol``, "until convergence"; 0 turns it off."""
    log_dir: str | Path | None = None
    """TensorBoard run directory, new or empty unless resuming; None writes nothing."""
    log_every: int | None = None
    """Scalars (and the validation cost) at epochs 0, k, 2k, ...; None: about 1,000 points (``LOGGED_POINTS``)."""
    dashboard_every: int = 1000
    """Histograms of θ and ∇J, and the decision boundary of 2-D data, every k epochs."""
    dashboard_models: int | None = 8
    """Of a stack, the dashboards of at most this many models, those of the lowest cost at each dashboard epoch after
    0 and at the end; None: all, from epoch 0."""
    checkpoint: str | Path | None = None
    """Checkpoint file, rewritten every ``checkpoint_every`` epochs and at the end."""
    checkpoint_every: int = 1000
    """Epochs between checkpoints."""
    patience: int | None = None
    """Early stopping: stop once the validation cost has not improved for this many evaluations (every
    ``log_every`` epochs); needs validation data; None: off."""
    restore_best: bool = True
    """With ``patience``, end with θ of the epoch of the lowest validation cost."""
    progress: bool | None = None
    """A progress bar; None shows it in a terminal or a notebook."""
    compile: str | bool = "auto"
    """Run the epochs between two events as compiled code (:mod:`~torch_shallow.compiled`): True, False, or "auto",
    where it is expected to repay the compile: long runs on small data."""

    def __post_init__(self) -> None:
        # NumPy's scalars are accepted and stored as Python numbers, for a checkpoint holds plain values.
        for name in (
            "lr",
            "tol",
            "max_epochs",
            "log_every",
            "dashboard_every",
            "dashboard_models",
            "checkpoint_every",
            "patience",
        ):
            value = getattr(self, name)
            if value is not None or name not in ("log_every", "dashboard_models", "patience"):
                setattr(self, name, CONSTRAINTS.get(name, CONSTRAINTS["max_epochs"]).check(name, value))
        if not (self.compile == "auto" or isinstance(self.compile, bool)):
            raise ValueError(f"compile must be 'auto', True or False, got {self.compile!r}")
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

    def callbacks(
        self,
        *,
        validation: bool,
        checkpoints: Checkpointing,
        signals: StopSignals,
        rank: int,
        hparams: list[dict[str, object]],
        optimizer: str,
        user: Sequence[Callback] = (),
    ) -> list[Callback]:
        """The built-in callbacks this config asks for, in the order they run, with the user's after the ones that
        measure and before the ones that save: early stopping (which the evaluation's final values must follow),
        evaluation, TensorBoard, the user's, checkpoints, the progress bar, stop signals."""
        logging = self.log_dir is not None  # every rank computes what is logged (the sums over ranks); rank 0 writes
        every = self.every if validation or logging else None
        callbacks: list[Callback] = []
        if self.patience is not None:
            callbacks.append(EarlyStopping(self.patience, self.every, self.restore_best))
        callbacks.append(Evaluation(every))
        if logging:
            from .board import Dashboard, TensorBoard  # TensorBoard and Pillow load only for runs that log

            summary = {"max_epochs": self.max_epochs, "tol": self.tol, "optimizer": optimizer}
            if self.patience is not None:
                summary["patience"] = self.patience
            callbacks += [
                TensorBoard(self.every, hparams, summary),
                Dashboard(self.dashboard_every, self.dashboard_models),
            ]
        progress = ProgressBar(self.max_epochs, self.progress if rank == 0 else False)
        return [*callbacks, *user, checkpoints, progress, signals]


@dataclass
class History:
    """What ``fit`` did."""

    costs: list[float] = field(default_factory=list)
    """costs[t] = J(θ(t)), before epoch t's update."""
    epochs: int = 0
    """Gradient steps taken; ``len(costs) == epochs``."""
    stop_reason: str = ""
    """"converged" (``|ΔJ| < tol``), "max_epochs", "early_stopping", "diverged", a callback's reason, or "" while
    training goes on (also after Ctrl-C or SIGTERM)."""
    final_cost: float = math.nan
    """J of the trained model: θ(epochs), or the best epoch's θ with ``restore_best``."""
    train_accuracy: float = math.nan
    """The fraction of training labels the trained model predicts."""
    val_cost: float | None = None
    """J on the validation data, if any, at the end."""
    val_accuracy: float | None = None
    """The accuracy on the validation data, if any, at the end."""
    val_epochs: list[int] = field(default_factory=list)
    """The epochs t at which the validation cost was taken."""
    val_costs: list[float] = field(default_factory=list)
    """J_val(θ(t)) at those epochs."""
    best_epoch: int | None = None
    """With early stopping, the epoch of the lowest validation cost."""
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """What callbacks logged (``Run.log``): (epoch, value) pairs by tag."""

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


class Trainee(Protocol):
    """What :func:`train` trains: K models (1 for ``fit``) updated together, as W1, b1, W2, b2 with a leading axis of
    K for a stack (see :func:`~torch_shallow.functional.cost_and_gradients`). Per-model values are lists of K."""

    W1: Tensor
    b1: Tensor
    W2: Tensor
    b2: Tensor
    activation: Any
    output: str
    reference: ShallowNet  # a model of the trainee's sizes, dtype and device, for the checks of the data
    optimizer_class: str

    def cost_and_grad(self, X: Any, Y: Any, n: int, count_right: bool) -> RowPass: ...  # J (K,), ∇J kept
    def gradients(self) -> list[Tensor]: ...  # ∇J of the last pass, summed over the ranks in place
    def parameters(self) -> list[Tensor]: ...  # θ, updated in place
    def step(self, running: list[bool]) -> None: ...  # θ ← θ - α ∇J for the running models, keeping θ
    def restore_previous(self, k: int) -> None: ...  # model k back to θ before the last step
    def select(self, tensor: Tensor, k: int) -> Tensor: ...  # model k's part of a parameter-shaped tensor
    def grad_norms(self) -> list[float]: ...
    def learning_rates(self) -> list[float]: ...
    def models(self, indices: Sequence[int] | None = None) -> list[ShallowNet]: ...  # holding the current θ
    def weights(self) -> dict[str, Tensor]: ...  # for checkpoints, with optimizer_state, architecture, load
    def optimizer_state(self) -> dict[str, Any]: ...
    def architecture(self) -> dict[str, Any] | list[dict[str, Any]]: ...
    def hyperparameter_changes(self, saved: dict[str, Any]) -> list[str]: ...
    def load(self, weights: dict[str, Tensor], optimizer_state: dict[str, Any]) -> None: ...


def train(run: Run, events: Events, tol: float, compiled: CompiledEpochs | None = None) -> None:
    """The slides' steps 2-4 for every model of ``run`` until each has stopped, and the callbacks' events; with
    ``compiled``, the same steps for all the epochs up to the next event in one compiled call."""
    events.fit_start(run)
    stepped = False
    while not run.last:
        if compiled is not None:
            compiled(run, events.epochs_to_next(run))  # the steps below, compiled, up to the next event
        else:
            J = run.cost_and_grad().J  # 2. J(θ(t)), ∇J(θ(t)) over all n samples
            record_costs(run, J)  # J(θ(t)) into the histories; a NaN or runaway J stops its model at θ(t-1)
            run.trainee.step(run.running)  # 3. θ(t+1) = θ(t) - α ∇J(θ(t))
            until_convergence(run, tol)  # 4. back to 2 until |J(θ(t)) - J(θ(t-1))| < tol, or max_epochs
        stepped = True
        events.epoch_end(run)  # the callbacks due after epoch t, which may stop training
    events.fit_end(run, stepped)


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
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``model`` on all of (X, Y) by batch gradient descent, from its current parameters.

    Each epoch t computes J(θ(t)) and ∇J(θ(t)) over all n samples in one pass over the rows
    (:meth:`ShallowNet.gradient_pass`, the values of ``model.cost(X, Y).backward()`` without the autograd engine),
    then takes one step of ``optimizer``: by default plain gradient descent θ(t+1) = θ(t) - α∇J with α =
    ``config.lr``, the step of ``torch.optim.SGD(lr=α)`` without momentum, bit for bit. X and Y are checked once,
    before the first epoch, not at every epoch; so are the output paths, which are then locked against other runs
    (:mod:`torch_shallow.run`).

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
        val: validation data (X_val, Y_val), evaluated every ``config.every`` epochs (``cost/val``,
            ``accuracy/val``) and at the end; it plays no part in training, except for early stopping
            (``config.patience``). In a distributed run each rank passes its shard of it.
        hparams: extra hyperparameters for TensorBoard's HParams dashboard and the checkpoint (data set, seed, ...).
        resume_from: a checkpoint written by an earlier ``fit`` of the same model, data and optimizer: training goes
            on from its epoch, with its parameters, optimizer state, history, callbacks' states and RNG state, and
            TensorBoard drops whatever the interrupted run logged after it. The result equals an uninterrupted
            run's, bit for bit on CPU. ``max_epochs``, ``tol`` and how often things are written may differ from the
            first run's; a different architecture, optimizer, optimizer hyperparameter (such as ``lr``) or training
            data is refused. A run that has ended (converged, diverged, stopped early or reached ``max_epochs``)
            takes no more steps.
        callbacks: the user's :class:`~torch_shallow.callbacks.Callback`\\ s, run after the built-in ones that
            measure (evaluation, early stopping, TensorBoard) and before those that save (checkpoints).

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
    trainee = OneModel(model, optimizer, config.lr)
    history = run_training(
        trainee, X, Y, config, val=val, hparams=[hparams or {}], resume_from=resume_from, callbacks=callbacks
    )[0]
    if history.stop_reason == "diverged":
        t = history.epochs
        raise TrainingDiverged(
            f"training diverged at epoch {t}: the cost went from {history.costs[0]:.6g} at epoch 0 to a NaN, inf or "
            f"more than {DIVERGENCE_FACTOR:g} × max(that, 1) = {divergence_limit(history, 0.0):g}, with learning "
            f"rate {config.lr:g}; try a smaller learning rate. The model keeps the parameters of epoch {t - 1}.",
            history,
        )
    return history


class OneModel:
    """``fit``'s trainee: one ShallowNet and any ``torch.optim`` optimizer over its parameters, or, for
    ``optimizer=None``, plain gradient descent θ ← θ - α∇J with α = ``lr``.

    Plain gradient descent is the update ``torch.optim.SGD(lr=α).step()`` makes, bit for bit, taken here as one
    foreach update, without the set-up ``step`` does at each call (profiler scope, hooks, grad mode, the choice of
    implementation). The SGD itself is made only when a checkpoint saves or loads its state: making the first
    optimizer of a process imports ``torch._dynamo``, which takes a second.
    """

    def __init__(self, model: ShallowNet, optimizer: torch.optim.Optimizer | None, lr: float) -> None:
        self.reference = self._model = model
        self._optimizer, self._lr = optimizer, lr
        self.plain = optimizer is None
        self.optimizer_class = "SGD" if optimizer is None else type(optimizer).__name__
        self._leaves = list(model.parameters())
        if optimizer is not None:
            mine = {id(p) for p in self._leaves}
            theirs = [p for group in optimizer.param_groups for p in group["params"]]
            if not theirs or any(id(p) not in mine for p in theirs):
                raise ValueError(
                    "optimizer must be built over this model's parameters (model.parameters()); it holds "
                    f"{len(theirs)} tensors of which {sum(id(p) not in mine for p in theirs)} are not "
                    "the model's"
                )
        self._params = [p.detach() for p in self._leaves]  # views, updated in place by the optimizer
        self._previous = [p.clone() for p in self._params]  # θ before the last step

    W1 = property(lambda self: self._model.W1)
    b1 = property(lambda self: self._model.b1)
    W2 = property(lambda self: self._model.W2)
    b2 = property(lambda self: self._model.b2)
    activation = property(lambda self: self._model.activation)
    output = property(lambda self: self._model.output)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = torch.optim.SGD(self._leaves, lr=self._lr)
        return self._optimizer

    def cost_and_grad(self, X: Any, Y: Any, n: int, count_right: bool) -> RowPass:
        return self._model.gradient_pass(X, Y, n=n, count_right=count_right)

    def gradients(self) -> list[Tensor]:
        return [p.grad for p in self._leaves if p.grad is not None]

    def parameters(self) -> list[Tensor]:
        return self._params

    def step(self, running: list[bool]) -> None:
        if not running[0]:
            return
        torch._foreach_copy_(self._previous, self._params)
        if self.plain:
            pairs = [(p, q.grad) for p, q in zip(self._params, self._leaves) if q.grad is not None]
            params, grads = zip(*pairs)
            torch._foreach_add_(params, grads, alpha=-self._lr)  # θ ← θ - α∇J
        else:
            self.optimizer.step()

    def restore_previous(self, k: int) -> None:
        torch._foreach_copy_(self._params, self._previous)

    def select(self, tensor: Tensor, k: int) -> Tensor:
        return tensor

    def grad_norms(self) -> list[float]:
        return [torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in self.gradients()])).item()]

    def learning_rates(self) -> list[float]:
        return [self._lr if self.plain else self.optimizer.param_groups[0]["lr"]]

    def models(self, indices: Sequence[int] | None = None) -> list[ShallowNet]:
        return [self._model for _ in (indices if indices is not None else [0])]

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


def run_training(
    trainee: Trainee,
    X: Tensor | NpyRows,
    Y: Tensor | NpyRows,
    config: TrainConfig,
    *,
    val: tuple[Tensor, Tensor] | None,
    hparams: list[dict[str, object]],
    resume_from: str | Path | None,
    run_names: list[str] | None = None,
    callbacks: Sequence[Callback] = (),
) -> list[History]:
    """Check the data and the outputs, resume or start the histories, build the callbacks, and :func:`train`; see
    :func:`fit`. ``run_names`` names each model's TensorBoard run under ``config.log_dir`` (a stack); with one model
    the run is ``log_dir`` itself."""
    config = _absolute(config)
    log_dir, checkpoint = cast("tuple[Path | None, Path | None]", (config.log_dir, config.checkpoint))  # absolute
    reference = trainee.reference
    check_parameters(reference.W1, reference.b1, reference.W2, reference.b2)
    if not any(p.requires_grad for p in reference.parameters()):
        raise ValueError("none of the model's parameters requires a gradient: there is nothing to train")
    for k, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks[{k}] must be a torch_shallow.Callback, got {type(callback).__name__}")
    if reference.W1.device.type == "cpu":  # a block's activations, (block rows, K·d1) each, a handful of them
        units = trainee.W1.shape[:-1].numel()
        check_fits_in_memory(
            4 * auto_block_rows(trainee.W1) * units, reference.W1.element_size(), f"training {units:,} hidden units"
        )
    n, first_row = rows_over_ranks(X, reference)
    fingerprint = Fingerprint() if config.checkpoint is not None or resume_from is not None else None
    Y = check_training_data(X, Y, reference, fingerprint, first_row)
    data = {} if fingerprint is None else fingerprint.reduce(reference.W1.device)
    val_checked = None if val is None else check_validation_data(val, reference)
    if config.patience is not None and val is None:
        raise ValueError("early stopping (patience) needs validation data: pass val=(X_val, Y_val)")
    rank = world()[0]
    histories = [History() for _ in hparams]
    checkpoints = Checkpointing(
        checkpoint if rank == 0 else None,
        config.checkpoint_every,
        lambda: training_state(
            trainee,
            _one_or_list([dataclasses.asdict(h) for h in histories]),
            _plain(config),
            _one_or_list(hparams),
            data,
            dict(zip(state_keys(everything), (c.state_dict() for c in everything))),
        ),
    )
    signals = StopSignals(checkpoint, checkpoints.resume_hint)
    everything = config.callbacks(
        validation=val is not None,
        checkpoints=checkpoints,
        signals=signals,
        rank=rank,
        hparams=hparams,
        optimizer=trainee.optimizer_class,
        user=callbacks,
    )
    if resume_from is not None:
        histories[:] = _resumed(resume_from, trainee, data, config, everything)
    broadcast_(trainee.parameters())
    run = Run(trainee, X, Y, n, histories, config.max_epochs, val_checked)
    runs = None if log_dir is None else [log_dir / name for name in run_names or [""]]
    with contextlib.ExitStack() as stack:
        if rank == 0:
            stack.enter_context(run_outputs(log_dir, checkpoint, resume_from, runs))
        if runs is not None and rank == 0:
            from .board import open_writers

            purge_steps = None if resume_from is None else [h.epochs for h in histories]
            run.writers = stack.enter_context(open_writers(runs, purge_steps))
        stack.enter_context(threads_for_training(X, reference.hidden_features))
        stack.enter_context(signals)
        try:
            compiled = compiled_epochs(run, config.compile, config.tol, getattr(trainee, "plain", True))
            train(run, Events(everything), config.tol, compiled)
        except OSError as error:  # the disk is full, a file system went away: stop now, losing as little as we can
            for h in histories:
                del h.costs[h.epochs :]  # the epoch in progress is not done
            raise OSError(f"training stopped at epoch {run.epoch}: {error}; {checkpoints.after_failure()}") from error
    return histories


def _resumed(
    path: str | Path, trainee: Trainee, data: dict[str, Any], config: TrainConfig, callbacks: list[Callback]
) -> list[History]:
    """The histories of the checkpointed run, with the trainee and the callbacks restored. A model that ended stays
    ended, but one that "converged" only if its last two costs meet this ``tol`` too, so that a converged run takes
    no more steps and a smaller ``tol`` lets it go on, from its own epoch."""
    state = resume_state(path, trainee, data)
    saved = state["history"]
    histories = [History(**h) for h in (saved if isinstance(saved, list) else [saved])]
    for h in histories:
        if h.converged and not (config.tol > 0 and len(h.costs) >= 2 and abs(h.costs[-1] - h.costs[-2]) < config.tol):
            h.stop_reason = ""
        if h.stop_reason == "max_epochs" and h.epochs < config.max_epochs:
            h.stop_reason = ""
    for key, callback in zip(state_keys(callbacks), callbacks):
        if key in state["callbacks"]:
            callback.load_state_dict(state["callbacks"][key])
    return histories


def _one_or_list(values: list[Any]) -> Any:
    """A checkpoint of ``fit`` holds its one history, hyperparameters, ...; a stack's holds lists of them."""
    return values[0] if len(values) == 1 else values


def _absolute(config: TrainConfig) -> TrainConfig:
    """The config with absolute output paths, so that a checkpoint resumes from any working directory."""
    paths: dict[str, Any] = {
        name: Path(getattr(config, name)).absolute()
        for name in ("log_dir", "checkpoint")
        if getattr(config, name) is not None
    }
    return dataclasses.replace(config, **paths)


def _plain(config: TrainConfig) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
