r"""The slides' network as ``torch.autograd.Function``\ s whose backward is the slides' formulas.

Shapes follow the slides, samples stacked by rows: X (n, d), W1 (d1, d), b1 (d1,), W2 (d2, d1), b2 (d2,),
Y (n, d2). ``1`` is the all-ones n-vector, ∘ the element-wise product. A bias may be None, a layer without one,
as in ``nn.Linear(bias=False)``: it adds nothing to the forward pass and gets no gradient.

Forward::

    Z1 = b1ᵀ + X W1ᵀ        A1 = σ(Z1)               (n, d1)
    Z2 = b2ᵀ + A1 W2ᵀ       A2 = σ(Z2)               (n, d2)
    J  = -(1/n) Σ_i Σ_k { Y log A2 + (1 - Y) log(1 - A2) }_ik

Backward, from dZ2 = ∂J/∂Z2::

    db2 = dZ2ᵀ 1            dW2 = dZ2ᵀ A1
    dZ1 = dZ2 W2 ∘ σ'(Z1)   (σ'(Z1) from the saved A1, e.g. A1 ∘ (1 - A1) for the sigmoid)
    db1 = dZ1ᵀ 1            dW1 = dZ1ᵀ X             dX = dZ1 W1

For the cost, dZ2 = n⁻¹(A2 - Y). J sums over the d2 output units and averages over the n samples, which is
what makes that formula exact for d2 > 1 too. It is exact for the three outputs, each its cost's canonical link
(docs/outputs.md): sigmoid units with the cross-entropy, a softmax with the categorical cross-entropy, and identity
units (A2 = Z2) with half the squared error, J = (1/2n) Σ_i Σ_k (Z2 - Y)²_ik.

The cost's Function knows dZ2 already in its forward, so it runs forward and backward formulas together, one
block of rows of X at a time, while the block's activations are still in cache: it holds block-sized
activations instead of n-sized ones, and its backward only scales the finished gradients.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from .activations import activate_, derivative
from .parallel import map_on_cores, row_ranges
from .tracing import plain_eager
from .validation import check_cost_inputs, check_labels_need_no_gradient, check_net_inputs

if TYPE_CHECKING:
    from .ondisk import NpyRows

Gradients = tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None]
Activations = str | tuple[str, ...]  # one σ, or one per model of a stack (see activations.activate_)


def affine(X: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    """bᵀ + X Wᵀ, the bias row broadcast to every sample (X Wᵀ if b is None): (n, out) from X (n, in), W (out, in),
    b (out,); or, for a stack of K models along a leading axis, (K, n, out) from W (K, out, in), b (K, out) and X
    (n, in) shared by all or (K, n, in). One fused kernel either way (``addmm``, or ``baddbmm``): with X shared, the
    K models' products are one ``addmm``, 10× faster than ``baddbmm`` over K small matrices on the planar data."""
    if W.dim() == 2:
        return F.linear(X, W, b)
    K, out, inputs = W.shape
    if X.dim() == 2:  # one X for every model: one product (n, in) @ (in, K·out), the models' units side by side
        W_side_by_side = W.reshape(K * out, inputs).T
        Z = X @ W_side_by_side if b is None else torch.addmm(b.reshape(-1), X, W_side_by_side)
        return Z.view(X.shape[0], K, out).transpose(0, 1)
    Z = torch.bmm(X, W.mT)
    return Z if b is None else Z.add_(b.unsqueeze(-2))  # 4.7× faster than baddbmm for the planar stack's layer 2


def hidden_layer(X: Tensor, W1: Tensor, b1: Tensor | None, activation: Activations) -> Tensor:
    """A1 = σ(Z1), Z1 = b1ᵀ + X W1ᵀ (n, d1)."""
    return activate_(affine(X, W1, b1), activation)


