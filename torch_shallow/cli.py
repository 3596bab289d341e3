"""Command line: ``torch-shallow train`` (or ``python -m torch_shallow train``) fills a TrainConfig and calls fit;
``torch-shallow sweep`` trains a grid of models at once with fit_many; ``torch-shallow convert`` turns a CSV file
into on-disk .npy data. Under ``torchrun`` each process trains on its shard of the rows."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor

from .activations import ACTIVATIONS
from .checkpoint import CheckpointError, load_checkpoint, trained_weights
from .data import DATASETS, LABELS, load_csv
from .distributed import init_from_environment, shard, world
from .functional import OUTPUTS
from .module import ShallowNet
from .ondisk import NpyRows, csv_to_npy, open_npy, parquet_to_npy
from .parquet import is_parquet, open_parquet
from .run import RunInUse, check_output_file, holds_run, new_run_dir
from .sweep import fit_many
from .trainer import History, TrainConfig, TrainingDiverged, TrainingInterrupted, fit

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


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The program's parser, and its subparsers by command."""
    parser = argparse.ArgumentParser(prog="torch-shallow", description=__doc__.split(":")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a ShallowNet by full-batch gradient descent",
        description="Train a one-hidden-layer network by full-batch gradient descent and log it to TensorBoard. "
        "The defaults reproduce the planar experiment.",
    )
    _data_options(train)
    model = _model_options(train)
    model.add_argument("--hidden", type=positive_int, default=4, help="d1, the number of hidden units" + DEFAULT)
    model.add_argument(
        "--activation", choices=sorted(ACTIVATIONS), default="sigmoid", help="hidden activation σ" + DEFAULT
    )
    model.add_argument("--seed", type=int, default=0, help="seed of the initial parameters θ(0)" + DEFAULT)
    model.add_argument("--save", type=Path, help="write the trained model's state_dict to this file")
    training = _training_options(train)
    training.add_argument("--lr", type=positive_float, default=TrainConfig.lr, help="learning rate α" + DEFAULT)
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
    model.add_argument("--hidden", type=positive_int, nargs="+", default=[4], help="hidden sizes d1" + DEFAULT)
    model.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        nargs="+",
        default=["sigmoid"],
        help="hidden activations σ" + DEFAULT,
    )
    model.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of θ(0)" + DEFAULT)
    training = _training_options(sweep)
    training.add_argument(
        "--lr", type=positive_float, nargs="+", default=[TrainConfig.lr], help="learning rates α" + DEFAULT
    )
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
        type=fraction,
        metavar="F",
        help="hold out this fraction of the rows, stratified by label, as validation data",
    )
    data.add_argument("--split-seed", type=int, default=0, help="seed of the validation split" + DEFAULT)


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
        "--epochs", type=positive_int, default=TrainConfig.max_epochs, help="maximum number of epochs" + DEFAULT
    )
    training.add_argument(
        "--tol", type=non_negative_float, default=TrainConfig.tol, help="stop when |ΔJ| < tol; 0 turns it off" + DEFAULT
    )
    training.add_argument(
        "--patience",
        type=positive_int,
        help="early stopping: stop when the validation cost has not improved for this many "
        "evaluations, keeping the best epoch's parameters (needs --val-fraction)",
    )
    return training


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
        type=positive_int,
        help="log scalars, and evaluate the validation data, every k epochs (default: about 1,000 points per run)",
    )
    log.add_argument("--no-log", action="store_true", help="write no TensorBoard output")
    faults = parser.add_argument_group("checkpoints")
    faults.add_argument(
        "--checkpoint",
        type=Path,
        help=f"checkpoint file (default: checkpoint.pt in the {what}'s directory; none with --no-log)",
    )
    faults.add_argument(
        "--checkpoint-every",
        type=positive_int,
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
        type=positive_float,
        default=300.0,
        help="under torchrun, seconds a process waits for the others before failing" + DEFAULT,
    )
    return faults


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text}")
    return value


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
# must stay as it was; options that say where a new run writes have no meaning for it.
RESUME_KEEPS = (
    "hidden",
    "activation",
    "output",
    "seed",
    "seeds",
    "dtype",
    "lr",
    "val_fraction",
    "split_seed",
    "patience",
)
RESUME_REFUSES = ("log_dir", "checkpoint", "no_log", "init_from")
DATA_ARGUMENTS = ("dataset", "csv", "data", "label")
# Stored in the checkpoint, read back by --resume and --init-from; the model's sizes, activation, output and dtype
# are in its architecture entry.
RUN_ARGUMENTS = (*DATA_ARGUMENTS, "val_fraction", "split_seed", "seed", "device", "save")


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def refuse_contradictions(args: argparse.Namespace, given: set[str]) -> None:
    """Options that contradict each other, or that would have no effect: refused, never silently dropped."""
    pairs = [
        ("dataset", "csv"),
        ("dataset", "data"),
        ("no_log", "log_dir"),
        ("init_from", "seed"),
        ("val_fraction", "data"),
        ("resume", "init_from"),
    ]
    clashes = [f"{flag(a)} with {flag(b)}" for a, b in pairs if {a, b} <= given]
    if {"no_log", "log_every"} <= given and args.val_fraction is None:  # with validation data it sets how often
        clashes.append("--no-log with --log-every and no --val-fraction")  # early stopping looks
    parquet = args.data is not None and is_parquet(args.data)
    if "label" in given and "data" in given and not parquet:
        clashes.append("--label with --data of .npy files (their labels are Y.npy)")
    if "label" in given and "csv" not in given and not parquet and "resume" not in given and "data" not in given:
        clashes.append("--label without --csv")
    if "checkpoint_every" in given and args.no_log and args.checkpoint is None and "resume" not in given:
        clashes.append("--checkpoint-every with --no-log and no --checkpoint")
    if "split_seed" in given and args.val_fraction is None and "resume" not in given:
        clashes.append("--split-seed without --val-fraction")
    if "patience" in given and args.val_fraction is None and "resume" not in given:
        clashes.append("--patience without --val-fraction (early stopping watches the validation cost)")
    if "resume" in given:
        clashes += [f"{flag(dest)} with --resume" for dest in RESUME_REFUSES if dest in given and dest != "init_from"]
    if clashes:
        raise ValueError(f"these options contradict each other or would have no effect: {'; '.join(clashes)}")


