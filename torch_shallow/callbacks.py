"""Callbacks: what happens around the training loop, each concern in one small class.

The loop (:func:`~torch_shallow.trainer.train`) is the slides' steps 2-4 and one event call. After the update of
epoch t it calls ``on_epoch_end`` of each callback whose ``every`` divides t + 1, and, once, of every callback after
the last epoch. Between two calls the loop owes a callback nothing, so the epochs in between may run in one go.

The built-in callbacks, which :class:`~torch_shallow.trainer.TrainConfig` builds, are early stopping
(:class:`~torch_shallow.early_stopping.EarlyStopping`), evaluation (:class:`~torch_shallow.evaluation.Evaluation`),
TensorBoard (:mod:`~torch_shallow.board`), checkpoints (:class:`~torch_shallow.checkpoint.Checkpointing`), the
progress bar (:mod:`~torch_shallow.progress`) and stop signals (:class:`~torch_shallow.signals.StopSignals`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from .distributed import all_reduce_sum_, world
from .functional import RowPass

if TYPE_CHECKING:
    from .module import ShallowNet
    from .trainer import History, Trainee


class Callback:
    """Base class of the callbacks: override the hooks you need.

    Attributes:
        every: ``on_epoch_end`` runs after the update of epoch t whenever (t + 1) % every == 0, and once after the
            last epoch (``run.last`` is then True); None: only after the last epoch. Default: 1.

    Example, a callback that stops training once the training accuracy reaches 95%::

        class StopAt95(Callback):
            every = 10

            def on_epoch_end(self, run):
                J, accuracy = run.evaluate(run.X, run.Y)
                if min(accuracy) >= 0.95:
                    run.stop("accuracy reached")
    """

    every: int | None = 1
    between_chunks: bool = False
    """True for a callback that only watches (a progress bar, stop signals): it is called after every epoch, or
    after every chunk of epochs where they run compiled, without cutting them short."""

    def on_fit_start(self, run: Run) -> None:
        """Before the first epoch (of this process: after a resume, at the checkpoint's epoch)."""

    def on_epoch_end(self, run: Run) -> None:
        """After the update of epoch ``run.epoch - 1``: the models hold θ(run.epoch)."""

    def on_fit_end(self, run: Run) -> None:
        """After the last epoch, or after Ctrl-C or SIGTERM (``run.interrupted``); also when training took no step."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this callback; saved in each checkpoint. Tensors and plain values only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave, before ``on_fit_start`` of the resumed run."""


class Run:
    """What the callbacks see of a training run.

    Attributes:
        epoch: the gradient steps taken so far, t + 1 in ``on_epoch_end`` after epoch t; 0 at the start of a new run.
        histories: one :class:`~torch_shallow.trainer.History` per model, ``costs`` up to J(θ(epoch - 1)).
        X, Y: the training data of this process (Y as (n, d2) in X's dtype); ``n`` the global number of rows.
        val: the validation data ``(X_val, Y_val, n_val)``, or None.
        running: per model, whether it still trains.
        interrupted: the number of the stop signal that ended training, 0 if none.
        writers: rank 0's TensorBoard writers, one per model; empty without a log directory.
    """

    def __init__(
        self,
        trainee: Trainee,
        X: Any,
        Y: Any,
        n: int,
        histories: list[History],
        max_epochs: int,
        val: tuple[Any, Any, int] | None = None,
    ) -> None:
        self.trainee, self.X, self.Y, self.n, self.val = trainee, X, Y, n, val
        self.histories, self.max_epochs = histories, max_epochs
        self.running = [h.stop_reason in ("", "max_epochs") and h.epochs < max_epochs for h in histories]
        self.epoch = max((h.epochs for h in histories), default=0)
        self.interrupted = 0
        self._ranks = world()[1]
        self.writers: list[Any] = []
        self._pass: tuple[tuple[int, ...], bool, RowPass] | None = None
        self._validation: tuple[tuple[int, ...], list[float], list[float]] | None = None

    @property
    def models(self) -> list[ShallowNet]:
        """Every model trained (one for ``fit``), holding θ(epoch), as ``ShallowNet``\\ s. For a stack they are
        copies of the stack's parameters, written back at each access: changing them does not change training."""
        return self.trainee.models()

    @property
    def learning_rates(self) -> list[float]:
        """α of each model."""
        return self.trainee.learning_rates()

    @property
    def last(self) -> bool:
        """Whether training ends after this epoch: every model has stopped, or a stop was asked for."""
        return not any(self.running) or self.interrupted != 0

    def stop(self, reason: str, models: Iterable[int] | None = None) -> None:
        """End training after this epoch, with ``reason`` as the stop reason, for every model still running, or for
        those of ``models`` (indices into ``histories``: ints, NumPy's or one-element tensors')."""
        if not isinstance(reason, str) or not reason:
            raise TypeError(f"reason must be a non-empty string, got {reason!r}")
        count = len(self.histories)
        if models is None:
            chosen: Iterable[int] = range(count)
        elif isinstance(models, Iterable) and not isinstance(models, (str, bytes)) and getattr(models, "ndim", 1) > 0:
            chosen = [_model_index(k, count) for k in models]
        else:
            raise TypeError(f"models must be a sequence of model indices, got {models!r}")
        for k in chosen:
            if self.running[k]:
                self.histories[k].stop_reason, self.running[k] = reason, False

    def interrupt(self, signal_number: int) -> None:
        """End training after this epoch because of a stop signal; the models' stop reasons stay open, so that a
        resumed run goes on."""
        self.interrupted = signal_number

    def log(self, scalars: Sequence[dict[str, float] | None]) -> None:
        """One dict of scalars per model (None: nothing for that model), at step ``epoch``: into each history's
        ``metrics`` as (epoch, value), and to each model's TensorBoard run. Checked whole before anything is
        recorded."""
        if isinstance(scalars, (dict, str, bytes)) or not isinstance(scalars, Sequence):
            raise TypeError(f"scalars must be a list of one dict (or None) per model, got {type(scalars).__name__}")
        if len(scalars) != len(self.histories):
            raise ValueError(
                f"scalars must hold one dict (or None) per model, {len(self.histories)}, got {len(scalars)}"
            )
        numbers = [None if values is None else _scalars(values, f"scalars[{k}]") for k, values in enumerate(scalars)]
        for k, values in enumerate(numbers):
            if not values:
                continue
            for tag, value in values.items():
                self.histories[k].metrics.setdefault(tag, []).append((self.epoch, value))
            if self.writers:
                self.writers[k].add_step_scalars(values, self.epoch)

    def cost_and_grad(self, *, count_right: bool = False) -> RowPass:
        """J(θ(epoch)) (K,) and ∇J(θ(epoch)) over all n samples, summed over the ranks, with the right answers if
        asked. Computed once per θ: the loop's next epoch takes it from here."""
        key = self._version()
        if self._pass is None or self._pass[0] != key or (count_right and not self._pass[1]):
            result = self.trainee.cost_and_grad(self.X, self.Y, self.n, count_right=count_right)
            if self._ranks > 1:
                right = [] if result.right is None else [result.right]
                all_reduce_sum_([result.J, *self.trainee.gradients(), *right])
            self._pass = (key, count_right, result)
        return self._pass[2]

    def evaluate(self, X: Any, Y: Any, n: int | None = None) -> tuple[list[float], list[float]]:
        """(J, accuracy) of each model on (X, Y) at θ(epoch), summed over the ranks (pass each rank's shard and
        the global n)."""
        from .evaluation import evaluate_each

        return evaluate_each(self.trainee, X, Y, X.shape[0] if n is None else n)

    def validation(self) -> tuple[list[float], list[float]]:
        """(J, accuracy) of each model on the validation data at θ(epoch), computed once per θ and recorded in the
        histories of the running models (``val_epochs``, ``val_costs``)."""
        key = self._version()
        if self._validation is None or self._validation[0] != key:
            costs, accuracies = self.evaluate(*cast("tuple[Any, Any, int]", self.val))  # asked for with val only
            for k, history in enumerate(self.histories):
                if self.running[k]:
                    history.val_epochs.append(history.epochs)
                    history.val_costs.append(costs[k])
            self._validation = (key, costs, accuracies)
        return self._validation[1], self._validation[2]

    def _version(self) -> tuple[int, ...]:
        """Changes whenever θ is changed in place, by a step, a resume or a callback."""
        return (self.epoch, *[p._version for p in self.trainee.parameters()])


# The scalars the trainer logs itself (board.TensorBoard), which a callback's would mix with.
BUILT_IN_TAGS = frozenset({"cost/train", "accuracy/train", "cost/val", "accuracy/val", "grad_norm", "lr"})


def _model_index(k: object, count: int) -> int:
    """``k`` as the index of one of ``count`` models; bools, Python's, NumPy's or a tensor's, are refused, not taken
    as 0 and 1 (a mask of the models is not a list of indices)."""
    boolean = isinstance(k, bool) or str(getattr(k, "dtype", "")) in ("bool", "torch.bool")
    try:
        index = None if boolean else operator.index(cast(Any, k))
    except TypeError:
        index = None
    if index is None or not 0 <= index < count:
        raise IndexError(f"models must hold indices of models, 0 to {count - 1}, got {k!r}")
    return index


def _scalars(values: object, name: str) -> dict[str, float]:
    """``values`` as a dict of tags and floats: numbers, NumPy's or one-element tensors, not strings."""
    if not isinstance(values, dict):
        raise TypeError(f"{name} must be a dict of tags and numbers, or None, got {type(values).__name__}")
    for tag in values:
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"{name} has the tag {tag!r}; tags are non-empty strings")
        if tag in BUILT_IN_TAGS:
            raise ValueError(f"{name} has the tag {tag!r}, which the trainer logs itself; choose another")
    return {tag: _number(value, f"{name}[{tag!r}]") for tag, value in values.items()}


