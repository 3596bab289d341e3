"""The commands: ``torch-shallow train`` fills a TrainConfig and calls fit; ``torch-shallow sweep`` trains a grid of
models at once with fit_many; ``torch-shallow convert`` writes on-disk .npy data from a CSV or Parquet file."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ..callbacks import Callback
from ..checkpoint import CheckpointError, load_checkpoint, save_model, trained_weights
from ..data import load_training_data
from ..distributed import init_from_environment, world
from ..errors import TrainingInterrupted
from ..hyperparameters import DTYPES
from ..module import ShallowNet
from ..ondisk import csv_to_npy, parquet_to_npy
from ..parquet import is_parquet
from ..run import check_save_path, holds_run, model_run_names, new_run_dir, run_name
from ..stack import fit_many
from ..trainer import History, TrainConfig, fit
from .parser import COMPILE
from .resume import RUN_ARGUMENTS, flag, refuse_contradictions, resumed_settings


def check_data_paths(args: argparse.Namespace) -> None:
    """The data options name files that are there, before anything else happens."""
    if args.csv is not None and (args.csv.is_dir() or not args.csv.exists()):  # a pipe such as /dev/stdin will do
        raise ValueError(
            f"--csv {args.csv}: " + ("is a directory; expected a CSV file" if args.csv.is_dir() else "no such file")
        )
    if args.data is not None and not (args.data.is_dir() or is_parquet(args.data)):
        raise ValueError(f"--data {args.data}: expected a directory of X.npy and Y.npy, or a .parquet file")


def start_run(args: argparse.Namespace, experiment: str, rank: int, sweep: bool) -> tuple[Path | None, Path | None]:
    """A new run's directory (created exclusively, on rank 0) and checkpoint path; says so when the name was taken."""
    if args.no_log:
        return None, args.checkpoint
    wanted = args.log_dir or Path("runs") / run_name(f"{experiment}-sweep" if sweep else experiment)
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
        dashboard_models=getattr(args, "dashboard_models", TrainConfig.dashboard_models),
        compile=COMPILE[args.compile],
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
        if args.save is not None and rank == 0:
            check_save_path(args.save, config.checkpoint, args.resume, config.log_dir)
        try:
            history = fit(net, X, Y, config, val=val, hparams=run, resume_from=args.resume, callbacks=instruments(args))
        except TrainingInterrupted as stop:
            if stop.finished and rank == 0:  # a signal as training ended: the run is complete, report it
                report(args, experiment, stop.history, net, config, already)
            raise
    if rank == 0:
        report(args, experiment, history, net, config, already)


def report(
    args: argparse.Namespace,
    experiment: str,
    history: History,
    net: ShallowNet,
    config: TrainConfig,
    already: int | None,
) -> None:
    """What a trained run prints, and the model saved with --save."""
    if already is not None and history.epochs == already:
        going_on = {
            "converged": "a smaller --tol lets it go on",
            "max_epochs": "more --epochs let it go on",
        }.get(
            history.stop_reason,
            f"a run that ended by {history.stop_reason} cannot go on; --init-from "
            f"{args.resume} starts a new one from its weights",
        )
        print(
            f"{args.resume}: the run had already ended ({history.stop_reason}) after {already} epochs; nothing "
            f"more to train ({going_on})"
        )
    print(f"{experiment}: {history.summary()}")
    if args.save is not None:
        save_model(net, args.save)
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
    names = model_run_names(
        [h for h, *_ in grid], [a for _, a, *_ in grid], [lr for *_, lr, _ in grid], [seed for *_, seed in grid]
    )
    with removed_if_empty(log_dir):
        try:
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
                callbacks=instruments(args),
            )
        except TrainingInterrupted as stop:
            if stop.finished and rank == 0:  # a signal as training ended: the sweep is complete, report it
                print(sweep_table(grid, stop.history))
            raise
    if rank == 0:
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
            f"{h:>6}  {a:<10}  {lr!s:>8}  {seed:>4}  {history.final_cost:>10.6f}  "
            f"{_percent(history.train_accuracy)}  {val_acc}{history.epochs:>7}  {history.stop_reason}"
        )
    return "\n".join(lines)


def _percent(fraction: float) -> str:
    """An accuracy in the table's column; "-" where there is none (identity outputs)."""
    return f"{'-':>8}" if math.isnan(fraction) else f"{100 * fraction:7.2f}%"


def convert(args: argparse.Namespace, given: set[str]) -> None:
    write = parquet_to_npy if is_parquet(args.csv) else csv_to_npy
    n = write(args.csv, args.directory, args.label, dtype=args.dtype, output=args.output)
    print(f"{args.csv}: {n} rows written to {args.directory / 'X.npy'} and {args.directory / 'Y.npy'}")


def load_data(
    args: argparse.Namespace, dtype: torch.dtype, device: torch.device
) -> tuple[str, Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """The data the options name (:func:`~torch_shallow.data.load_training_data`)."""
    return load_training_data(
        dataset=args.dataset,
        csv=args.csv,
        data=args.data,
        label=args.label,
        output=args.output,
        val_fraction=args.val_fraction,
        split_seed=args.split_seed,
        dtype=dtype,
        device=device,
    )


def instruments(args: argparse.Namespace) -> list[Callback]:
    """The training-dynamics callbacks that --sharpness-every and --kernel-every ask for."""
    from ..instruments import KernelDrift, Sharpness  # torch.func's machinery, for runs that ask for it

    chosen: list[Callback] = []
    if args.sharpness_every is not None:
        chosen.append(Sharpness(every=args.sharpness_every))
    if args.kernel_every is not None:
        chosen.append(KernelDrift(every=args.kernel_every))
    return chosen


def resume_command(command: str, checkpoint: Path) -> str:
    if world()[1] > 1:
        return f"torchrun <the same options> -m torch_shallow {command} --resume {checkpoint}"
    return f"torch-shallow {command} --resume {checkpoint}"
