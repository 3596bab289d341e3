"""Command line: ``torch-shallow train`` (or ``python -m torch_shallow train``) fills a TrainConfig and calls fit;
``torch-shallow convert`` turns a CSV file into on-disk .npy data. Under ``torchrun`` each process trains on its
shard of the rows."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from .activations import ACTIVATIONS
from .board import default_run_dir
from .checkpoint import CheckpointError, load_checkpoint
from .data import DATASETS, load_csv
from .distributed import init_from_environment, shard, world
from .module import ShallowNet
from .ondisk import NpyRows, csv_to_npy, open_npy
from .trainer import TrainConfig, TrainingDiverged, TrainingInterrupted, fit

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
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
    model.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda" + default)
    model.add_argument("--save", type=Path, help="write the trained model's state_dict to this file")

    opt = train.add_argument_group("training")
    opt.add_argument("--lr", type=float, default=defaults.lr, help="learning rate α" + default)
    opt.add_argument("--epochs", type=positive_int, default=defaults.max_epochs,
                     help="maximum number of epochs" + default)
    opt.add_argument("--tol", type=float, default=defaults.tol, help="stop when |ΔJ| < tol; 0 turns it off" + default)

    log = train.add_argument_group("logging")
    log.add_argument("--log-dir", type=Path, help="TensorBoard run directory (default: runs/<experiment>-<timestamp>)")
    log.add_argument("--log-every", type=positive_int, default=defaults.log_every,
                     help="log scalars every k epochs" + default)
    log.add_argument("--no-log", action="store_true", help="write no TensorBoard output")

    faults = train.add_argument_group("checkpoints")
    faults.add_argument("--checkpoint", type=Path,
                        help="checkpoint file (default: checkpoint.pt in the run directory; none with --no-log)")
    faults.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every,
                        help="epochs between checkpoints" + default)
    faults.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                        help="continue the run saved in CHECKPOINT, with the settings it was started with")
    faults.add_argument("--timeout", type=float, default=300.0,
                        help="under torchrun, seconds a process waits for the others before failing" + default)

    convert = commands.add_parser(
        "convert", help="write a CSV file as on-disk data for --data",
        description="Write X.npy and Y.npy in DIR from a CSV file with a header row, streaming, so that files "
                    "larger than memory convert too.")
    convert.add_argument("csv", type=Path, help="the CSV file")
    convert.add_argument("directory", type=Path, metavar="DIR", help="where to write X.npy and Y.npy")
    convert.add_argument("--label", help="the label column (default: the last column)")
    convert.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="stored dtype" + default)
    return parser


# The arguments that define a run's data and model: stored in its checkpoint, read back by --resume.
RUN_ARGUMENTS = ("dataset", "csv", "data", "label", "hidden", "activation", "seed", "dtype", "device")


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


def train(args: argparse.Namespace) -> None:
    if args.resume is not None:
        saved = load_checkpoint(args.resume)
        run = saved["hparams"]
        missing = [name for name in RUN_ARGUMENTS if name not in run]
        if missing:
            raise CheckpointError(f"checkpoint {args.resume} was not written by torch-shallow train: no {missing}")
        config = TrainConfig(**saved["config"])
        for name in RUN_ARGUMENTS:
            setattr(args, name, run[name])
        args.csv, args.data = (None if v is None else Path(v) for v in (args.csv, args.data))
    dtype, device = DTYPES[args.dtype], torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
        if "LOCAL_RANK" in os.environ:  # under torchrun: one GPU per process, set before NCCL starts
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
    init_from_environment(device, args.timeout)
    rank, _ = world()
    experiment, X, Y = load_data(args, dtype, device)
    net = ShallowNet(X.shape[1], args.hidden, activation=args.activation, device=device, dtype=dtype)
    net.reset_parameters(torch.Generator().manual_seed(args.seed))
    if args.resume is None:
        log_dir = None if args.no_log else args.log_dir or default_run_dir(experiment)
        checkpoint = args.checkpoint or (None if log_dir is None else Path(log_dir) / "checkpoint.pt")
        config = TrainConfig(lr=args.lr, max_epochs=args.epochs, tol=args.tol, log_dir=log_dir,
                             log_every=args.log_every, checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
    run = {name: str(value) if isinstance(value, Path) else value for name, value in vars(args).items()
           if name in RUN_ARGUMENTS}
    history = fit(net, X, Y, config, hparams=run, resume_from=args.resume)
    if rank != 0:
        return
    print(f"{experiment}: {history.summary()}")
    if args.save is not None:
        torch.save(net.state_dict(), args.save)
        print(f"model saved to {args.save}")
    if config.log_dir is not None:
        print(f"TensorBoard: tensorboard --logdir {Path(config.log_dir).parent}")


def convert(args: argparse.Namespace) -> None:
    n = csv_to_npy(args.csv, args.directory, args.label, dtype=args.dtype)
    print(f"{args.csv}: {n} rows written to {args.directory / 'X.npy'} and {args.directory / 'Y.npy'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"train": train, "convert": convert}[args.command](args)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # no rank tears the group down while another still uses it
    except TrainingInterrupted as stop:
        how = f"; resume with: torch-shallow train --resume {stop.checkpoint}" if stop.checkpoint else ""
        print(f"torch-shallow: interrupted after epoch {stop.history.epochs}{how}", file=sys.stderr)
        return 130  # the shell's code for a program ended by SIGINT
    except TrainingDiverged as error:
        print(f"torch-shallow: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as error:
        print(f"torch-shallow: error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0