def resumed_settings(args: argparse.Namespace, given: set[str]) -> TrainConfig:
    """Fill ``args`` with the run saved in ``args.resume``, apply the options that a resumed run may change, and
    return its config: its own run directory and checkpoint, wherever the run directory has moved."""
    saved = load_checkpoint(args.resume)
    sweep = isinstance(saved["history"], list)
    if sweep != (args.command == "sweep"):
        raise CheckpointError(
            f"checkpoint {args.resume} is a {'sweep' if sweep else 'single run'}'s: resume it "
            f"with torch-shallow {'sweep' if sweep else 'train'} --resume"
        )
    runs = saved["hparams"] if sweep else [saved["hparams"]]
    models = saved["architecture"] if sweep else [saved["architecture"]]
    if any(name not in runs[0] for name in RUN_ARGUMENTS if hasattr(args, name)):  # a sweep has no --save
        raise CheckpointError(f"checkpoint {args.resume} was not written by torch-shallow {args.command}")
    config = dict(saved["config"])
    kept = {**runs[0], "output": models[0]["output"], "dtype": models[0]["dtype"], "patience": config["patience"]}
    if sweep:
        kept.update(
            hidden=_unique(m["hidden_features"] for m in models),
            activation=_unique(m["activation"] for m in models),
            seeds=_unique(r["seed"] for r in runs),
            lr=_unique(saved["optimizer"]["lrs"]),
        )
    else:
        kept.update(hidden=models[0]["hidden_features"], activation=models[0]["activation"], lr=config["lr"])
    changed = [
        f"{flag(name)} {_show(getattr(args, name))} (the run's: {_show(kept[name])})"
        for name in RESUME_KEEPS
        if name in given and _comparable(getattr(args, name)) != _comparable(kept[name])
    ]
    if changed:
        advice = (
            f"start a new run from its weights with --init-from {args.resume}" if not sweep else "start a new sweep"
        )
        raise ValueError(
            f"cannot resume {args.resume} with {', '.join(changed)}: a resumed run keeps its model and "
            f"hyperparameters; to train with these, {advice}"
        )
    if not given & {"csv", "data", "dataset"}:  # the run's own data, unless told where it lies now
        for name in DATA_ARGUMENTS:
            setattr(args, name, runs[0][name])
    for name in (
        "val_fraction",
        "split_seed",
        "output",
        "dtype",
        *([] if "device" in given else ["device"]),
        *([] if "save" in given or sweep else ["save"]),
    ):
        setattr(args, name, kept.get(name, runs[0].get(name)))
    if not sweep and args.save is not None:
        args.save = Path(args.save)  # the model file the run was asked to write, unless told another
    args.csv, args.data = (None if v is None else Path(v) for v in (args.csv, args.data))
    for name, path in (("csv", args.csv), ("data", args.data)):
        if path is not None and not path.exists():
            raise ValueError(
                f"the run's data {path} is not there; if it has moved, give its new place with {flag(name)}"
            )
    epochs = max(h["epochs"] for h in (saved["history"] if sweep else [saved["history"]]))
    if "epochs" in given and args.epochs < epochs:
        raise ValueError(f"--epochs {args.epochs}: the run has already taken {epochs} epochs")
    checkpoint = args.resume.absolute()
    log_dir = config["log_dir"]
    if log_dir is not None and Path(config["checkpoint"]).parent == Path(log_dir):
        log_dir = checkpoint.parent  # the run directory, even if it was moved or copied since
    config.update(
        log_dir=log_dir,
        checkpoint=checkpoint,
        **{
            key: getattr(args, dest)
            for key, dest in (
                ("max_epochs", "epochs"),
                ("tol", "tol"),
                ("log_every", "log_every"),
                ("checkpoint_every", "checkpoint_every"),
            )
            if dest in given
        },
    )
    args.saved = saved
    return TrainConfig(**config)


