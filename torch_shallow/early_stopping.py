"""Early stopping: stop a model once its validation cost has not improved for ``patience`` evaluations, and end with
the parameters of its best epoch."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from .callbacks import Callback, Run


class EarlyStopping(Callback):
    """Every ``every`` epochs, the validation cost J_val(θ(t)) of each running model (:meth:`Run.validation`): the
    lowest so far makes θ(t) the model's best, kept here; ``patience`` evaluations without a lower one stop the
    model ("early_stopping"). After training, with ``restore_best``, each model is put back to its best θ, unless a
    stop signal ended training (a resumed run goes on from where it was).

    Its state, saved in checkpoints, holds the best θ and, once they are put back, θ(epochs), from which a resumed
    run that may take more steps goes on.
    """

    every: int  # never None here

    def __init__(self, patience: int, every: int, restore_best: bool = True) -> None:
        self.patience, self.every, self.restore_best = patience, every, restore_best
        self.best: list[Tensor] | None = None  # the best epoch's θ of every model, in the trainee's layout
        self.trained: list[Tensor] | None = None  # θ(epochs), while the best θ is put back

    def on_fit_start(self, run: Run) -> None:
        parameters = run.trainee.parameters()
        if self.trained is not None:  # a resumed run: it goes on from θ(epochs), not from the best θ
            with torch.no_grad():
                torch._foreach_copy_(parameters, [t.to(p.device) for t, p in zip(self.trained, parameters)])
            self.trained = None
        if self.best is None:
            self.best = [p.detach().clone() for p in parameters]
        else:
            self.best = [b.to(p.device) for b, p in zip(self.best, parameters)]
        self.on_epoch_end(run)

    def on_epoch_end(self, run: Run) -> None:
        if run.last or run.epoch % self.every != 0:
            return
        costs, _ = run.validation()
        parameters = run.trainee.parameters()
        for k, history in enumerate(run.histories):
            if not run.running[k]:
                continue
            if history.best_epoch is None or costs[k] < history.val_costs[history.val_epochs.index(history.best_epoch)]:
                history.best_epoch = history.epochs
                for b, p in zip(cast("list[Tensor]", self.best), parameters):  # set by on_fit_start
                    run.trainee.select(b, k).copy_(run.trainee.select(p, k))
            elif len(history.val_epochs) - 1 - history.val_epochs.index(history.best_epoch) >= self.patience:
                run.stop("early_stopping", models=[k])

    def on_fit_end(self, run: Run) -> None:
        if not self.restore_best or run.interrupted or all(h.best_epoch is None for h in run.histories):
            return
        parameters = run.trainee.parameters()
        self.trained = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            for k, history in enumerate(run.histories):
                if history.best_epoch is not None:
                    for p, b in zip(parameters, cast("list[Tensor]", self.best)):  # set by on_fit_start
                        run.trainee.select(p, k).copy_(run.trainee.select(b, k))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "trained": self.trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.trained = state["best"], state["trained"]
