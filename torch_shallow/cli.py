"""Command line: ``torch-shallow train`` (or ``python -m torch_shallow train``) fills a TrainConfig and calls fit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .activations import ACTIVATIONS
from .board import default_run_dir
from .data import DATASETS, load_csv
from .module import ShallowNet
from .checkpoint import CheckpointError, load_checkpoint
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
    data.add_argument("--csv", type=Path, help="train on this CSV file instead (header row, numeric columns)")
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
    return parser


# The arguments that define a run's data and model: stored in its checkpoint, read back by --resume.
RUN_ARGUMENTS = ("dataset", "csv", "label", "hidden", "activation", "seed", "dtype", "device")


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
        args.csv = None if args.csv is None else Path(args.csv)
    dtype = DTYPES[args.dtype]
    if args.csv is not None:
        experiment, (X, Y) = args.csv.stem, load_csv(args.csv, args.label, dtype=dtype)
    else:
        experiment, (X, Y) = args.dataset, DATASETS[args.dataset](dtype=dtype)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    X, Y = X.to(device), Y.to(device)
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
    print(f"{experiment}: {history.summary()}")
    if args.save is not None:
        torch.save(net.state_dict(), args.save)
        print(f"model saved to {args.save}")
    if config.log_dir is not None:
        print(f"TensorBoard: tensorboard --logdir {Path(config.log_dir).parent}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args)
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
    return 0