def _number(value: object, name: str) -> float:
    if not isinstance(value, (str, bytes)):
        try:
            return float(cast(Any, value))
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several elements
            pass
    raise TypeError(f"{name} must be a number, got {value!r}")


class Events:
    """Calls the callbacks' hooks in order: ``on_epoch_end`` of those due, and once after the last epoch of those
    not yet called at it."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = callbacks
        self.called_at = [-1] * len(callbacks)

    def fit_start(self, run: Run) -> None:
        for callback in self.callbacks:
            callback.on_fit_start(run)

    def epoch_end(self, run: Run) -> None:
        last, epoch = run.last, run.epoch
        for i, callback in enumerate(self.callbacks):
            every = callback.every
            if callback.between_chunks or last or (every is not None and epoch % every == 0):
                self.called_at[i] = epoch
                callback.on_epoch_end(run)

    def epochs_to_next(self, run: Run) -> int:
        """The epochs from ``run.epoch`` to the next one after which a callback is due, or to ``max_epochs``."""
        periods = [c.every for c in self.callbacks if c.every is not None and not c.between_chunks]
        return min([run.max_epochs - run.epoch, *(every - run.epoch % every for every in periods)])

    def fit_end(self, run: Run, stepped: bool) -> None:
        if stepped:  # after the last epoch, once, for each callback not yet called at it
            for i, callback in enumerate(self.callbacks):
                if self.called_at[i] != run.epoch:
                    self.called_at[i] = run.epoch
                    callback.on_epoch_end(run)
        for callback in self.callbacks:
            callback.on_fit_end(run)


def state_keys(callbacks: list[Callback]) -> list[str]:
    """A name for each callback's state in a checkpoint: its class name, with ``#2``, ``#3``... for repeats."""
    keys: list[str] = []
    seen: dict[str, int] = {}
    for callback in callbacks:
        name = type(callback).__qualname__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys
