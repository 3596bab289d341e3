"""Command line: ``torch-shallow train`` (or ``python -m torch_shallow train``) fills a TrainConfig and calls fit;
``torch-shallow convert`` turns a CSV file into on-disk .npy data. Under ``torchrun`` each process trains on its
shard of the rows."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from .activations import ACTIVATIONS
from .checkpoint import CheckpointError, load_checkpoint
from .data import DATASETS, load_csv
from .distributed import init_from_environment, shard, world
from .module import ShallowNet
from .ondisk import NpyRows, csv_to_npy, open_npy
from .run import RunInUse, check_output_file, holds_run, new_run_dir
from .trainer import TrainConfig, TrainingDiverged, TrainingInterrupted, fit

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def device_name(text: str) -> str:
    """A device this program can train on: cpu, or cuda[:k] with such a GPU present."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:1, got {text!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text}: this machine has {count} CUDA device(s)")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text}: training runs on cpu or cuda, not {device.type}")
    return text


def build_parser() -> argparse.ArgumentParser:
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The program's parser, and its ``train`` subparser."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="torch-shallow", description=__doc__.split(":")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train a ShallowNet by full-batch gradient descent",
        description="Train a one-hidden-layer network by full-batch gradient descent and log it to TensorBoard. "
                    "The defaults reproduce the planar experiment.")
    default = " (default: %(default)s)"

    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=sorted(DATASETS), default="planar", help="generated data set" + default)
    source = data.add_mutually_exclusive_group()
    source.add_argument("--csv", type=Path, help="train on this CSV file instead (header row, numeric columns)")
    source.add_argument("--data", type=Path, metavar="DIR",
                        help="train on on-disk data instead: X.npy and Y.npy in DIR (see the convert command)")
    data.add_argument("--label", help="the CSV file's 0/1 label column (default: the last column)")

    model = train.add_argument_group("model")
    model.add_argument("--hidden", type=positive_int, default=4, help="d1, the number of hidden units" + default)
    model.add_argument("--activation", choices=sorted(ACTIVATIONS), default="sigmoid",
                       help="hidden activation σ" + default)
    model.add_argument("--seed", type=int, default=0, help="seed of the initial parameters θ(0)" + default)
    model.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameter and data dtype" + default)
    model.add_argument("--device", type=device_name, default="cpu", help="torch device, e.g. cpu or cuda" + default)
    model.add_argument("--save", type=Path, help="write the trained model's state_dict to this file")

    opt = train.add_argument_group("training")
    opt.add_argument("--lr", type=positive_float, default=defaults.lr, help="learning rate α" + default)
    opt.add_argument("--epochs", type=positive_int, default=defaults.max_epochs,
                     help="maximum number of epochs" + default)
    opt.add_argument("--tol", type=non_negative_float, default=defaults.tol,
                     help="stop when |ΔJ| < tol; 0 turns it off" + default)

    log = train.add_argument_group("logging")
    log.add_argument("--log-dir", type=Path,
                     help="TensorBoard run directory (default: runs/<experiment>-<timestamp>); a taken name gets a "
                          "suffix -2, -3, ...")
    log.add_argument("--log-every", type=positive_int, default=defaults.log_every,
                     help="log scalars every k epochs" + default)
    log.add_argument("--no-log", action="store_true", help="write no TensorBoard output")

    faults = train.add_argument_group("checkpoints")
    faults.add_argument("--checkpoint", type=Path,
                        help="checkpoint file (default: checkpoint.pt in the run directory; none with --no-log)")
    faults.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every,
                        help="epochs between checkpoints" + default)
    start = faults.add_mutually_exclusive_group()
    start.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                       help="continue the run saved in CHECKPOINT, in its run directory; only --epochs, --tol, "
                            "--log-every, --checkpoint-every, --save, --device and --timeout may change")
    start.add_argument("--init-from", type=Path, metavar="CHECKPOINT",
                       help="start a new run from the weights in CHECKPOINT (and its --hidden and --activation)")
    faults.add_argument("--timeout", type=positive_float, default=300.0,
                        help="under torchrun, seconds a process waits for the others before failing" + default)

    convert = commands.add_parser(
        "convert", help="write a CSV file as on-disk data for --data",
        description="Write X.npy and Y.npy in DIR from a CSV file with a header row, in one streaming pass (a pipe "
                    "such as /dev/stdin works), so that files larger than memory convert too. The files appear "
                    "only when the whole input has converted.")
    convert.add_argument("csv", type=Path, help="the CSV file")
    convert.add_argument("directory", type=Path, metavar="DIR", help="where to write X.npy and Y.npy")
    convert.add_argument("--label", help="the label column (default: the last column)")
    convert.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="stored dtype" + default)
    return parser, train


