"""TensorBoard output, in each run's directory (see :mod:`torch_shallow.run`): scalars, hyperparameters,
histograms, the decision boundary of 2-D data and a layout that overlays training and validation curves."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from .functional import auto_block_rows

HParamValue = int | float | str | bool


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


# Colours of the decision-boundary image (RGB in [0, 1]): the probability field fades from the light colour of
# class 0 to that of class 1; the points are drawn in the dark colour of their label.
LIGHT = torch.tensor([[0.60, 0.75, 0.95], [0.97, 0.65, 0.55]])
DARK = torch.tensor([[0.05, 0.20, 0.60], [0.65, 0.05, 0.05]])


@torch.no_grad()
def decision_boundary_image(model: torch.nn.Module, X: Tensor, Y: Tensor, size: int = 256) -> Tensor:
    """A (3, size, size) float image in [0, 1]: the points of 2-D data over the field A2 = P(y = 1 | x).

    The field is evaluated on a size × size grid over the data's range with a 10% margin, block by block as the
    cost is, so that a wide hidden layer does not need (size², d1) activations at once; the point of each sample
    is a 3 × 3 pixel square in its label's colour. The image's top row is the largest second coordinate.
    """
    X, Y = X.detach().cpu().double(), Y.detach().cpu().reshape(-1)
    low, high = X.min(0).values, X.max(0).values
    margin = 0.1 * (high - low).clamp_min(1e-12)
    low, high = low - margin, high + margin
    u = torch.linspace(low[0], high[0], size, dtype=torch.float64)
    v = torch.linspace(high[1], low[1], size, dtype=torch.float64)
    grid = torch.cartesian_prod(v, u).flip(1)  # row-major over the image: (v, u) pairs as (x1, x2) points
    grid = grid.to(device=model.W1.device, dtype=model.W1.dtype)
    block_rows = auto_block_rows(model.W1)
    p = torch.cat([model.predict_proba(grid[a:a + block_rows])[:, 0] for a in range(0, len(grid), block_rows)])
    p = p.double().cpu().reshape(size, size, 1)
    image = (1 - p) * LIGHT[0].double() + p * LIGHT[1].double()  # (size, size, 3)
    col = ((X[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)).round().long()
    row = ((high[1] - X[:, 1]) / (high[1] - low[1]) * (size - 1)).round().long()
    colour = DARK.double()[(Y > 0.5).long()]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            image[(row + dr).clamp(0, size - 1), (col + dc).clamp(0, size - 1)] = colour
    return image.permute(2, 0, 1).float()


def write_dashboard(writer: SummaryWriter, model: torch.nn.Module, X: Tensor, Y: Tensor, step: int) -> None:
    """Histograms of θ and ∇J (tags ``W1``... and ``grad/W1``...), and for 2-D data the decision boundary."""
    for name, p in model.named_parameters():
        writer.add_histogram(name, p.detach(), step)
        if p.grad is not None:
            writer.add_histogram(f"grad/{name}", p.grad, step)
    if isinstance(X, Tensor) and X.shape[1] == 2 and model.out_features == 1:  # in memory: on disk it may be huge
        writer.add_image("decision_boundary", decision_boundary_image(model, X, Y), step)


def write_layout(writer: SummaryWriter) -> None:
    """A Custom Scalars layout with training and validation curves in one chart each."""
    writer.add_custom_scalars({
        "cost": {"train and validation": ["Multiline", ["cost/train", "cost/val"]]},
        "accuracy": {"train and validation": ["Multiline", ["accuracy/train", "accuracy/val"]]},
    })


def write_graph(writer: SummaryWriter, model: torch.nn.Module, X: Tensor) -> None:
    """The model's graph for the Graphs tab. ``add_graph`` traces with ``torch.jit.trace``, deprecated in recent
    PyTorch but still the only path TensorBoard reads; the custom Function shows as one ``PythonOp`` node fed by
    X, W1, b1, W2 and b2."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the boundary's shape checks: constants of a trace
        writer.add_graph(model, X)
