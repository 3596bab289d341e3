"""Hidden-layer activations σ, each with its derivative written in terms of its output A1 = σ(Z1).

Writing σ'(Z1) as a function of A1 is what lets the backward pass keep A1 alone and drop Z1
(the slides: σ'(Z1) = A1 ∘ (1 - A1) for the sigmoid).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor


class Activation(NamedTuple):
    forward: Callable[[Tensor], Tensor]
    """A1 = σ(Z1), element-wise."""
    derivative: Callable[[Tensor], Tensor]
    """σ'(Z1) computed from A1 = σ(Z1), element-wise."""


def _sigmoid_derivative(A1: Tensor) -> Tensor:
    return (1 - A1).mul_(A1)  # the slides: σ'(z) = σ(z)(1 - σ(z)), in one new tensor


def _tanh_derivative(A1: Tensor) -> Tensor:
    return A1.square().neg_().add_(1)  # tanh'(z) = 1 - tanh(z)², in one new tensor


def _relu_derivative(A1: Tensor) -> Tensor:
    return (A1 > 0).to(A1.dtype)  # relu(z) > 0 exactly where z > 0; the subgradient at 0 is taken as 0


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(torch.sigmoid_, _sigmoid_derivative),  # the slides' choice
    "tanh": Activation(torch.tanh_, _tanh_derivative),  # the deeplearning.ai course's choice for this model
    "relu": Activation(torch.relu_, _relu_derivative),
}
"""The hidden-layer activations by name, as ``ShallowNet(..., activation=name)`` and ``--activation`` take them.

Each is an :class:`Activation`, σ applied in place and σ'(Z1) computed from A1 = σ(Z1): for sigmoid A1 ∘ (1 - A1),
for tanh 1 - A1², for relu 1 where A1 > 0 and 0 elsewhere.

:meta hide-value:
"""


def get_activation(name: str) -> Activation:
    """Look an activation up by name, with an error that lists the choices."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


# A stack of models along a leading axis may mix activations: ``activation`` is then a tuple with one name
# per model, applied to each run of equal names along that axis as one operation.


def activate_(Z1: Tensor, activation: str | tuple[str, ...]) -> Tensor:
    """A1 = σ(Z1), in place; Z1 (n, d1), or (K, n, d1) for K models with one name each in ``activation``."""
    if isinstance(activation, str):
        return get_activation(activation).forward(Z1)
    if torch.is_grad_enabled() and Z1.requires_grad:
        # Tracked (a Hessian-vector product differentiates the pass): each run's σ in place on its own slice would
        # change the version of the whole Z1, whose other runs' backward needs them as they were.
        return torch.cat([get_activation(name).forward(Z1[models].clone()) for name, models in _runs(activation)])
    for name, models in _runs(activation):
        get_activation(name).forward(Z1[models])
    return Z1


def derivative(A1: Tensor, activation: str | tuple[str, ...]) -> Tensor:
    """σ'(Z1) from A1 = σ(Z1), in a new tensor with A1's memory layout; shapes as in :func:`activate_`."""
    if isinstance(activation, str):
        return get_activation(activation).derivative(A1)
    out = torch.empty_like(A1)
    for name, models in _runs(activation):
        out[models] = get_activation(name).derivative(A1[models])
    return out


def _runs(activation: str | tuple[str, ...]) -> list[tuple[str, slice]]:
    """(name, slice of the model axis) for each run of equal names in ``activation``."""
    runs, start = [], 0
    for k in range(1, len(activation) + 1):
        if k == len(activation) or activation[k] != activation[start]:
            runs.append((activation[start], slice(start, k)))
            start = k
    return runs
