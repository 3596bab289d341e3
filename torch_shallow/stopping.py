"""The slides' step 4, "until convergence", model by model: each epoch's cost into the histories, and when a model
stops.

A model stops once its cost changes by less than ``tol`` between two epochs (converged), once it has taken
``max_epochs`` steps, or once its cost becomes NaN, inf or runaway (diverged), in which case it is put back to the
parameters of its last good epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from .callbacks import Run
    from .trainer import History

# The cost has diverged once it exceeds this many times max(J(θ(0)), 1). Gradient descent with a workable step
# lowers J; a step far too large throws the logits out by orders of magnitude, and J with them, where it may
# oscillate without ever becoming NaN.
DIVERGENCE_FACTOR = 100.0


def divergence_limit(history: History, cost: float) -> float:
    """DIVERGENCE_FACTOR × max(J(θ(0)), 1); ``cost`` is J(θ(0)) itself when the history holds no cost yet."""
    return DIVERGENCE_FACTOR * max(history.costs[0] if history.costs else cost, 1.0)


def diverging(history: History, cost: float) -> bool:
    """Whether ``cost`` is NaN, inf or above the history's divergence limit."""
    return not cost <= divergence_limit(history, cost)  # true for NaN too


def record_costs(run: Run, J: Tensor) -> None:
    """J(θ(t)) of each running model into its history, read in one synchronisation; a model whose J is diverging
    stops, put back to θ(t-1), whose cost was fine."""
    costs = J.tolist()  # a float for one model, a list for a stack
    costs = costs if isinstance(costs, list) else [costs]
    for k, history in enumerate(run.histories):
        if not run.running[k]:
            continue
        if not diverging(history, costs[k]):
            history.costs.append(costs[k])
        elif not history.costs:
            raise ValueError(
                f"the initial parameters give a cost of {costs[k]}; check the model's parameters for NaN or inf"
            )
        else:
            run.trainee.restore_previous(k)
            run.stop("diverged", models=[k])


def until_convergence(run: Run, tol: float) -> None:
    """After the step of epoch t: each model that took it has taken one more epoch; one whose cost changed by less
    than ``tol`` (0: never) has converged, one at ``max_epochs`` stops there."""
    stepped = False
    for k, history in enumerate(run.histories):
        if not run.running[k]:
            continue
        history.epochs += 1
        stepped = True
        if tol > 0 and len(history.costs) >= 2 and abs(history.costs[-1] - history.costs[-2]) < tol:
            run.stop("converged", models=[k])
        elif history.epochs >= run.max_epochs:
            run.stop("max_epochs", models=[k])
    if stepped:
        run.epoch += 1