def forward_pass(
    X: Tensor, W1: Tensor, b1: Tensor | None, W2: Tensor, b2: Tensor | None, activation: Activations
) -> tuple[Tensor, Tensor]:
    """The slides' vectorised forward propagation. Returns (A1 (n, d1), Z2 (n, d2)), with a leading model axis
    for a stack of models."""
    A1 = hidden_layer(X, W1, b1, activation)
    Z2 = affine(A1, W2, b2)  # b2ᵀ + A1 W2ᵀ
    return A1, Z2


# The output units: independent binary labels (the slides), one of K classes, or real numbers (regression).
OUTPUTS = ("sigmoid", "softmax", "identity")


def probabilities(Z2: Tensor, output: str = "sigmoid") -> Tensor:
    """A2 from the logits Z2 (n, d2): σ(Z2) for the slides' sigmoid units, softmax(Z2) over each row, or Z2 itself
    for identity outputs (then not probabilities but the predicted values)."""
    if output == "identity":
        return Z2
    return torch.sigmoid(Z2) if output == "sigmoid" else torch.softmax(Z2, dim=-1)


def cost_from_logits(Z2: Tensor, Y: Tensor, n: int, output: str = "sigmoid") -> Tensor:
    """J from the logits Z2: J = -(1/n) Σ { Y log A2 + (1 - Y) log(1 - A2) } with A2 = σ(Z2); with softmax outputs,
    J = -(1/n) Σ_i Σ_k Y_ik log A2_ik; with identity outputs, J = (1/2n) Σ_i Σ_k (Z2 - Y)²_ik, half the mean squared
    error as scikit-learn's ``MLPRegressor`` has it (for d2 = 1; its loss also averages over outputs, its gradient
    does not).

    With log σ(z) = z - log(1 + eᶻ) and log(1 - σ(z)) = -log(1 + eᶻ), each term is log(1 + eᶻ) - y z, and
    ``softplus`` evaluates log(1 + eᶻ) without overflow or log(0): a saturated output unit gives a large, finite
    cost. With softmax, -log A2_ik = logsumexp(Z2_i) - Z2_ik, which ``logsumexp`` evaluates as stably. Z2 and Y may
    be a block of the n rows; the block's share of J is still divided by the full n. For a stack of models (a
    leading axis on Z2) J has one entry per model. For float16 and bfloat16 the sum runs, and J is returned, in
    float32, as autocast does for losses: a sum of n costs overflows float16 long before J does.
    """
    if output == "sigmoid":
        terms = F.softplus(Z2) - Y * Z2
    elif output == "softmax":
        terms = Y * (torch.logsumexp(Z2, dim=-1, keepdim=True) - Z2)
    else:
        terms = (Z2 - Y).square() / 2
    return terms.sum(dim=(-2, -1), dtype=torch.promote_types(Z2.dtype, torch.float32)) / n


def right_answers(Z2: Tensor, Y: Tensor, output: str = "sigmoid") -> Tensor:
    """How many labels the logits predict: sigmoid units, each unit with A2 > 0.5 (Z2 > 0) against Y > 0.5;
    softmax, each row's argmax against Y's. One count per model of a stack. Identity outputs predict real numbers,
    not labels: their count is NaN, and so is any accuracy made from it (:func:`r_squared` measures their fit)."""
    if output == "sigmoid":
        return ((Z2 > 0) == (Y > 0.5)).sum(dim=(-2, -1))
    if output == "softmax":
        return (Z2.argmax(-1) == Y.argmax(-1)).sum(-1)
    return torch.full(Z2.shape[:-2], math.nan, dtype=torch.promote_types(Z2.dtype, torch.float32), device=Z2.device)


