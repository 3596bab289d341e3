"""The command line's parser: the commands train, sweep and convert, their options, and which options were given."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import __version__
from ..activations import ACTIVATIONS
from ..data import DATASETS, LABELS
from ..functional import OUTPUTS
from ..hyperparameters import DTYPES, FRACTION, NON_NEGATIVE, POSITIVE, POSITIVE_INT, SEED
from ..trainer import TrainConfig


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


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The program's parser, and its subparsers by command."""
    parser = argparse.ArgumentParser(
        prog="torch-shallow",
        description="Train the lecture's one-hidden-layer neural network by full-batch gradient descent, with its "
        "hand-written backward formulas, and log the run to TensorBoard; train a grid of such networks at once; "
        "convert CSV or Parquet files to on-disk data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a ShallowNet by full-batch gradient descent",
        description="Train a one-hidden-layer network by full-batch gradient descent and log it to TensorBoard. "
        "The defaults reproduce the planar experiment.",
    )
    _data_options(train)
    model = _model_options(train)
    model.add_argument("--hidden", type=POSITIVE_INT.parse, default=4, help="d1, the number of hidden units" + DEFAULT)
    model.add_argument(
        "--activation", choices=sorted(ACTIVATIONS), default="sigmoid", help="hidden activation σ" + DEFAULT
    )
    model.add_argument("--seed", type=SEED.parse, default=0, help="seed of the initial parameters θ(0)" + DEFAULT)
    model.add_argument("--save", type=Path, help="write the trained model's state_dict to this file")
    training = _training_options(train)
    training.add_argument("--lr", type=POSITIVE.parse, default=TrainConfig.lr, help="learning rate α" + DEFAULT)
    _compile_option(training)
    _instrument_options(train)
    faults = _run_options(train, "run")
    faults.add_argument(
        "--init-from",
        type=Path,
        metavar="CHECKPOINT",
        help="start a new run from the weights in CHECKPOINT (and its --hidden and --activation)",
    )

    sweep = commands.add_parser(
        "sweep",
        help="train a grid of ShallowNets at once, one batched pass per epoch",
        description="Train every combination of hidden size, activation, learning rate and seed at once, as one "
        "stack of models (fit_many), print a table of them sorted by final cost and log one TensorBoard "
        "run per model.",
    )
    _data_options(sweep)
    model = _model_options(sweep)
    model.add_argument("--hidden", type=POSITIVE_INT.parse, nargs="+", default=[4], help="hidden sizes d1" + DEFAULT)
    model.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        nargs="+",
        default=["sigmoid"],
        help="hidden activations σ" + DEFAULT,
    )
    model.add_argument("--seeds", type=SEED.parse, nargs="+", default=[0], help="seeds of θ(0)" + DEFAULT)
    training = _training_options(sweep)
    training.add_argument(
        "--lr", type=POSITIVE.parse, nargs="+", default=[TrainConfig.lr], help="learning rates α" + DEFAULT
    )
    _compile_option(training)
    _instrument_options(sweep)
    _run_options(sweep, "sweep")

    convert = commands.add_parser(
        "convert",
        help="write a CSV or Parquet file as on-disk data for --data",
        description="Write X.npy and Y.npy in DIR from a CSV file with a header row, in one streaming pass (a pipe "
        "such as /dev/stdin works), or from a Parquet file, so that files larger than memory convert "
        "too. The files appear only when the whole input has converted.",
    )
    convert.add_argument("csv", type=Path, metavar="FILE", help="the CSV file (a pipe works) or .parquet file")
    convert.add_argument("directory", type=Path, metavar="DIR", help="where to write X.npy and Y.npy")
    convert.add_argument("--label", help="the label column (default: the last column)")
    convert.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="stored dtype" + DEFAULT)
    convert.add_argument(
        "--output",
        choices=list(LABELS),
        default="sigmoid",
        help="the output the labels are for, as train --output: sigmoid (0/1), softmax (class numbers 0..K-1, "
        "written as integers), identity (any number)" + DEFAULT,
    )
    return parser, {"train": train, "sweep": sweep, "convert": convert}


DEFAULT = " (default: %(default)s)"


def _data_options(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=sorted(DATASETS), default="planar", help="generated data set" + DEFAULT)
    source = data.add_mutually_exclusive_group()
    source.add_argument("--csv", type=Path, help="train on this CSV file instead (header row, numeric columns)")
    source.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="train on on-disk data instead: a directory of X.npy and Y.npy (see the convert "
        "command), or a .parquet file, read block by block",
    )
    data.add_argument("--label", help="the label column of --csv or a .parquet --data (default: the last column)")
    data.add_argument(
        "--val-fraction",
        type=FRACTION.parse,
        metavar="F",
        help="hold out this fraction of the rows, stratified by label, as validation data",
    )
    data.add_argument("--split-seed", type=SEED.parse, default=0, help="seed of the validation split" + DEFAULT)


