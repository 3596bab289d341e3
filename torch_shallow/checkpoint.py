"""Checkpoints: written atomically, read without running code, rejected clearly when damaged, and resumed only
into the run they belong to.

A checkpoint is a dict of tensors and plain values saved with ``torch.save``: the model's and the optimizer's
state, the history so far, the RNG states, the training config (with absolute paths), the run's hyperparameters
(from which the command line rebuilds the data and the model on ``--resume``), the model's architecture, the
optimizer's class and the fingerprint of the training data (see :class:`~torch_shallow.fingerprint.Fingerprint`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .callbacks import Callback, Run
from .fingerprint import fingerprint_changes
from .hyperparameters import dtype_name

if TYPE_CHECKING:
    from .module import ShallowNet

FORMAT = "torch_shallow.checkpoint/3"
# A stack's checkpoint holds a list of histories, hyperparameters and architectures, one per model.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "model": dict,
    "optimizer": dict,
    "history": (dict, list),
    "rng": dict,
    "config": dict,
    "hparams": (dict, list),
    "architecture": (dict, list),
    "optimizer_class": str,
    "data": dict,
    "callbacks": dict,
}
# Optimizer settings that choose an implementation, not the update: a resumed run may differ in these.
IMPLEMENTATION_OPTIONS = {"params", "foreach", "fused", "capturable", "differentiable"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupt, not ours, or holding code."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory, are flushed and fsynced, and the file is renamed over
    ``path``; the directory is fsynced too. A crash at any moment leaves either the old checkpoint or the new one,
    never a partial file under ``path``.
    """
    _write_atomically(Path(path), {"format": FORMAT, **state})


def _write_atomically(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            try:
                torch.save(state, f)
            except RuntimeError as error:  # torch's zip writer reports a failed write (a full disk) as its own error
                raise OSError(f"writing checkpoint {path} failed ({error}); the disk may be full") from error
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def save_model(model: nn.Module, path: str | Path) -> None:
    """The model's ``state_dict`` to ``path``, atomically as :func:`save_checkpoint` writes (but no checkpoint: a
    plain state dict, for ``model.load_state_dict(torch.load(path))``)."""
    _write_atomically(Path(path), model.state_dict())


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a training run's checkpoint file, of this version or an earlier one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # whatever a file that is not a checkpoint makes the reader raise
        return False
    return isinstance(state, dict) and str(state.get("format", "")).startswith("torch_shallow.checkpoint/")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    ``torch.load(weights_only=True)`` unpickles tensors and plain containers only, so a tampered file cannot run
    code. Any failure to read, or content that is not a checkpoint of this format, raises
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is a directory; expected a checkpoint file, such as {path / 'checkpoint.pt'}"
        )
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a regular file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # whatever a damaged file makes the reader raise, the answer is the same
        # torch's own message advises loading with weights_only=False, which would run a tampered file's code
        raise CheckpointError(
            f"checkpoint {path} cannot be read: it is truncated, corrupt or not a checkpoint ({type(error).__name__})"
        ) from error
    if isinstance(state, dict) and state.get("format") == "torch_shallow.checkpoint/2":
        raise CheckpointError(
            f"checkpoint {path} was written by torch_shallow 0.1, whose checkpoints this version does not resume; "
            "finish that run with torch_shallow 0.1"
        )
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} file")
    for key, kind in REQUIRED.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"checkpoint {path} has no valid {key!r} entry")
    return state


def training_state(
    trainee: Any,
    history: dict[str, Any] | list[dict[str, Any]],
    config: dict[str, Any],
    hparams: dict[str, object] | list[dict[str, object]],
    data: dict[str, Any],
    callbacks: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Everything a resumed run needs, and what tells whether it is resumed into the same run. ``trainee`` is what
    the trainer trains (one model and its optimizer, or a stack of models; see ``trainer.fit`` and
    ``stack.fit_many``): it gives its weights, optimizer state, architecture and optimizer class. ``callbacks`` holds
    each callback's ``state_dict`` by name (``callbacks.state_keys``)."""
    rng: dict[str, Tensor | list[Tensor]] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "model": trainee.weights(),
        "optimizer": trainee.optimizer_state(),
        "history": history,
        "rng": rng,
        "config": config,
        "hparams": hparams,
        "architecture": trainee.architecture(),
        "optimizer_class": trainee.optimizer_class,
        "data": data,
        "callbacks": callbacks,
    }


def trained_weights(state: dict[str, Any]) -> dict[str, Tensor]:
    """The trained model's weights in a checkpoint: those of its best validation epoch where early stopping put them
    back at the end, otherwise the last epoch's."""
    weights: dict[str, Tensor] = state["model"]
    return weights