def r_squared(Z2: Tensor, Y: Tensor) -> Tensor:
    """R², the coefficient of determination of identity outputs Z2 (n, d2) for targets Y (n, d2), averaged over the
    d2 outputs: the mean over k of 1 - Σ_i (Y - Z2)²_ik / Σ_i (Y_ik - Ȳ_k)², as scikit-learn's ``r2_score`` with
    ``multioutput="uniform_average"``, also for a constant target column (1 if predicted exactly, else 0). A
    leading model axis on Z2 gives one R² per model. Computed in float64 at least: it subtracts nearly equal sums."""
    dtype = torch.promote_types(Z2.dtype, torch.float64)
    Z2, Y = Z2.to(dtype), Y.to(dtype)
    residual = (Y - Z2).square().sum(-2)  # (..., d2)
    total = (Y - Y.mean(-2, keepdim=True)).square().sum(-2).expand_as(residual)
    score = torch.where(total > 0, 1 - residual / total.clamp_min(torch.finfo(dtype).tiny), (residual == 0).to(dtype))
    return score.mean(-1)


def output_jacobians(W2: Tensor, A1: Tensor, activation: Activations) -> tuple[Tensor, Tensor]:
    """The derivatives of each sample's logits Z2_ik with respect to the parameters, from the forward pass's A1,
    as the factors that make them up (the n·d2 rows of the full Jacobian are never formed)::

        ∂Z2_ik/∂W2_lj = δ_kl A1_ij        ∂Z2_ik/∂b2_l = δ_kl
        ∂Z2_ik/∂b1_j = W2_kj σ'(Z1)_ij    ∂Z2_ik/∂W1_jm = W2_kj σ'(Z1)_ij X_im

    Returns (A1 (n, d1), G (n, d2, d1) with G_ikj = W2_kj σ'(Z1)_ij = ∂Z2_ik/∂b1_j); ∂Z2/∂W1 is G ⊗ x. The backward
    pass's dZ1 = dZ2 W2 ∘ σ'(Z1) is the same Jacobian contracted with dZ2: dZ1_ij = Σ_k dZ2_ik G_ikj. A leading model
    axis on W2 (K, d2, d1) and A1 (K, n, d1) carries through.
    """
    G = W2.unsqueeze(-3) * derivative(A1, activation).unsqueeze(-2)  # (n, d2, d1)
    return A1, G


class Wanted(NamedTuple):
    """Which gradients a backward pass computes, by name; the others are None and not computed."""

    dX: bool = False
    dW1: bool = False
    db1: bool = False
    dW2: bool = False
    db2: bool = False


NO_GRADIENTS = Wanted()
PARAMETER_GRADIENTS = Wanted(dW1=True, db1=True, dW2=True, db2=True)


def backward_pass(
    dZ2: Tensor, X: Tensor, W1: Tensor, W2: Tensor, A1: Tensor, activation: Activations, wanted: Wanted
) -> Gradients:
    """The slides' backward propagation from dZ2 (n, d2). Returns (dX, dW1, db1, dW2, db2), those not ``wanted``
    None."""
    dX = dW1 = db1 = dW2 = db2 = None
    if wanted.db2:
        db2 = dZ2.sum(-2)  # dZ2ᵀ 1                      (d2,)
    if wanted.dW2:
        dW2 = dZ2.mT @ A1  # dZ2ᵀ A1                     (d2, d1)
    if wanted.dX or wanted.dW1 or wanted.db1:
        # σ'(Z1) first: the product takes its memory layout, A1's, which for a stack sharing X is (n, K·d1), the
        # models' units side by side, so that dW1 below is one product for all of them. Not in place: under vmap
        # dZ2 may be batched where A1 is not.
        dZ1 = derivative(A1, activation) * (dZ2 @ W2)  # σ'(Z1) ∘ dZ2 W2   (n, d1)
        if wanted.db1:
            db1 = dZ1.sum(-2)  # dZ1ᵀ 1                  (d1,)
        if wanted.dW1:
            dW1 = dZ1.mT @ X  # dZ1ᵀ X                   (d1, d)
        if wanted.dX:
            dX = dZ1 @ W1  # dZ1 W1                      (n, d)
    return dX, dW1, db1, dW2, db2