def _model_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    model = parser.add_argument_group("model")
    model.add_argument(
        "--output",
        choices=OUTPUTS,
        default="sigmoid",
        help="output units: sigmoid (0/1 labels) or softmax (K classes, labels 0..K-1)" + DEFAULT,
    )
    model.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="parameter and data dtype" + DEFAULT)
    model.add_argument("--device", type=device_name, default="cpu", help="torch device, e.g. cpu or cuda" + DEFAULT)
    return model


def _training_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    training = parser.add_argument_group("training")
    training.add_argument(
        "--epochs", type=POSITIVE_INT.parse, default=TrainConfig.max_epochs, help="maximum number of epochs" + DEFAULT
    )
    training.add_argument(
        "--tol", type=NON_NEGATIVE.parse, default=TrainConfig.tol, help="stop when |ΔJ| < tol; 0 turns it off" + DEFAULT
    )
    training.add_argument(
        "--patience",
        type=POSITIVE_INT.parse,
        help="early stopping: stop when the validation cost has not improved for this many "
        "evaluations, keeping the best epoch's parameters (needs --val-fraction)",
    )
    return training


COMPILE: dict[str, str | bool] = {"auto": "auto", "on": True, "off": False}


def _compile_option(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--compile",
        choices=list(COMPILE),
        default="auto",
        help="run the epochs between two log points as compiled code: on, off, or auto, where it repays the "
        "compile (long runs on small data)" + DEFAULT,
    )


def _instrument_options(parser: argparse.ArgumentParser) -> None:
    instruments = parser.add_argument_group("training dynamics")
    instruments.add_argument(
        "--sharpness-every",
        type=POSITIVE_INT.parse,
        metavar="K",
        help="log the sharpness (the Hessian's top eigenvalue) and 2/lr every K epochs",
    )
    instruments.add_argument(
        "--kernel-every",
        type=POSITIVE_INT.parse,
        metavar="K",
        help="log the change of the weights and of the neural tangent kernel, and the kernel's alignment with the "
        "labels, every K epochs",
    )


def _run_options(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    log = parser.add_argument_group("logging")
    log.add_argument(
        "--log-dir",
        type=Path,
        help=f"TensorBoard directory of the {what} (default: runs/<experiment>-"
        f"{'sweep-' if what == 'sweep' else ''}<timestamp>); a taken name gets a suffix -2, -3, ...",
    )
    log.add_argument(
        "--log-every",
        type=POSITIVE_INT.parse,
        help="log scalars, and evaluate the validation data, every k epochs (default: about 1,000 points per run)",
    )
    log.add_argument("--no-log", action="store_true", help="write no TensorBoard output")
    if what == "sweep":
        log.add_argument(
            "--dashboard-models",
            type=POSITIVE_INT.parse,
            default=TrainConfig.dashboard_models,
            help="draw the histograms and decision boundary of this many models, of the lowest cost, after epoch 0"
            + DEFAULT,
        )
    faults = parser.add_argument_group("checkpoints")
    faults.add_argument(
        "--checkpoint",
        type=Path,
        help=f"checkpoint file (default: checkpoint.pt in the {what}'s directory; none with --no-log)",
    )
    faults.add_argument(
        "--checkpoint-every",
        type=POSITIVE_INT.parse,
        default=TrainConfig.checkpoint_every,
        help="epochs between checkpoints" + DEFAULT,
    )
    faults.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help=f"continue the {what} saved in CHECKPOINT, in its directory; only --epochs, --tol, "
        "--log-every, --checkpoint-every, --device, --timeout (and, for train, --save) may "
        "change, and the data's place",
    )
    faults.add_argument(
        "--timeout",
        type=POSITIVE.parse,
        default=300.0,
        help="under torchrun, seconds a process waits for the others before failing" + DEFAULT,
    )
    return faults


def given_options(argv: list[str]) -> set[str]:
    """The destinations of the options given on the command line, as opposed to those left at their defaults."""
    parser, commands = _parsers()
    unset = object()  # not a string, which argparse would pass through the option's type
    for command in ("train", "sweep"):
        sub = commands[command]
        sub.set_defaults(**{dest: unset for dest in vars(sub.parse_args([]))})
    return {dest for dest, value in vars(parser.parse_args(argv)).items() if value is not unset}


# What a resumed run may change: how long it goes on and how it is recorded, where it runs, and where its data now
# lies (--dataset, --csv, --data, --label), which the checkpoint's data fingerprint checks. What defines the run