def _unique(values) -> list:
    return sorted(set(values), key=lambda v: (str(type(v)), v))


def _comparable(value: object) -> object:
    return _unique(value) if isinstance(value, list) else value


def _show(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def check_data_paths(args: argparse.Namespace) -> None:
    """The data options name files that are there, before anything else happens."""
    if args.csv is not None and not args.csv.is_file():
        raise ValueError(
            f"--csv {args.csv}: " + ("is a directory; expected a CSV file" if args.csv.is_dir() else "no such file")
        )
    if args.data is not None and not (args.data.is_dir() or is_parquet(args.data)):
        raise ValueError(f"--data {args.data}: expected a directory of X.npy and Y.npy, or a .parquet file")


def load_data(
    args: argparse.Namespace, dtype: torch.dtype, device: torch.device
) -> tuple[str, Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """(experiment name, X, Y, validation data or None): this process's shard of the rows under torchrun, all of
    them otherwise. Softmax outputs take labels 0..K-1 as one-hot rows."""
    rank, size = world()
    if args.data is not None and is_parquet(args.data):  # streamed by row groups, each rank its own rows
        n = open_parquet(args.data, label=args.label)[0].shape[0]
        rows = shard(n, rank, size)
        return args.data.stem, *open_parquet(args.data, rows, dtype, device, args.label, args.output), None
    if args.data is not None:
        n = NpyRows(args.data / "X.npy").shape[0]
        return args.data.name, *open_npy(args.data, shard(n, rank, size), dtype, device, args.output), None
    if args.csv is not None:
        experiment = args.csv.stem
        X, Y = load_csv(args.csv, args.label, dtype=dtype, output=args.output)
    else:
        experiment, (X, Y) = args.dataset, DATASETS[args.dataset](dtype=dtype)
    if args.output == "softmax":
        Y = one_hot(Y)
    val = None
    if args.val_fraction is not None:
        train_rows, val_rows = stratified_split(Y, args.val_fraction, args.split_seed)
        X, Y, val = X[train_rows], Y[train_rows], (X[val_rows], Y[val_rows])
    start, stop = shard(X.shape[0], rank, size)
    if val is not None:
        v_start, v_stop = shard(val[0].shape[0], rank, size)
        val = val[0][v_start:v_stop].to(device), val[1][v_start:v_stop].to(device)
    return experiment, X[start:stop].to(device), Y[start:stop].to(device), val


def one_hot(Y: Tensor) -> Tensor:
    """Labels 0..K-1 (n, 1) as one-hot rows (n, K), K the largest label + 1."""
    labels = Y.reshape(-1).long()
    classes = int(labels.max()) + 1
    if classes < 2:
        raise ValueError(f"--output softmax needs labels of at least 2 classes 0..K-1, got only class {classes - 1}")
    return torch.nn.functional.one_hot(labels, classes).to(Y.dtype)


def stratified_split(Y: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(training rows, validation rows): ``fraction`` of each class's rows, drawn with ``seed``, held out."""
    classes = Y.argmax(1) if Y.shape[1] > 1 else Y.reshape(-1).round().long()
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in classes.unique():
        rows = (classes == c).nonzero().reshape(-1)
        rows = rows[torch.randperm(len(rows), generator=g)]
        held.append(rows[: round(fraction * len(rows))])
    val_rows = torch.cat(held).sort().values
    keep = torch.ones(len(classes), dtype=torch.bool)
    keep[val_rows] = False
    if not keep.any() or len(val_rows) == 0:
        raise ValueError(
            f"--val-fraction {fraction} leaves no {'training' if not keep.any() else 'validation'} rows "
            f"of the {len(classes)}"
        )
    return keep.nonzero().reshape(-1), val_rows


def start_run(args: argparse.Namespace, experiment: str, rank: int, sweep: bool) -> tuple[Path | None, Path | None]:
    """A new run's directory (created exclusively, on rank 0) and checkpoint path; says so when the name was taken."""
    if args.no_log:
        return None, args.checkpoint
    stamp = time.strftime("%Y%m%d-%H%M%S")
    wanted = args.log_dir or Path("runs") / f"{experiment}-{'sweep-' if sweep else ''}{stamp}"
    log_dir = new_run_dir(wanted) if rank == 0 else wanted  # only rank 0 writes
    if log_dir != wanted:
        print(f"{wanted} is taken: this run writes to {log_dir}", file=sys.stderr)
    return log_dir, args.checkpoint or log_dir / "checkpoint.pt"


def prepare(args: argparse.Namespace, given: set[str]) -> tuple[TrainConfig | None, torch.device, int]:
    """The steps shared by train and sweep before the data: the resume rule, the device, the process group."""
    refuse_contradictions(args, given)
    if args.command == "sweep":
        for name in ("hidden", "activation", "lr", "seeds"):
            values = getattr(args, name)
            twice = sorted({v for v in values if values.count(v) > 1}, key=str)
            if twice:
                raise ValueError(f"{flag(name)} lists {', '.join(map(str, twice))} more than once")
    config = resumed_settings(args, given) if args.resume is not None else None
    check_data_paths(args)
    device = torch.device(args.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: one GPU per process, set before NCCL
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    init_from_environment(device, args.timeout)
    return config, device, world()[0]


def run_settings(args: argparse.Namespace) -> dict[str, object]:
    """The options a resume reads back (with absolute paths); those set, for the HParams view too."""
    return {
        name: str(value.absolute()) if isinstance(value, Path) else value
        for name, value in vars(args).items()
        if name in RUN_ARGUMENTS
    }


def new_config(args: argparse.Namespace, log_dir: Path | None, checkpoint: Path | None, lr: float) -> TrainConfig:
    return TrainConfig(
        lr=lr,
        max_epochs=args.epochs,
        tol=args.tol,
        log_dir=log_dir,
        log_every=args.log_every,
        checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every,
        patience=args.patience,
    )


@contextlib.contextmanager
def removed_if_empty(log_dir: Path | None) -> Iterator[None]:
    """A new run directory that holds nothing of the run when it fails is removed, so that none is left empty."""
    try:
        yield
    except BaseException:
        if log_dir is not None and not any(holds_run(d) for d in [log_dir, *log_dir.glob("*/")]):
            shutil.rmtree(log_dir, ignore_errors=True)
        raise


def train(args: argparse.Namespace, given: set[str]) -> None:
    config, device, rank = prepare(args, given)
    init = None if args.init_from is None else load_checkpoint(args.init_from)
    if init is not None and isinstance(init["architecture"], list):
        raise CheckpointError(
            f"--init-from {args.init_from}: this is a sweep's checkpoint, of "
            f"{len(init['architecture'])} models; --init-from takes a single run's"
        )
    if init is not None:
        for name, key in (("hidden", "hidden_features"), ("activation", "activation"), ("output", "output")):
            if name not in given:  # the model of the checkpoint's weights, unless told otherwise
                setattr(args, name, init["architecture"][key])
    if config is not None:
        model = args.saved["architecture"]
        args.hidden, args.activation, args.seed = (
            model["hidden_features"],
            model["activation"],
            args.saved["hparams"]["seed"],
        )
    if args.save is not None and rank == 0:
        check_output_file(args.save.absolute(), "--save", create_parent=False)
    dtype = DTYPES[args.dtype]
    experiment, X, Y, val = load_data(args, dtype, device)
    net = ShallowNet(X.shape[1], args.hidden, Y.shape[1], args.activation, args.output, device=device, dtype=dtype)
    net.reset_parameters(torch.Generator().manual_seed(args.seed))
    if init is not None:
        try:
            net.load_state_dict(trained_weights(init))
        except RuntimeError:
            saved = init["architecture"]
            raise CheckpointError(
                f"--init-from {args.init_from}: its weights are of a model with {saved['in_features']} inputs, "
                f"{saved['hidden_features']} hidden units and {saved['out_features']} outputs; this one has "
                f"{net.in_features}, {net.hidden_features} and {net.out_features}"
            ) from None
    log_dir = None
    if config is None:
        log_dir, checkpoint = start_run(args, experiment, rank, sweep=False)
        config = new_config(args, log_dir, checkpoint, args.lr)
    run = run_settings(args)
    if init is not None:
        run["init_from"] = str(args.init_from.absolute())
    already = None if args.resume is None else args.saved["history"]["epochs"]
    with removed_if_empty(log_dir):
        history = fit(net, X, Y, config, val=val, hparams=run, resume_from=args.resume)
    if rank != 0:
        return
    if already is not None and history.epochs == already:
        print(
            f"{args.resume}: the run had already ended ({history.stop_reason}) after {already} epochs; nothing "
            "more to train (--epochs, or a smaller --tol, lets it go on)"
        )
    print(f"{experiment}: {history.summary()}")
    if args.save is not None:
        torch.save(net.state_dict(), args.save)
        print(f"model saved to {args.save}")
    if config.log_dir is not None:
        print(f"TensorBoard: tensorboard --logdir {Path(config.log_dir).parent}")


def sweep(args: argparse.Namespace, given: set[str]) -> None:
    config, device, rank = prepare(args, given)
    if config is not None:
        runs, models = args.saved["hparams"], args.saved["architecture"]
        grid = [
            (m["hidden_features"], m["activation"], lr, r["seed"])
            for m, r, lr in zip(models, runs, args.saved["optimizer"]["lrs"])
        ]
    else:
        grid = [
            (h, a, lr, seed)
            for a in dict.fromkeys(args.activation)
            for h in dict.fromkeys(args.hidden)
            for lr in dict.fromkeys(args.lr)
            for seed in dict.fromkeys(args.seeds)
        ]
    dtype = DTYPES[args.dtype]
    experiment, X, Y, val = load_data(args, dtype, device)
    nets = []
    for h, a, _, seed in grid:
        net = ShallowNet(X.shape[1], h, Y.shape[1], a, args.output, device=device, dtype=dtype)
        net.reset_parameters(torch.Generator().manual_seed(seed))
        nets.append(net)
    log_dir = None
    if config is None:
        log_dir, checkpoint = start_run(args, experiment, rank, sweep=True)
        config = new_config(args, log_dir, checkpoint, args.lr[0])
    settings = run_settings(args)
    hparams = [{**settings, "seed": seed} for *_, seed in grid]
    names = [f"h{h}-{a}-lr{lr:g}-s{seed}" for h, a, lr, seed in grid]
    with removed_if_empty(log_dir):
        histories = fit_many(
            nets,
            X,
            Y,
            config,
            lrs=[lr for _, _, lr, _ in grid],
            val=val,
            hparams=hparams,
            run_names=names,
            resume_from=args.resume,
        )
    if rank != 0:
        return
    print(sweep_table(grid, histories))
    if config.log_dir is not None:
        print(f"TensorBoard: tensorboard --logdir {config.log_dir}")


def sweep_table(grid: list[tuple[int, str, float, int]], histories: list[History]) -> str:
    """Every model of a sweep, sorted by final cost."""
    rows = sorted(zip(grid, histories), key=lambda row: (math.isnan(row[1].final_cost), row[1].final_cost))
    val = any(h.val_accuracy is not None for h in histories)
    header = (
        f"{'hidden':>6}  {'activation':<10}  {'lr':>8}  {'seed':>4}  {'final cost':>10}  {'accuracy':>8}  "
        + (f"{'val acc':>8}  " if val else "")
        + f"{'epochs':>7}  stop reason"
    )
    lines = [header, "-" * len(header)]
    for (h, a, lr, seed), history in rows:
        val_acc = (
            (f"{100 * history.val_accuracy:7.2f}%  " if history.val_accuracy is not None else " " * 10) if val else ""
        )
        lines.append(
            f"{h:>6}  {a:<10}  {lr:>8g}  {seed:>4}  {history.final_cost:>10.6f}  "
            f"{100 * history.train_accuracy:7.2f}%  {val_acc}{history.epochs:>7}  {history.stop_reason}"
        )
    return "\n".join(lines)


def convert(args: argparse.Namespace, given: set[str]) -> None:
    write = parquet_to_npy if is_parquet(args.csv) else csv_to_npy
    n = write(args.csv, args.directory, args.label, dtype=args.dtype, output=args.output)
    print(f"{args.csv}: {n} rows written to {args.directory / 'X.npy'} and {args.directory / 'Y.npy'}")


def resume_command(command: str, checkpoint: Path) -> str:
    if world()[1] > 1:
        return f"torchrun <the same options> -m torch_shallow {command} --resume {checkpoint}"
    return f"torch-shallow {command} --resume {checkpoint}"


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
        if world()[0] == 0:
            how = f"; resume with: {resume_command(args.command, stop.checkpoint)}" if stop.checkpoint else ""
            epochs = max(h.epochs for h in stop.history) if isinstance(stop.history, list) else stop.history.epochs
            print(
                f"torch-shallow: interrupted by {signal.Signals(stop.signal).name} after epoch {epochs}{how}",
                file=sys.stderr,
            )
        return 128 + stop.signal  # the shell's code for a program ended by that signal: 130 for SIGINT, 143 SIGTERM
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