def given_options(argv: list[str]) -> set[str]:
    """The destinations of the options given on the command line, as opposed to those left at their defaults."""
    parser, train = _parsers()
    unset = object()  # not a string, which argparse would pass through the option's type
    train.set_defaults(**{dest: unset for dest in vars(train.parse_args([]))})
    return {dest for dest, value in vars(parser.parse_args(argv)).items() if value is not unset}


# What a resumed run may change: how long it goes on and how it is recorded, where it runs, and where its data now
# lies (--dataset, --csv, --data, --label), which the checkpoint's data fingerprint checks. What defines the run
# must stay as it was; options that say where a new run writes have no meaning for it.
RESUME_KEEPS = ("hidden", "activation", "seed", "dtype", "lr")
RESUME_REFUSES = ("log_dir", "checkpoint", "no_log")
DATA_ARGUMENTS = ("dataset", "csv", "data", "label")
# Stored in the checkpoint's hparams, read back by --resume and --init-from.
RUN_ARGUMENTS = (*DATA_ARGUMENTS, "hidden", "activation", "seed", "dtype", "device")


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def refuse_contradictions(args: argparse.Namespace, given: set[str]) -> None:
    """Options that contradict each other, or that would have no effect: refused, never silently dropped."""
    pairs = [("dataset", "csv"), ("dataset", "data"), ("label", "data"), ("no_log", "log_dir"),
             ("no_log", "log_every"), ("init_from", "seed")]
    clashes = [f"{flag(a)} with {flag(b)}" for a, b in pairs if {a, b} <= given]
    if "label" in given and "csv" not in given and "resume" not in given:
        clashes.append("--label without --csv")
    if "checkpoint_every" in given and args.no_log and args.checkpoint is None and "resume" not in given:
        clashes.append("--checkpoint-every with --no-log and no --checkpoint")
    if "resume" in given:
        clashes += [f"{flag(dest)} with --resume" for dest in RESUME_REFUSES if dest in given]
    if clashes:
        raise ValueError(f"these options contradict each other or would have no effect: {'; '.join(clashes)}")


def resumed_settings(args: argparse.Namespace, given: set[str]) -> TrainConfig:
    """Fill ``args`` with the run saved in ``args.resume``, apply the options that a resumed run may change, and
    return its config: its own run directory and checkpoint, wherever the run directory has moved."""
    saved = load_checkpoint(args.resume)
    run, config = saved["hparams"], dict(saved["config"])
    missing = [name for name in RUN_ARGUMENTS if name not in run]
    if missing:
        raise CheckpointError(f"checkpoint {args.resume} was not written by torch-shallow train: no {missing}")
    kept = {**run, "lr": config["lr"]}
    changed = [f"{flag(name)} {getattr(args, name)} (the run's: {kept[name]})" for name in RESUME_KEEPS
               if name in given and getattr(args, name) != kept[name]]
    if changed:
        raise ValueError(f"cannot resume {args.resume} with {', '.join(changed)}: a resumed run keeps its model and "
                         "hyperparameters. To train its weights with these, start a new run from them with "
                         f"--init-from {args.resume}")
    if not given & {"csv", "data", "dataset"}:  # the run's own data, unless told where it lies now
        for name in DATA_ARGUMENTS:
            setattr(args, name, run[name])
    for name in ("hidden", "activation", "seed", "dtype") + (() if "device" in given else ("device",)):
        setattr(args, name, run[name])
    args.csv, args.data = (None if v is None else Path(v) for v in (args.csv, args.data))
    for name, path in (("csv", args.csv), ("data", args.data)):
        if path is not None and not path.exists():
            raise ValueError(f"the run's data {path} is not there; if it has moved, give its new place with "
                             f"{flag(name)}")
    epochs = saved["history"]["epochs"]
    if "epochs" in given and args.epochs < epochs:
        raise ValueError(f"--epochs {args.epochs}: the run has already taken {epochs} epochs")
    checkpoint = args.resume.absolute()
    log_dir = config["log_dir"]
    if log_dir is not None and Path(config["checkpoint"]).parent == Path(log_dir):
        log_dir = checkpoint.parent  # the run directory, even if it was moved or copied since
    config.update(log_dir=log_dir, checkpoint=checkpoint,
                  **{key: getattr(args, dest) for key, dest in (("max_epochs", "epochs"), ("tol", "tol"),
                                                                 ("log_every", "log_every"),
                                                                 ("checkpoint_every", "checkpoint_every"))
                     if dest in given})
    return TrainConfig(**config)


