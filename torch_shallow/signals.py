"""Stop signals: SIGINT (Ctrl-C) and SIGTERM end training after a whole epoch, never in the middle of one, and are
held back while training ends, so that its last checkpoint is always written."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import torch

from .callbacks import Callback, Run
from .distributed import all_reduce_sum_, world
from .errors import TrainingInterrupted

# Signals that end a run cleanly: Ctrl-C, and the SIGTERM of `docker stop`, SLURM preemption, systemd and torchrun
# (which forwards a Ctrl-C to its workers as SIGTERM).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred_stop_signals() -> Iterator[Callable[[], int]]:
    """SIGINT and SIGTERM only raise a flag that the loop reads between epochs, so that an epoch is never cut in
    half and a checkpoint can be written; yields a function returning the first signal's number, 0 if none.

    A second Ctrl-C interrupts at once, except under ``torchrun``: there a Ctrl-C in the terminal reaches each
    worker twice, from the terminal and forwarded by torchrun, which ends workers that take too long itself; a
    worker that stopped on a signal then ignores SIGINT and SIGTERM until it exits, for torchrun's copy may arrive
    after training, while the process shuts down. More SIGTERMs change nothing. Signals reach the main thread only;
    elsewhere nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    second_ctrl_c_stops_at_once = "TORCHELASTIC_RUN_ID" not in os.environ  # set by torchrun in its workers

    def handler(signum: int, frame: FrameType | None) -> None:
        if received and signum == signal.SIGINT and second_ctrl_c_stops_at_once:
            raise KeyboardInterrupt
        received.append(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield lambda: received[0] if received else 0
    finally:
        stopping_under_torchrun = received and not second_ctrl_c_stops_at_once
        for s, h in previous.items():
            signal.signal(s, signal.SIG_IGN if stopping_under_torchrun else h)


class StopSignals(Callback):
    """Holds SIGINT and SIGTERM back from the start of training to its very end (:func:`deferred_stop_signals`,
    entered with ``with``); after each epoch, a signal received ends training (``run.interrupt``). In a
    distributed run the ranks add up what they received, so that all of them stop after the same epoch. Last of
    the callbacks: once the others have ended training (the checkpoint written), a signal that came at any time
    raises :class:`~torch_shallow.errors.TrainingInterrupted`."""

    between_chunks = True

    def __init__(self, checkpoint: Path | None, resume_hint: Callable[[], str]) -> None:
        self.checkpoint, self.resume_hint = checkpoint, resume_hint
        self._signalled: Callable[[], int] = lambda: 0
        self._stack = contextlib.ExitStack()
        self._ranks = 1

    def __enter__(self) -> StopSignals:
        self._signalled = self._stack.enter_context(deferred_stop_signals())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def on_fit_start(self, run: Run) -> None:
        self._ranks = world()[1]

    def on_epoch_end(self, run: Run) -> None:
        signalled = self._signalled()
        if self._ranks > 1:  # every rank learns what any rank received
            flags = torch.tensor(
                [float(signalled == s) for s in STOP_SIGNALS],
                dtype=torch.float64,
                device=run.trainee.parameters()[0].device,
            )
            all_reduce_sum_([flags])
            signalled = signalled or next((int(s) for s, count in zip(STOP_SIGNALS, flags.tolist()) if count), 0)
        if signalled:
            run.interrupt(signalled)

    def on_fit_end(self, run: Run) -> None:
        signalled = run.interrupted or self._signalled()
        if not signalled:
            return
        epochs = max(h.epochs for h in run.histories)
        histories = run.histories[0] if len(run.histories) == 1 else run.histories
        if run.interrupted:
            raise TrainingInterrupted(
                f"interrupted by {signal.Signals(signalled).name} after epoch {epochs}{self.resume_hint()}",
                histories,
                self.checkpoint,
                signalled,
            )
        raise TrainingInterrupted(
            f"{signal.Signals(signalled).name} arrived as training ended, after epoch {epochs}: the run has finished "
            "and its results are saved",
            histories,
            self.checkpoint,
            signalled,
            finished=True,
        )
