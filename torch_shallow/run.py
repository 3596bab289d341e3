"""Where a training run writes: its own directory, a lock held while it writes there, and output paths checked before
the first epoch. (Its data's fingerprint and the stop signals have modules of their own.)

A run directory is created exclusively (``runs/planar-20261129-101500``, then ``-2``, ``-3``... if that name is
taken), so that two runs never share one. While a run writes to its directory or checkpoint it holds an exclusive
``flock`` on a lock file there: a second writer, a second resume of the same run among them, fails at once with the
first one's process id. The operating system releases the lock when the process ends, however it ends, so a run
killed by SIGKILL can be resumed at once.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator, cast

LOCK_NAME = ".lock"  # in a run directory; a checkpoint outside one is locked through ".<name>.lock" beside it


class RunInUse(RuntimeError):
    """Another process is writing to this run directory or checkpoint."""


def run_name(experiment: str) -> str:
    """``<experiment>-<YYYYmmdd-HHMMSS>``: TensorBoard lists runs named so in the order they started. A stack's
    runs lie in one such directory, each named by :func:`model_run_names`."""
    return f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_run_dir(experiment: str, root: str | os.PathLike[str] = "runs") -> Path:
    """A new, empty run directory ``<root>/<experiment>-<YYYYmmdd-HHMMSS>`` (:func:`run_name`), created here (see
    :func:`new_run_dir`)."""
    return new_run_dir(Path(root) / run_name(experiment))


def model_run_names(hidden: list[int], activations: list[str], lrs: list[float], seeds: list[object]) -> list[str]:
    """The TensorBoard run of each model of a stack: ``h<d1>-<activation>-lr<α>-s<seed>``, α written with as many
    digits as it takes to tell the stack's learning rates apart (``repr`` of the float at worst); ``-<k>`` is
    appended, k the model's index, wherever two names would still be equal (a seed given twice, or none)."""
    digits = next((p for p in range(6, 18) if len({f"{lr:.{p}g}" for lr in lrs}) == len(set(lrs))), None)
    shown = [f"{lr:.{digits}g}" if digits is not None else repr(lr) for lr in lrs]
    names = [
        f"h{h}-{a}-lr{lr}" + (f"-s{seed}" if seed is not None else "")
        for h, a, lr, seed in zip(hidden, activations, shown, seeds)
    ]
    counts = collections.Counter(names)
    return [f"{name}-{k}" if counts[name] > 1 else name for k, name in enumerate(names)]


def check_run_names(names: list[str]) -> None:
    """A stack's run names: one per model, distinct, each a plain directory name, not hidden (``.lock`` is the
    run directory's lock)."""
    for k, name in enumerate(names):
        if (
            not isinstance(name, str)
            or not name
            or name.startswith(".")
            or "/" in name
            or os.sep in name
            or "\0" in name
            or len(os.fsencode(name)) > 255  # NAME_MAX of the common file systems
        ):
            raise ValueError(f"run_names[{k}] must be a plain directory name, got {name!r}")
    twice = sorted(name for name, count in collections.Counter(names).items() if count > 1)
    if twice:
        raise ValueError(f"run_names must be distinct; {', '.join(map(repr, twice))} appear more than once")


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
) -> Iterator[None]:
    """Check every output path and lock the run directory and the checkpoint for the block, all before the first
    epoch. ``runs`` are the TensorBoard runs that will be written: ``log_dir`` itself, or a stack's run per model
    under it. Paths are absolute.

    A new run (``resume_from`` None) may not write into a directory that holds another run's event files, nor over
    an existing checkpoint; a resumed one writes its own, which is the file it resumes from.
    """
    targets = []
    if log_dir is not None:
        if log_dir.exists() and not log_dir.is_dir():
            raise ValueError(f"log_dir {log_dir} is a file; expected a directory")
        log_dir.mkdir(parents=True, exist_ok=True)
        check_writable_dir(log_dir, "log_dir")
        target = None if checkpoint is None else checkpoint.resolve()
        for run in cast("list[Path]", runs):  # given with log_dir; a stack's are made as it trains
            what = ""
            if target is not None and run.name == target.name and run.resolve() == target:
                what = "the checkpoint's path"
            elif run.is_symlink() and not run.exists():
                what = "a broken symbolic link"
            elif run.exists() and not run.is_dir():
                what = "a file"
            if what:
                raise ValueError(f"run directory {run} is {what}; expected a directory of its own")
            if resume_from is None and holds_run(run):
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
    with locked(targets):
        yield


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


def check_save_path(
    save: Path, checkpoint: str | Path | None, resume_from: Path | None, log_dir: str | Path | None = None
) -> None:
    """The command line's ``--save`` names a file of its own: not the run's checkpoint, nor the one it resumes from,
    nor any other run's checkpoint, in a directory that exists (the run's own directory, just created, counts)."""
    from .checkpoint import is_checkpoint

    save = save.absolute()
    for other, what in ((checkpoint, "the run's checkpoint"), (resume_from, "the checkpoint the run resumes from")):
        if other is not None and (save == Path(other).absolute() or _same_file(save, Path(other))):
            raise ValueError(f"--save {save} is {what}, which the model would overwrite; save it to another file")
    if save.exists() and not save.is_file() and not save.is_dir():  # a directory: check_output_file says so
        raise ValueError(f"--save {save} is not a regular file; the model is written to a file of its own")
    if (
        save.exists()
        and (save.name.startswith("events.out.tfevents.") or holds_run(save.parent))
        and not (log_dir is not None and save.parent == Path(log_dir).absolute())
    ):
        raise ValueError(
            f"--save {save} is in another run's directory, whose files it would overwrite; save it to another file"
        )
    if save.exists() and is_checkpoint(save):
        raise ValueError(
            f"--save {save} is a training run's checkpoint, which the model would overwrite; save it to another file"
        )
    check_output_file(save, "--save", create_parent=False)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def check_writable_dir(directory: Path, what: str) -> None:
    """Write and remove a small file in ``directory``: the one test that also catches read-only file systems."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ValueError(f"{what}: cannot write in {directory}: {error.strerror or error}") from None