def forward_tangent(
    X: Tensor,
    W1: Tensor,
    W2: Tensor,
    A1: Tensor,
    activation: str,
    X_dot: Tensor | None,
    W1_dot: Tensor | None,
    b1_dot: Tensor | None,
    W2_dot: Tensor | None,
    b2_dot: Tensor | None,
) -> Tensor:
    """Ż2, the forward-mode derivative of Z2 along the tangents (Ẋ, Ẇ1, ḃ1, Ẇ2, ḃ2) (None for zero), by the
    product rule on the forward pass::

        Ż1 = ḃ1ᵀ + Ẋ W1ᵀ + X Ẇ1ᵀ     Ȧ1 = σ'(Z1) ∘ Ż1     Ż2 = ḃ2ᵀ + Ȧ1 W2ᵀ + A1 Ẇ2ᵀ
    """
    terms = [X_dot @ W1.mT if X_dot is not None else None, X @ W1_dot.mT if W1_dot is not None else None, b1_dot]
    Z1_dot = functools.reduce(torch.add, [t for t in terms if t is not None], torch.zeros_like(A1))  # (n, d1)
    A1_dot = derivative(A1, activation) * Z1_dot  # σ'(Z1) ∘ Ż1
    Z2_dot = A1_dot @ W2.mT  # Ȧ1 W2ᵀ                                                                (n, d2)
    if W2_dot is not None:
        Z2_dot = Z2_dot + A1 @ W2_dot.mT
    return Z2_dot if b2_dot is None else Z2_dot + b2_dot