def load_data(args: argparse.Namespace, dtype: torch.dtype, device: torch.device) -> tuple[str, Tensor, Tensor]:
    """(experiment name, X, Y): this process's shard of the rows under torchrun, all of them otherwise."""
    rank, size = world()
    if args.data is not None:
        n = NpyRows(args.data / "X.npy").shape[0]
        return args.data.name, *open_npy(args.data, shard(n, rank, size), dtype, device)
    if args.csv is not None:
        experiment, (X, Y) = args.csv.stem, load_csv(args.csv, args.label, dtype=dtype)
    else:
        experiment, (X, Y) = args.dataset, DATASETS[args.dataset](dtype=dtype)
    start, stop = shard(X.shape[0], rank, size)
    return experiment, X[start:stop].to(device), Y[start:stop].to(device)


def train(args: argparse.Namespace, given: set[str]) -> None:
    refuse_contradictions(args, given)
    if args.resume is not None:
        config = resumed_settings(args, given)
    init = None if args.init_from is None else load_checkpoint(args.init_from)
    if init is not None:
        for name in ("hidden", "activation"):  # the model of the checkpoint's weights, unless told otherwise
            if name not in given and name in init["hparams"]:
                setattr(args, name, init["hparams"][name])
    dtype, device = DTYPES[args.dtype], torch.device(args.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: one GPU per process, set before NCCL
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    init_from_environment(device, args.timeout)
    rank, _ = world()
    if args.save is not None and rank == 0:
        check_output_file(args.save.absolute(), "--save", create_parent=False)
    experiment, X, Y = load_data(args, dtype, device)
    net = ShallowNet(X.shape[1], args.hidden, activation=args.activation, device=device, dtype=dtype)
    net.reset_parameters(torch.Generator().manual_seed(args.seed))
    if init is not None:
        try:
            net.load_state_dict(init["model"])
        except RuntimeError as error:
            raise CheckpointError(f"--init-from {args.init_from}: its weights do not fit the model: {error}") from None
    created = None
    if args.resume is None:
        log_dir = None
        if not args.no_log:
            wanted = args.log_dir or Path("runs") / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
            log_dir = created = new_run_dir(wanted) if rank == 0 else wanted  # only rank 0 writes
            if log_dir != wanted:
                print(f"{wanted} is taken: this run writes to {log_dir}", file=sys.stderr)
        checkpoint = args.checkpoint or (None if log_dir is None else Path(log_dir) / "checkpoint.pt")
        config = TrainConfig(lr=args.lr, max_epochs=args.epochs, tol=args.tol, log_dir=log_dir,
                             log_every=args.log_every, checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
    run = {name: str(value.absolute()) if isinstance(value, Path) else value for name, value in vars(args).items()
           if name in RUN_ARGUMENTS}
    if args.init_from is not None:
        run["init_from"] = str(args.init_from.absolute())
    already = None if args.resume is None else load_checkpoint(args.resume)["history"]["epochs"]
    try:
        history = fit(net, X, Y, config, hparams=run, resume_from=args.resume)
    except BaseException:
        if created is not None and not holds_run(created):  # nothing of this run to keep: leave no empty directory
            shutil.rmtree(created, ignore_errors=True)
        raise
    if rank != 0:
        return
    if already is not None and history.epochs == already:
        print(f"{args.resume}: the run had already ended ({history.stop_reason}) after {already} epochs; nothing "
              "more to train (--epochs, or a smaller --tol, lets it go on)")
    print(f"{experiment}: {history.summary()}")
    if args.save is not None:
        torch.save(net.state_dict(), args.save)
        print(f"model saved to {args.save}")
    if config.log_dir is not None:
        print(f"TensorBoard: tensorboard --logdir {Path(config.log_dir).parent}")


def convert(args: argparse.Namespace, given: set[str]) -> None:
    n = csv_to_npy(args.csv, args.directory, args.label, dtype=args.dtype)
    print(f"{args.csv}: {n} rows written to {args.directory / 'X.npy'} and {args.directory / 'Y.npy'}")


def resume_command(checkpoint: Path) -> str:
    if world()[1] > 1:
        return f"torchrun <the same options> -m torch_shallow train --resume {checkpoint}"
    return f"torch-shallow train --resume {checkpoint}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        {"train": train, "convert": convert}[args.command](args, given_options(argv))
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # no rank tears the group down while another still uses it
    except TrainingInterrupted as stop:
        if world()[0] == 0:
            how = f"; resume with: {resume_command(stop.checkpoint)}" if stop.checkpoint else ""
            print(f"torch-shallow: interrupted by {signal.Signals(stop.signal).name} after epoch "
                  f"{stop.history.epochs}{how}", file=sys.stderr)
        return 128 + stop.signal  # the shell's code for a program ended by that signal: 130 for SIGINT, 143 SIGTERM
    except TrainingDiverged as error:
        print(f"torch-shallow: {error}", file=sys.stderr)
        return 1
    except (RunInUse, OSError) as error:
        print(f"torch-shallow: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as error:
        print(f"torch-shallow: error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0