def architecture(model: ShallowNet) -> dict[str, object]:
    """What a checkpoint's weights mean: the model's sizes, activation, output, biases (hidden, output) and dtype."""
    return {
        "in_features": model.in_features,
        "hidden_features": model.hidden_features,
        "out_features": model.out_features,
        "activation": model.activation,
        "output": model.output,
        "bias": [model.b1 is not None, model.b2 is not None],
        "dtype": dtype_name(model.W1.dtype),
    }


def resume_state(path: str | Path, trainee: Any, data: dict[str, Any] | None) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into ``trainee`` and restore the RNG states, after checking that it is this
    run's: the same architecture, optimizer class and hyperparameters, and (unless ``data`` is None) the same
    training data. Returns the checkpoint's state for the caller's history.

    Raises:
        CheckpointError: the file cannot be used, or any of these differ, each difference named.
    """
    state = load_checkpoint(path)
    problems = (
        [f"the model was {_describe(state['architecture'])}, now {_describe(trainee.architecture())}"]
        if (state["architecture"] != trainee.architecture())
        else []
    )
    if state["optimizer_class"] != trainee.optimizer_class:
        problems.append(f"the optimizer was {state['optimizer_class']}, now {trainee.optimizer_class}")
    else:
        problems += trainee.hyperparameter_changes(state["optimizer"])
    if data is not None:
        problems += [f"the training data changed: {change}" for change in fingerprint_changes(state["data"], data)]
    if problems:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run: {'; '.join(problems)}. A resumed run "
            "continues with the model, data and hyperparameters it started with; to train its "
            "weights otherwise, start a new run from them (the command line's --init-from)"
        )
    try:
        trainee.load(state["model"], state["optimizer"])
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} does not fit this model or optimizer: {error}") from error
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state


def _describe(a: dict[str, Any] | list[dict[str, Any]]) -> str:
    if isinstance(a, list):
        return f"a stack of {len(a)} models: " + ", ".join(_describe(one) for one in a)
    output = f", output={a['output']!r}" if a.get("output", "sigmoid") != "sigmoid" else ""
    output += f", bias={tuple(a['bias'])}" if a.get("bias", [True, True]) != [True, True] else ""
    return (
        f"ShallowNet({a['in_features']}, {a['hidden_features']}, {a['out_features']}, "
        f"activation={a['activation']!r}{output}, {a['dtype']})"
    )


def optimizer_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The hyperparameters that differ between two ``torch.optim`` state dicts, in words."""
    saved_groups, now_groups = saved["param_groups"], now["param_groups"]
    if len(saved_groups) != len(now_groups):
        return [f"the optimizer had {len(saved_groups)} parameter groups, now {len(now_groups)}"]
    return [
        f"{key} was {a.get(key)!r}, now {b.get(key)!r}"
        for a, b in zip(saved_groups, now_groups)
        for key in sorted((set(a) | set(b)) - IMPLEMENTATION_OPTIONS)
        if a.get(key) != b.get(key)
    ]


class Checkpointing(Callback):
    """Rank 0 writes the checkpoint every ``every`` epochs and at the end of training (after Ctrl-C and SIGTERM
    too), flushing TensorBoard first so that a failing disk shows at the latest here; ``state`` gives what to write
    (:func:`training_state`). Remembers the last epoch on disk, for the messages."""

    every: int  # never None here

    def __init__(self, path: Path | None, every: int, state: Callable[[], dict[str, Any]]) -> None:
        self.path, self.every, self.state = path, every, state
        self.epoch: int | None = None

    def on_epoch_end(self, run: Run) -> None:
        if not run.last and run.epoch % self.every == 0:
            self.save(run)

    def on_fit_end(self, run: Run) -> None:
        self.save(run)

    def save(self, run: Run) -> None:
        for writer in run.writers:
            writer.flush()
        if self.path is not None:
            save_checkpoint(self.path, self.state())
            self.epoch = run.epoch

    def resume_hint(self) -> str:
        return "" if self.path is None else f"; resume from {self.path}"

    def after_failure(self) -> str:
        """Try once more to save the last whole epoch; say what is on disk."""
        if self.path is None:
            return "no checkpoint was set"
        try:
            save_checkpoint(self.path, self.state())
            return f"checkpoint written{self.resume_hint()}"
        except OSError as error:
            last = "none was written" if self.epoch is None else f"the last one, of epoch {self.epoch}, is intact"
            return f"the checkpoint could not be written either ({error}); {last}"
