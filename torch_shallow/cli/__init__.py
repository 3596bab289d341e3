"""Command line: ``torch-shallow train`` (or ``python -m torch_shallow train``), ``sweep`` and ``convert``. Under
``torchrun`` each process trains on its shard of the rows.

The parser is in :mod:`~torch_shallow.cli.parser`, the resume rule in :mod:`~torch_shallow.cli.resume`, the
commands in :mod:`~torch_shallow.cli.commands`; here, the program's exit codes."""

from __future__ import annotations

import os
import signal
import sys
import threading

import torch.distributed as dist

from ..distributed import world
from ..errors import TrainingDiverged, TrainingInterrupted
from ..run import RunInUse
from .commands import convert, resume_command, sweep, train
from .parser import build_parser, given_options

__all__ = ["build_parser", "main", "run"]


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so that a run directory just made and still empty is removed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None  # training defers it itself
    try:
        {"train": train, "sweep": sweep, "convert": convert}[args.command](args, given_options(argv))
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # no rank tears the group down while another still uses it
    except TrainingInterrupted as stop:
        if world()[0] == 0 and stop.finished:
            saved = f"; its checkpoint is {stop.checkpoint}" if stop.checkpoint else ""
            print(
                f"torch-shallow: {signal.Signals(stop.signal).name} arrived as training ended: the run had finished, "
                f"and its results are written{saved}",
                file=sys.stderr,
            )
        elif world()[0] == 0:
            how = f"; resume with: {resume_command(args.command, stop.checkpoint)}" if stop.checkpoint else ""
            epochs = max(h.epochs for h in stop.history) if isinstance(stop.history, list) else stop.history.epochs
            print(
                f"torch-shallow: interrupted by {signal.Signals(stop.signal).name} after epoch {epochs}{how}",
                file=sys.stderr,
            )
        return 128 + stop.signal  # the shell's code for a program ended by that signal: 130 for SIGINT, 143 SIGTERM
    except BrokenPipeError:  # the reader of the output has gone (`| head`): stop quietly, as a killed `cat` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exit's flush does not fail again
        return 128 + signal.SIGPIPE
    except TrainingDiverged as error:
        print(f"torch-shallow: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C: nothing to save yet, or saved already
        print("torch-shallow: interrupted", file=sys.stderr)
        return 130
    except (RunInUse, OSError) as error:
        print(f"torch-shallow: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as error:
        print(f"torch-shallow: error: {error}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def run() -> None:
    """The ``torch-shallow`` program: :func:`main`, then its exit code. Once main has returned, every result is written,
    so a Ctrl-C or SIGTERM that comes while the interpreter shuts down is ignored rather than turning a finished run
    into a failed one."""
    code = main()
    if threading.current_thread() is threading.main_thread():
        for stop in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop, signal.SIG_IGN)
    sys.exit(code)
