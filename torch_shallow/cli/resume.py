"""The resume rule of the command line: what a resumed run may change (how long it goes on, how it is recorded,
where it runs and where its data now lies), what it must keep (what defines the run), and options that contradict
each other."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, load_checkpoint
from ..parquet import is_parquet
from ..trainer import TrainConfig
from .parser import COMPILE

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
    if getattr(args, "kernel_every", None) is not None and args.data is not None:
        clashes.append("--kernel-every with --data (the tangent kernel on the training data needs it in memory)")
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
    if "compile" in given:
        config["compile"] = COMPILE[args.compile]
    args.saved = saved
    return TrainConfig(**config)


def _unique(values: Iterable[Any]) -> list[Any]:
    return sorted(set(values), key=lambda v: (str(type(v)), v))


def _comparable(value: object) -> object:
    return _unique(value) if isinstance(value, list) else value


def _show(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
