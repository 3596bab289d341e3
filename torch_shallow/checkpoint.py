"""Checkpoints: written atomically, read without running code, and rejected clearly when damaged.

A checkpoint is a dict of tensors and plain values saved with ``torch.save``: the model's and the optimizer's
state, the history so far, the RNG states, the training config and the run's hyperparameters (from which the
command line rebuilds the data and the model on ``--resume``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "torch_shallow.checkpoint/1"
REQUIRED = {"model": dict, "optimizer": dict, "history": dict, "rng": dict, "config": dict, "hparams": dict}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupt, not ours, or holding code."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory, are flushed and fsynced, and the file is renamed over
    ``path``; the directory is fsynced too. A crash at any moment leaves either the old checkpoint or the new one,
    never a partial file under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    ``torch.load(weights_only=True)`` unpickles tensors and plain containers only, so a tampered file cannot run
    code. Any failure to read, or content that is not a checkpoint of this format, raises
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # whatever a damaged file makes the reader raise, the answer is the same
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated, corrupt or not a checkpoint): "
                              f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} file")
    for key, kind in REQUIRED.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"checkpoint {path} has no valid {key!r} entry")
    return state