class ShallowNetFunction(torch.autograd.Function):
    """(X, W1, b1, W2, b2, activation="sigmoid") -> (Z2, A1): the logits (n, d2) with the slides' backward formulas,
    and the hidden activations (n, d1) that backward needs, returned as PyTorch's guide to ``setup_context``
    recommends for such intermediates and not differentiable; :func:`shallow_net` returns Z2 alone.

    Backward takes any upstream gradient dZ2, so the network can sit inside a larger model, and returns dX
    too when X requires a gradient. Of the activations it keeps A1 alone; σ'(Z1) is recomputed from A1, so Z1
    is not kept. Under ``create_graph=True`` and under ``torch.func`` transforms, backward recomputes A1 from X, W1,
    b1 with tracked operations, so that the same formulas are differentiable again (Hessian-vector products,
    ``gradgradcheck``). ``jvp`` gives forward-mode derivatives (:func:`forward_tangent`, for ``torch.func.jvp``
    and ``jacfwd``); ``vmap`` batches the same formulas (``generate_vmap_rule``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        X: Tensor, W1: Tensor, b1: Tensor | None, W2: Tensor, b2: Tensor | None, activation: str = "sigmoid"
    ) -> tuple[Tensor, Tensor]:
        A1, Z2 = forward_pass(X, W1, b1, W2, b2, activation)
        return Z2, A1

    if TYPE_CHECKING:  # torch leaves apply unannotated; it returns what forward returns

        @classmethod
        def apply(cls, *args: Any) -> tuple[Tensor, Tensor]: ...

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
        X, W1, b1, W2, _, *activation = inputs
        _, A1 = output
        ctx.activation = activation[0] if activation else "sigmoid"
        ctx.mark_non_differentiable(A1)
        ctx.save_for_backward(X, W1, b1, W2, A1)
        ctx.save_for_forward(X, W1, W2, A1)

    @staticmethod
    def backward(ctx: Any, dZ2: Tensor, _: Tensor | None) -> tuple[Tensor | None, ...]:
        X, W1, b1, W2, A1 = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True or a transform: the saved A1 would be a constant to autograd
            A1 = hidden_layer(X, W1, b1, ctx.activation)
        return *backward_pass(dZ2, X, W1, W2, A1, ctx.activation, Wanted(*ctx.needs_input_grad[:5])), None

    @staticmethod
    def jvp(
        ctx: Any,
        X_dot: Tensor | None,
        W1_dot: Tensor | None,
        b1_dot: Tensor | None,
        W2_dot: Tensor | None,
        b2_dot: Tensor | None,
        *_: None,
    ) -> tuple[Tensor, None]:
        X, W1, W2, A1 = ctx.saved_tensors
        return forward_tangent(X, W1, W2, A1, ctx.activation, X_dot, W1_dot, b1_dot, W2_dot, b2_dot), None


def auto_block_rows(W1: Tensor) -> int:
    """Rows per block of the cost's pass: about 1 MiB per (block, d1) activation matrix (all K models' units,
    K·d1, for a stack), which keeps the handful of such matrices a block needs within a core's L2 cache, and at
    least 256 rows, so that each matrix product stays large enough to run at full speed."""
    return max(256, (1 << 20) // (math.prod(W1.shape[:-1]) * W1.element_size()))


class RowPass(NamedTuple):
    """What one pass over the rows gives."""

    J: Tensor  # the cost, a scalar, or (K,) for a stack of K models
    gradients: Gradients  # (dX, dW1, db1, dW2, db2), None where not asked for
    right: Tensor | None  # labels predicted right (see right_answers), if asked for


def cost_and_gradients(
    X: Tensor,
    Y: Tensor,
    W1: Tensor,
    b1: Tensor | None,
    W2: Tensor,
    b2: Tensor | None,
    activation: Activations,
    wanted: Wanted = NO_GRADIENTS,
    block_rows: int | None = None,
    n: int | None = None,
    output: str = "sigmoid",
    count_right: bool = False,
) -> RowPass:
    """J and the ``wanted`` gradients (dX, dW1, db1, dW2, db2), in one pass over blocks of rows.

    Each block runs the forward pass, adds its share of J, and, when any gradient is needed, takes the slides'
    dZ2 = n⁻¹(A2 - Y) for its rows through :func:`backward_pass` (for softmax and identity outputs too: the
    derivative of their cost with respect to Z2 has the same form). An absent bias (None) gets no gradient. dW1,
    db1, dW2, db2 are sums over samples, so the blocks' parts add up; dX is per sample, so the blocks' rows are
    stacked. ``count_right`` also counts the
    labels predicted right, from the same logits. ``block_rows=None`` picks :func:`auto_block_rows`. No autograd
    graph is built: call it under ``torch.no_grad``, or through :class:`ShallowBCEFunction`.

    The parameters may carry a leading axis of K models (W1 (K, d1, d), ...; ``activation`` one name or one per
    model), all trained on the same X: J and the counts then have one entry per model, the gradients that axis.
    X and Y are tensors, or anything with ``shape`` and row slicing such as
    :class:`~torch_shallow.ondisk.NpyRows`. ``n`` is the number of samples J averages over, X's rows by default;
    a rank of a distributed run passes the global n, so that the ranks' results add up to the full-batch ones.
    """
    n = X.shape[0] if n is None else n
    wanted = Wanted(*(w and t is not None for w, t in zip(wanted, (X, W1, b1, W2, b2))))  # no bias, no gradient
    if torch.compiler.is_compiling():
        # One block: the compiler fuses on its own, and a Python loop over blocks would be unrolled in the graph.
        block_rows = X.shape[0]
    elif block_rows is None:
        block_rows = auto_block_rows(W1)

    def pass_over(start: int, stop: int) -> RowPass:
        J: Tensor | None = None
        right: Tensor | None = None
        sums: tuple[Tensor | None, ...] = (None,) * 4
        dX_blocks: list[Tensor] = []
        for X_rows, Y_rows in row_blocks(X, Y, block_rows, start, stop):
            A1, Z2 = forward_pass(X_rows, W1, b1, W2, b2, activation)
            J = _add(J, cost_from_logits(Z2, Y_rows, n, output))
            if count_right:
                right = _add(right, right_answers(Z2, Y_rows, output))
            if any(wanted):
                dZ2 = (probabilities(Z2, output) - Y_rows) / n  # the slides' n⁻¹(A2 - Y), for this block's rows
                dX_rows, *parts = backward_pass(dZ2, X_rows, W1, W2, A1, activation, wanted)
                sums = tuple(_add(total, part) for total, part in zip(sums, parts))
                if dX_rows is not None:  # computed exactly when wanted.dX
                    dX_blocks.append(dX_rows)
        gradients = cast(Gradients, (_stack(dX_blocks) if wanted.dX else None, *sums))
        return RowPass(cast(Tensor, J), gradients, right)  # J is set: a range holds one block at least

    # Each core passes over its own range of blocks (see parallel.py); the ranges' results combine as the blocks' do.
    ranges = map_on_cores(pass_over, row_ranges(X, block_rows))
    if len(ranges) == 1:
        return ranges[0]
    Js: list[Tensor | None] = [part.J for part in ranges]
    J = functools.reduce(_add, Js)
    right = functools.reduce(_add, [part.right for part in ranges]) if count_right else None
    dX = _stack([cast(Tensor, part.gradients[0]) for part in ranges]) if wanted.dX else None  # set where needed
    sums = [functools.reduce(_add, column) for column in zip(*[part.gradients[1:] for part in ranges])]
    return RowPass(cast(Tensor, J), cast(Gradients, (dX, *sums)), right)


def _stack(rows: list[Tensor]) -> Tensor:
    return rows[0] if len(rows) == 1 else torch.cat(rows)


def row_blocks(
    X: Tensor | NpyRows, Y: Tensor | NpyRows, block_rows: int, start: int = 0, stop: int | None = None
) -> Iterable[tuple[Tensor, Tensor]]:
    """(X_rows, Y_rows) for consecutive blocks of ``block_rows`` rows from ``start`` to ``stop`` (X's end by
    default), the last one shorter if need be."""
    stop = X.shape[0] if stop is None else stop
    if isinstance(X, Tensor) and start == 0 and stop == X.shape[0] <= block_rows:
        return [(X, cast(Tensor, Y))]  # no slicing: on small data every call counts (Y: a tensor beside a tensor X)
    return (
        (X[a : min(a + block_rows, stop)], Y[a : min(a + block_rows, stop)]) for a in range(start, stop, block_rows)
    )


def _add(total: Tensor | None, part: Tensor | None) -> Tensor | None:
    """total + part, in place into the first block's freshly made result; None while there is nothing to add."""
    return part if total is None else total.add_(cast(Tensor, part))  # a part wherever there is a total


