"""TensorBoard output: one run directory per training run, scalars and hyperparameters together."""

from __future__ import annotations

import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

HParamValue = int | float | str | bool


def default_run_dir(experiment: str, root: str | Path = "runs") -> Path:
    """``runs/<experiment>-<YYYYmmdd-HHMMSS>``: one directory per run, sorted by time in TensorBoard's list."""
    return Path(root) / f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_hparams(writer: SummaryWriter, hparams: dict[str, object], metrics: dict[str, float], step: int) -> None:
    """Record hyperparameters and final metrics in the writer's own run directory.

    ``SummaryWriter.add_hparams`` writes them into a new sub-run named by a timestamp, which splits one run
    in two on the dashboard. Writing the three hparams summaries through the run's own file writer, and the
    metrics as ordinary scalars beside them, keeps the HParams dashboard and the curves in one run.
    """
    clean = {k: v if isinstance(v, HParamValue) else str(v) for k, v in hparams.items()}
    for summary in hparams_summary(clean, metrics):
        writer.file_writer.add_summary(summary)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, step)
