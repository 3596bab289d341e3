"""What makes a training run safe to stop, resume, move and repeat: its own directory, a lock held while it writes
there, output paths checked before the first epoch, and signals that end it after a whole epoch (the fingerprint of
the data it trains on is in :mod:`~torch_shallow.fingerprint`).

A run directory is created exclusively (``runs/planar-20261129-101500``, then ``-2``, ``-3``... if that name is
taken), so that two runs never share one. While a run writes to its directory or checkpoint it holds an exclusive
``flock`` on a lock file there: a second writer, a second resume of the same run among them, fails at once with the
first one's process id. The operating system releases the lock when the process ends, however it ends, so a run
killed by SIGKILL can be resumed at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from .board import RunWriter

LOCK_NAME = ".lock"  # in a run directory; a checkpoint outside one is locked through ".<name>.lock" beside it


class RunInUse(RuntimeError):
    """Another process is writing to this run directory or checkpoint."""


def default_run_dir(experiment: str, root: str | Path = "runs") -> Path:
    """A new, empty run directory ``<root>/<experiment>-<YYYYmmdd-HHMMSS>``, created here (see :func:`new_run_dir`);
    TensorBoard lists runs named so in the order they started."""
    return new_run_dir(Path(root) / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}")


def new_run_dir(path: str | Path) -> Path:
    """Create ``path`` for a new run and return it; if it already holds a run, or another process is creating it,
    ``path-2``, ``path-3``... instead. The claim is exclusive: of two processes asking for the same name at the
    same moment, each gets its own directory."""
    path = Path(path)
    for k in range(1, 10_000):
        candidate = path if k == 1 else path.with_name(f"{path.name}-{k}")
        if candidate.exists() and not candidate.is_dir():
            raise ValueError(f"run directory {candidate} is a file; expected a directory")
        candidate.mkdir(parents=True, exist_ok=True)
        if any(candidate.iterdir()):
            continue  # an earlier run's files, or a run that has just claimed it
        try:  # O_EXCL: of two processes that both saw the directory empty, one creates the lock file
            os.close(os.open(candidate / LOCK_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{path}: no free run directory name from {path.name}-2 to {path.name}-9999")


@contextlib.contextmanager
def run_outputs(
    log_dir: Path | None,
    checkpoint: Path | None,
    resume_from: str | Path | None,
    runs: list[Path] | None,
    purge_step: int | None,
) -> Iterator[list[RunWriter]]:
    """Check every output path, lock the run directory and the checkpoint, and open a TensorBoard writer for each
    of ``runs`` (``log_dir`` itself, or a sweep's run per model under it), all before the first epoch; yields the
    writers, none without ``log_dir``. Paths are absolute.

    A new run (``resume_from`` None) may not write into a directory that holds another run's event files, nor over
    an existing checkpoint; a resumed one writes its own, which is the file it resumes from.
    """
    targets = []
    if log_dir is not None:
        if log_dir.exists() and not log_dir.is_dir():
            raise ValueError(f"log_dir {log_dir} is a file; expected a directory")
        log_dir.mkdir(parents=True, exist_ok=True)
        check_writable_dir(log_dir, "log_dir")
        if resume_from is None and any(holds_run(run) for run in runs):
            raise ValueError(
                f"log_dir {log_dir} already holds a run's TensorBoard files, which a new run would mix "
                "with its own; choose a new directory, or resume that run"
            )
        targets.append(log_dir)
    if checkpoint is not None:
        check_output_file(checkpoint, "checkpoint", create_parent=True)
        if checkpoint.exists() and (resume_from is None or Path(resume_from).absolute() != checkpoint):
            raise ValueError(
                f"checkpoint {checkpoint} already exists and a new run would overwrite it; resume from "
                "it, or choose another path"
            )
        if checkpoint.parent != log_dir:
            targets.append(checkpoint)
    with locked(targets), contextlib.ExitStack() as stack:
        writers = []
        for run in runs or []:
            writer = RunWriter(str(run), purge_step=purge_step)
            stack.callback(_close, writer)
            writers.append(writer)
        with _quiet_writer_thread():
            yield writers


def _close(writer: RunWriter) -> None:
    with contextlib.suppress(OSError):  # a failure to write was reported where it happened
        writer.close()


@contextlib.contextmanager
def _quiet_writer_thread() -> Iterator[None]:
    """TensorBoard writes from a thread of its own, which prints a traceback when the disk fills up; the writer
    raises the same error at the next write, and the trainer reports it with what it did about it, once."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (issubclass(args.exc_type, OSError) and type(args.thread).__module__.startswith("tensorboard.")):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def holds_run(directory: Path) -> bool:
    """Whether a directory already holds a run's TensorBoard event files."""
    return directory.is_dir() and any(directory.glob("events.out.tfevents.*"))


@contextlib.contextmanager
def locked(paths: list[Path]) -> Iterator[None]:
    """Hold an exclusive lock on each run directory or checkpoint file in ``paths`` for the block.

    The lock is an ``flock`` on a file holding the owner's process id (``.lock`` in a directory, ``.<name>.lock``
    beside a file), removed when the block ends.

    Raises:
        RunInUse: another process holds one of them, naming it and that process.
    """
    with contextlib.ExitStack() as stack:
        for path in paths:
            lock = path / LOCK_NAME if path.is_dir() else path.with_name(f".{path.name}.lock")
            fd = _lock(lock, path)
            stack.callback(os.close, fd)  # closing the descriptor releases the lock...
            stack.callback(lock.unlink, missing_ok=True)  # ...after the file is gone, so no one locks a stale one
        yield


def _lock(lock: Path, path: Path) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunInUse(
                f"{path} is in use by another training run (process {holder}); wait for it to end, or write elsewhere"
            ) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:  # not a file that its last owner removed after we opened it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def check_output_file(path: Path, what: str, *, create_parent: bool) -> None:
    """Fail now, not after training, if ``path`` cannot be written: it is a directory, its directory is missing
    (and may not be created) or not writable."""
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory; expected a file path")
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise ValueError(f"{what} {path}: the directory {path.parent} does not exist")
    check_writable_dir(path.parent, what)


def check_writable_dir(directory: Path, what: str) -> None:
    """Write and remove a small file in ``directory``: the one test that also catches read-only file systems."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ValueError(f"{what}: cannot write in {directory}: {error.strerror or error}") from None


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

    def handler(signum, frame):
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