class ShallowBCEFunction(torch.autograd.Function):
    """(X, Y, W1, b1, W2, b2, activation="sigmoid", block_rows=None, wanted=Wanted(), output="sigmoid")
    -> (J, dX, dW1, db1, dW2, db2).

    J is the slides' cost, a scalar (the categorical cross-entropy for ``output="softmax"``, half the mean squared
    error for ``output="identity"``). Forward computes it,
    and the ``wanted`` gradients (:class:`Wanted`: dX, dW1, db1, dW2, db2; None for the others), in one pass
    over blocks of ``block_rows`` rows (:func:`cost_and_gradients`; None picks :func:`auto_block_rows`), and returns
    them beside J, not differentiable: :func:`shallow_bce` asks for those of the inputs that require a gradient and
    returns J alone.
    Backward scales them by the incoming ∂L/∂J, which is the chain rule for dZ2 = n⁻¹(A2 - Y) ∂L/∂J. Where they were
    not computed ahead, or under ``create_graph=True``, backward runs the pass on the saved inputs with tracked
    operations, so that the gradients are differentiable (Hessian-vector products, ``gradgradcheck``); so it does
    under ``torch.func`` transforms, where none is wanted. ``jvp`` gives J̇ = Σ ⟨∇J, θ̇⟩ from the same pass,
    and ``vmap`` batches the same formulas (``generate_vmap_rule``). Y is data: asking for its gradient is an error.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        X: Tensor,
        Y: Tensor,
        W1: Tensor,
        b1: Tensor | None,
        W2: Tensor,
        b2: Tensor | None,
        activation: str = "sigmoid",
        block_rows: int | None = None,
        wanted: Wanted = NO_GRADIENTS,
        output: str = "sigmoid",
    ) -> tuple[Tensor | None, ...]:
        J, gradients, _ = cost_and_gradients(X, Y, W1, b1, W2, b2, activation, wanted, block_rows, output=output)
        return J, *gradients

    if TYPE_CHECKING:  # torch leaves apply unannotated; it returns what forward returns

        @classmethod
        def apply(cls, *args: Any) -> tuple[Tensor | None, ...]: ...

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor | None, ...]) -> None:
        check_labels_need_no_gradient(ctx.needs_input_grad[1])  # also when apply is called directly
        X, Y, W1, b1, W2, b2, *options = inputs
        defaults: tuple[Any, ...] = ("sigmoid", None, NO_GRADIENTS, "sigmoid")  # apply may leave these options out
        ctx.activation, ctx.block_rows, ctx.computed, ctx.output = (*options, *defaults[len(options) :])
        gradients = output[1:]
        ctx.mark_non_differentiable(*(g for g in gradients if g is not None))
        ctx.save_for_backward(X, Y, W1, b1, W2, b2, *gradients)  # the inputs are references, not copies
        ctx.save_for_forward(X, Y, W1, b1, W2, b2)

    @staticmethod
    def backward(ctx: Any, dJ: Tensor, *_: Tensor | None) -> tuple[Tensor | None, ...]:
        X, Y, W1, b1, W2, b2, *gradients = ctx.saved_tensors
        wanted = Wanted(*ctx.needs_input_grad[:1], *ctx.needs_input_grad[2:6])
        if torch.is_grad_enabled() or any(w and not c for w, c in zip(wanted, ctx.computed)):
            gradients = cost_and_gradients(
                X, Y, W1, b1, W2, b2, ctx.activation, wanted, ctx.block_rows, output=ctx.output
            ).gradients
        dX, dW1, db1, dW2, db2 = (None if g is None else g * dJ for g in gradients)
        return dX, None, dW1, db1, dW2, db2, None, None, None, None

    @staticmethod
    def jvp(
        ctx: Any, X_dot: Tensor | None, Y_dot: Tensor | None, *tangents: Tensor | None
    ) -> tuple[Tensor | int | None, ...]:
        X, Y, W1, b1, W2, b2 = ctx.saved_tensors
        dots = (X_dot, *tangents[:4])  # (Ẋ, Ẇ1, ḃ1, Ẇ2, ḃ2)
        gradients = cost_and_gradients(
            X,
            Y,
            W1,
            b1,
            W2,
            b2,
            ctx.activation,
            Wanted(*(t is not None for t in dots)),
            ctx.block_rows,
            output=ctx.output,
        ).gradients
        J_dot = sum((cast(Tensor, g) * t).sum() for g, t in zip(gradients, dots) if t is not None)  # g asked for
        return J_dot, None, None, None, None, None


# Dynamo refuses to trace an autograd.Function with a custom jvp (a graph break, an error under fullgraph=True), and a
# compiled graph needs none: under torch.compile the wrappers below apply these variants without forward mode.
class _CompiledShallowNet(ShallowNetFunction):
    jvp = cast(Any, staticmethod(torch.autograd.Function.jvp))  # the base's, which has no signature of ours


class _CompiledShallowBCE(ShallowBCEFunction):
    jvp = cast(Any, staticmethod(torch.autograd.Function.jvp))  # the base's, which has no signature of ours


_NetTensors = tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor | None]  # (X, W1, b1, W2, b2)


def _autocast(
    X: Tensor, W1: Tensor, b1: Tensor | None, W2: Tensor, b2: Tensor | None
) -> tuple[_NetTensors, contextlib.AbstractContextManager[object]]:
    """Under ``torch.autocast``, the tensors cast as autocast casts a matrix product's inputs (float32 to the
    autocast dtype; float64 stays), and a context that turns autocast off for the Function, which then runs in one
    dtype; elsewhere the tensors as they are. (``torch.amp.custom_fwd`` does the same, but for a ``forward``
    method of one device type.)"""
    tensors = (X, W1, b1, W2, b2)
    device_type = next((t.device.type for t in tensors[1:] if isinstance(t, Tensor)), None)  # the parameters'
    if device_type is None or not torch.is_autocast_enabled(device_type):
        return tensors, contextlib.nullcontext()
    dtype = torch.get_autocast_dtype(device_type)
    cast_tensors = tuple(
        t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.float64 else t
        for t in tensors
    )
    return cast(_NetTensors, cast_tensors), torch.autocast(device_type, enabled=False)


def shallow_net(
    X: Tensor, W1: Tensor, b1: Tensor | None, W2: Tensor, b2: Tensor | None, activation: str = "sigmoid"
) -> Tensor:
    """Logits Z2 (n, d2) of the slides' network; see :class:`ShallowNetFunction`. Checks its inputs first.

    Under ``torch.autocast`` it runs as ``Linear → σ → Linear`` does: in the autocast dtype, with gradients
    returned to the inputs in their own dtypes.
    """
    (X, W1, b1, W2, b2), autocast = _autocast(X, W1, b1, W2, b2)
    check_net_inputs(X, W1, b1, W2, b2, activation)
    with autocast:
        function = _CompiledShallowNet if torch.compiler.is_compiling() else ShallowNetFunction
        return function.apply(X, W1, b1, W2, b2, activation)[0]


def shallow_bce(
    X: Tensor,
    Y: Tensor,
    W1: Tensor,
    b1: Tensor | None,
    W2: Tensor,
    b2: Tensor | None,
    activation: str = "sigmoid",
    *,
    output: str = "sigmoid",
    block_rows: int | None = None,
    check_inputs: bool = True,
) -> Tensor:
    """The slides' cost J (a scalar); see :class:`ShallowBCEFunction`. With ``output="softmax"``, the categorical
    cross-entropy of K classes, Y one-hot or class probabilities (n, K); with ``output="identity"``, half the mean
    squared error (1/2n) Σ_i Σ_k (Z2 - Y)²_ik, Y any finite reals (n, d2).

    Y may be given as (n,) when d2 = 1, and as a bool or integer tensor of 0/1 labels. ``block_rows`` sets the
    rows per block of the pass; None chooses it from d1 (:func:`auto_block_rows`). ``check_inputs=False``
    skips the checks of X and Y, for a loop that checked them once already (``fit``) and passes Y as (n, d2) in
    X's dtype; the checks read the data, which costs as much as the rest of a step on small data. Under
    ``torch.autocast`` the products run in the autocast dtype and J is accumulated and returned in float32.
    """
    (X, W1, b1, W2, b2), autocast = _autocast(X, W1, b1, W2, b2)
    if check_inputs:
        Y = check_cost_inputs(X, Y, W1, b1, W2, b2, activation, block_rows, output)
    # In plain eager mode the pass computes the wanted gradients beside J; traced or transformed, backward does.
    wanted = Wanted(
        *(plain_eager() and torch.is_grad_enabled() and t is not None and t.requires_grad for t in (X, W1, b1, W2, b2))
    )
    with autocast:
        function = _CompiledShallowBCE if torch.compiler.is_compiling() else ShallowBCEFunction
        return cast(Tensor, function.apply(X, Y, W1, b1, W2, b2, activation, block_rows, wanted, output)[0])  # J
