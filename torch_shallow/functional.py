r"""The slides' network as ``torch.autograd.Function``\ s whose backward is the slides' formulas.

Shapes follow the slides, samples stacked by rows: X (n, d), W1 (d1, d), b1 (d1,), W2 (d2, d1), b2 (d2,),
Y (n, d2). ``1`` is the all-ones n-vector, ∘ the element-wise product.

Forward::

    Z1 = b1ᵀ + X W1ᵀ        A1 = σ(Z1)               (n, d1)
    Z2 = b2ᵀ + A1 W2ᵀ       A2 = σ(Z2)               (n, d2)
    J  = -(1/n) Σ_i Σ_k { Y log A2 + (1 - Y) log(1 - A2) }_ik

Backward, from dZ2 = ∂J/∂Z2::

    db2 = dZ2ᵀ 1            dW2 = dZ2ᵀ A1
    dZ1 = dZ2 W2 ∘ σ'(Z1)   (σ'(Z1) from the saved A1, e.g. A1 ∘ (1 - A1) for the sigmoid)
    db1 = dZ1ᵀ 1            dW1 = dZ1ᵀ X             dX = dZ1 W1

For the cost, dZ2 = n⁻¹(A2 - Y). J sums over the d2 output units and averages over the n samples, which is
what makes that formula exact for d2 > 1 too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from .activations import get_activation
from .validation import check_features, check_parameters, check_targets

Gradients = tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None]


def forward_pass(X: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, activation: str) -> tuple[Tensor, Tensor]:
    """The slides' vectorised forward propagation. Returns (A1 (n, d1), Z2 (n, d2))."""
    Z1 = torch.addmm(b1, X, W1.T)  # b1ᵀ + X W1ᵀ, the bias row broadcast to every sample
    A1 = get_activation(activation).forward(Z1)
    Z2 = torch.addmm(b2, A1, W2.T)  # b2ᵀ + A1 W2ᵀ
    return A1, Z2


def cross_entropy(Z2: Tensor, Y: Tensor) -> Tensor:
    """J = -(1/n) Σ { Y log A2 + (1 - Y) log(1 - A2) } with A2 = σ(Z2), computed from the logits Z2.

    log σ(z) and log(1 - σ(z)) = log σ(-z) come from ``logsigmoid``, which stays finite where σ(z) rounds to
    0 or 1, so a saturated output unit gives a large finite cost and never log(0).
    """
    n = Z2.shape[0]
    return -(Y * F.logsigmoid(Z2) + (1 - Y) * F.logsigmoid(-Z2)).sum() / n


def backward_pass(
    dZ2: Tensor, X: Tensor, W1: Tensor, W2: Tensor, A1: Tensor, activation: str, needs: tuple[bool, ...]
) -> Gradients:
    """The slides' backward propagation from dZ2 (n, d2). Returns (dX, dW1, db1, dW2, db2).

    ``needs`` flags which of the five are wanted, in that order; the others are None and not computed.
    """
    need_dX, need_dW1, need_db1, need_dW2, need_db2 = needs
    dX = dW1 = db1 = dW2 = db2 = None
    if need_db2:
        db2 = dZ2.sum(0)  # dZ2ᵀ 1                       (d2,)
    if need_dW2:
        dW2 = dZ2.T @ A1  # dZ2ᵀ A1                      (d2, d1)
    if need_dX or need_dW1 or need_db1:
        dZ1 = (dZ2 @ W2) * get_activation(activation).derivative(A1)  # dZ2 W2 ∘ σ'(Z1)   (n, d1)
        if need_db1:
            db1 = dZ1.sum(0)  # dZ1ᵀ 1                   (d1,)
        if need_dW1:
            dW1 = dZ1.T @ X  # dZ1ᵀ X                    (d1, d)
        if need_dX:
            dX = dZ1 @ W1  # dZ1 W1                      (n, d)
    return dX, dW1, db1, dW2, db2


class ShallowNetFunction(torch.autograd.Function):
    """(X, W1, b1, W2, b2, activation) -> Z2, the logits (n, d2), with the slides' backward formulas.

    Backward takes any upstream gradient dZ2, so the network can sit inside a larger model, and returns dX
    too when X requires a gradient. It saves X, W1, W2 and A1; σ'(Z1) is recomputed from A1, so Z1 is not kept.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, X: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, activation: str) -> Tensor:
        A1, Z2 = forward_pass(X, W1, b1, W2, b2, activation)
        ctx.save_for_backward(X, W1, W2, A1)
        ctx.activation = activation
        return Z2

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, dZ2: Tensor) -> tuple[Tensor | None, ...]:
        X, W1, W2, A1 = ctx.saved_tensors
        return *backward_pass(dZ2, X, W1, W2, A1, ctx.activation, ctx.needs_input_grad[:5]), None


class ShallowBCEFunction(torch.autograd.Function):
    """(X, Y, W1, b1, W2, b2, activation) -> J, the slides' cost, a scalar.

    Backward starts from the slides' dZ2 = n⁻¹(A2 - Y), scaled by the incoming gradient of J, then applies the
    same formulas as :class:`ShallowNetFunction`. Y is data: asking for its gradient is an error.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, X: Tensor, Y: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, activation: str
    ) -> Tensor:
        if ctx.needs_input_grad[1]:
            raise ValueError("Y requires a gradient, but the labels are data and get none; pass Y.detach()")
        A1, Z2 = forward_pass(X, W1, b1, W2, b2, activation)
        ctx.save_for_backward(X, Y, W1, W2, A1, torch.sigmoid(Z2))
        ctx.activation = activation
        return cross_entropy(Z2, Y)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, dJ: Tensor) -> tuple[Tensor | None, ...]:
        X, Y, W1, W2, A1, A2 = ctx.saved_tensors
        n = X.shape[0]
        dZ2 = (A2 - Y) * (dJ / n)  # the slides' n⁻¹(A2 - Y), times the upstream ∂L/∂J   (n, d2)
        needs = ctx.needs_input_grad
        dX, dW1, db1, dW2, db2 = backward_pass(dZ2, X, W1, W2, A1, ctx.activation, needs[:1] + needs[2:6])
        return dX, None, dW1, db1, dW2, db2, None


def shallow_net(X: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, activation: str = "sigmoid") -> Tensor:
    """Logits Z2 (n, d2) of the slides' network; see :class:`ShallowNetFunction`. Checks its inputs first."""
    get_activation(activation)
    check_parameters(W1, b1, W2, b2)
    check_features(X, W1)
    return ShallowNetFunction.apply(X, W1, b1, W2, b2, activation)


def shallow_bce(
    X: Tensor, Y: Tensor, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor, activation: str = "sigmoid"
) -> Tensor:
    """The slides' cost J (a scalar); see :class:`ShallowBCEFunction`. Checks its inputs first.

    Y may be given as (n,) when d2 = 1, and as a bool or integer tensor of 0/1 labels.
    """
    get_activation(activation)
    check_parameters(W1, b1, W2, b2)
    check_features(X, W1)
    if isinstance(Y, Tensor) and Y.requires_grad:
        raise ValueError("Y requires a gradient, but the labels are data and get none; pass Y.detach()")
    Y = check_targets(Y, (X.shape[0], W2.shape[0]), like=X)
    return ShallowBCEFunction.apply(X, Y, W1, b1, W2, b2, activation)
