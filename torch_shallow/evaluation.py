"""J and the accuracy of trained models, and the callback that evaluates them during and after training."""

from __future__ import annotations

from typing import Any, cast

import torch

from .callbacks import Callback, Run
from .distributed import all_reduce_sum_
from .functional import cost_and_gradients


@torch.no_grad()
def evaluate(model: Any, X: Any, Y: Any, n: int | None = None) -> tuple[float, float]:
    """(J, accuracy) of ``model`` (a ``ShallowNet``) on (X, Y (n, d2)); see :func:`evaluate_each`."""
    costs, accuracies = evaluate_each(model, X, Y, X.shape[0] if n is None else n)
    return costs[0], accuracies[0]


def evaluate_each(net: Any, X: Any, Y: Any, n: int) -> tuple[list[float], list[float]]:
    """(J, accuracy) of each model of ``net`` on (X, Y (n, d2)), block by block, summed over the ranks.

    ``net`` is a ``ShallowNet`` or a stack of models along a leading axis (anything with W1, b1, W2, b2,
    ``activation`` and ``output``). The accuracy counts A2 > 0.5 (that is, Z2 > 0) per label, or the argmax of a
    softmax output (see :func:`~torch_shallow.functional.right_answers`). In a distributed run each rank passes its
    shard and the global n.
    """
    with torch.no_grad():
        J, _, right = cost_and_gradients(
            X,
            Y,
            net.W1,
            net.b1,
            net.W2,
            net.b2,
            net.activation,
            n=n,
            output=net.output,
            count_right=True,
        )
    right = cast(torch.Tensor, right)  # counted: count_right=True
    totals = torch.stack([J.reshape(-1).double(), right.reshape(-1).double()])
    all_reduce_sum_([totals])
    return totals[0].tolist(), (totals[1] / (n * labels_per_row(net))).tolist()


def labels_per_row(net: Any) -> int:
    """How many labels a row of Y holds for the accuracy: each sigmoid unit's, or the one class of a softmax (identity
    outputs count no right answers: their accuracy is NaN)."""
    return 1 if net.output == "softmax" else net.W2.shape[-2]


class Evaluation(Callback):
    """The validation data's J and accuracy every ``every`` epochs (into the histories' ``val_epochs`` and
    ``val_costs``), and, after training, the trained models' J and accuracy on the training and validation data
    (the histories' ``final_cost``, ``train_accuracy``, ``val_cost``, ``val_accuracy``)."""

    def __init__(self, every: int | None) -> None:
        self.every = every

    def on_fit_start(self, run: Run) -> None:
        self.on_epoch_end(run)

    def on_epoch_end(self, run: Run) -> None:
        if run.val is not None and not run.last and self.every is not None and run.epoch % self.every == 0:
            run.validation()

    def on_fit_end(self, run: Run) -> None:
        if run.interrupted:
            return
        costs, accuracies = run.evaluate(run.X, run.Y, run.n)
        val = run.evaluate(*run.val) if run.val is not None else None
        for k, history in enumerate(run.histories):
            history.final_cost, history.train_accuracy = costs[k], accuracies[k]
            if val is not None:
                history.val_cost, history.val_accuracy = val[0][k], val[1][k]
