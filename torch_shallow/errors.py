"""The exceptions that training raises, beside those of checkpoints (:class:`~torch_shallow.checkpoint.CheckpointError`)
and run directories (:class:`~torch_shallow.run.RunInUse`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TrainingDiverged(RuntimeError):
    """The cost became NaN or inf, or rose far above where it started; the model keeps θ of the last good epoch."""

    def __init__(self, message: str, history: Any) -> None:
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM ended training after a whole epoch, or arrived while training was ending.

    Attributes:
        history: the :class:`~torch_shallow.trainer.History`, or a list of them for ``fit_many``.
        checkpoint: the file to resume from, if one was set.
        signal: the signal's number.
        finished: whether training had already ended when the signal came, so that nothing is left to resume.
    """

    def __init__(
        self, message: str, history: Any, checkpoint: Path | None, signal: int = 2, finished: bool = False
    ) -> None:
        super().__init__(message)
        self.history = history
        self.checkpoint = checkpoint
        self.signal = signal
        self.finished = finished
