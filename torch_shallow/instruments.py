"""Callbacks that watch the training dynamics (:mod:`~torch_shallow.dynamics`) while ``fit`` or ``fit_many`` train:
the sharpness against 2/α, and how far the weights and the tangent kernel move from where they started.

Each logs through ``run.log``, one dict per model, into TensorBoard and into ``History.metrics``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from .callbacks import Callback, Run
from .dynamics import ntk, sharpness

# TensorBoard's custom-scalars layout: the sharpness and 2/α in one chart, where the edge of stability shows as the
# one curve meeting the other.
LAYOUT = {"dynamics": {"sharpness and 2/lr": ["Multiline", ["dynamics/sharpness", "dynamics/2_over_lr"]]}}


class Sharpness(Callback):
    """Logs the ``top`` largest eigenvalues of ∇²J(θ) on the training data, ``dynamics/sharpness`` (then
    ``dynamics/sharpness_2``, ...), and 2/α, ``dynamics/2_over_lr``, every ``every`` epochs and at the start.

    Gradient descent with step α is stable along an eigenvector of the Hessian while its eigenvalue is below 2/α
    (on a quadratic, exactly); Cohen et al. (ICLR 2021) found the sharpness rising to 2/α and then hovering there.
    All models of a stack are measured together (:func:`~torch_shallow.dynamics.sharpness`).
    """

    def __init__(self, every: int = 100, top: int = 1) -> None:
        for name, value in (("every", every), ("top", top)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.every, self.top = every, top

    def on_fit_start(self, run: Run) -> None:
        if run.epoch == 0 and run.writers:
            from .board import write_layout

            write_layout(run.writers, LAYOUT)
        self._measure(run)

    def on_epoch_end(self, run: Run) -> None:
        self._measure(run)

    def _measure(self, run: Run) -> None:
        top = sharpness(run.models, run.X, run.Y, k=self.top, check_inputs=False).tolist()  # (K, top)
        scalars = []
        for eigenvalues, lr in zip(top, run.learning_rates):
            values = {"dynamics/sharpness": eigenvalues[0], "dynamics/2_over_lr": 2 / lr}
            values.update({f"dynamics/sharpness_{i + 1}": v for i, v in enumerate(eigenvalues[1:], start=1)})
            scalars.append(values)
        run.log(scalars)


class KernelDrift(Callback):
    """Logs how far training has moved each model from θ_0, where it started, every ``every`` epochs:

    - ``dynamics/weight_change``: ‖θ_t - θ_0‖ / ‖θ_0‖;
    - ``dynamics/kernel_change``: ‖Θ_t - Θ_0‖_F / ‖Θ_0‖_F, the tangent kernel on the training data;
    - ``dynamics/kernel_alignment``: yᵀ Θ_t y / (‖Θ_t‖_F ‖y‖²), Y flattened to y (Cristianini et al.'s alignment
      of the kernel with the labels' y yᵀ, up to its normalisation).

    In the lazy regime (Chizat, Oyallon & Bach, NeurIPS 2019) Θ stays at Θ_0 and the network trains as its
    linearisation; in the rich one the kernel changes and aligns with the labels. θ_0 and Θ_0 are taken at the first
    ``on_fit_start`` and kept in ``state_dict``, so that a resumed run still compares with them. Θ on the training data
    holds (n·d2)² numbers per model: for small data. In a distributed run each rank sees its own rows only.
    """

    def __init__(self, every: int = 100) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every = every
        self.theta_0: list[Tensor] | None = None  # each model's θ_0, flattened
        self.kernel_0: list[Tensor] | None = None  # each model's Θ_0 on the training data

    def on_fit_start(self, run: Run) -> None:
        if not isinstance(run.X, Tensor):
            raise TypeError(f"KernelDrift needs the training data in memory as a tensor, got {type(run.X).__name__}")
        if self.theta_0 is None:
            self.theta_0 = [_flat_parameters(m) for m in run.models]
            self.kernel_0 = list(ntk(run.models, run.X, check_inputs=False))
        self._measure(run)

    def on_epoch_end(self, run: Run) -> None:
        self._measure(run)

    def state_dict(self) -> dict[str, Any]:
        return {"theta_0": self.theta_0, "kernel_0": self.kernel_0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.theta_0, self.kernel_0 = state["theta_0"], state["kernel_0"]

    def _measure(self, run: Run) -> None:
        kernels = ntk(run.models, run.X, check_inputs=False)
        y = run.Y.reshape(-1)
        scalars = []
        firsts = cast("tuple[list[Tensor], list[Tensor]]", (self.theta_0, self.kernel_0))  # set at the fit's start
        for model, theta_0, kernel_0, kernel in zip(run.models, *firsts, kernels):
            theta_0, kernel_0 = theta_0.to(kernel), kernel_0.to(kernel)
            K = kernel.reshape(y.numel(), y.numel())
            scalars.append(
                {
                    "dynamics/weight_change": ((_flat_parameters(model) - theta_0).norm() / theta_0.norm()).item(),
                    "dynamics/kernel_change": ((kernel - kernel_0).norm() / kernel_0.norm()).item(),
                    "dynamics/kernel_alignment": (y @ K @ y / (K.norm() * y.dot(y))).item(),
                }
            )
        run.log(scalars)


def _flat_parameters(model: torch.nn.Module) -> Tensor:
    """θ flattened in the order W1, b1, W2, b2 (the biases a model has), detached."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])
