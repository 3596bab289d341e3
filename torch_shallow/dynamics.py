r"""Instruments for training dynamics: the Hessian of J, its largest eigenvalues (the sharpness), and the empirical
neural tangent kernel (NTK), for one model or a list of them (a stack trained by ``fit_many``) at once.

θ is a model's parameters (all of them, ``requires_grad`` or not) flattened in the order W1, b1, W2, b2 (row-major;
an absent bias skipped), P of them. The Hessian ∇²J(θ) is (P, P); gradient descent with step α is stable along an
eigenvector of the Hessian only while its eigenvalue stays below 2/α, which is why the largest, the *sharpness*, is
worth watching (Cohen et al., "Gradient descent on neural networks typically occurs at the edge of stability",
ICLR 2021). The NTK is

    Θ(x, x')_kl = Σ_p ∂Z2_k(x)/∂θ_p ∂Z2_l(x')/∂θ_p

(Jacot, Gabriel & Hongler, NeurIPS 2018): under gradient flow the logits move as dZ2(x)/dt = -Σ_x' Θ(x, x') ∂J/∂Z2(x').

A list of models runs as one stack: parameters padded to the largest hidden size along a leading model axis, and
every operation batched over it, as in :mod:`~torch_shallow.stack`. A padded unit has zero weights in and out, and an
absent bias is zero, so J of the stack is each model's; a mask over θ keeps the padded units and absent biases out of
every vector (the Lanczos basis, the Hessian's rows), so they add no eigenvalues.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from .functional import PARAMETER_GRADIENTS, cost_and_gradients, hidden_layer, output_jacobians
from .module import ShallowNet
from .parallel import threads_for_training
from .validation import check_features, check_targets

PARAMETERS = ("W1", "b1", "W2", "b2")


class Stack(NamedTuple):
    """K models' parameters padded and stacked along a leading axis, and which entries are the models' own."""

    parameters: list[Tensor]  # W1 (K, d1max, d), b1 (K, d1max), W2 (K, d2, d1max), b2 (K, d2); zeros where absent
    mask: Tensor  # (K, P) 1 at the entries of θ that are model k's own, in the flattened order W1, b1, W2, b2
    activation: str | tuple[str, ...]  # one σ, or one per model
    output: str
    units: Tensor  # (K, d1max) 1 at each model's own hidden units
    biases: Tensor  # (K, 2) 1 where model k has b1, b2


def stack(models: ShallowNet | Sequence[ShallowNet]) -> Stack:
    """The models' θ as a :class:`Stack` (detached copies); they must share d, d2, output, dtype and device."""
    models = [models] if isinstance(models, ShallowNet) else list(models)
    if not models:
        raise ValueError("models is empty; give a ShallowNet or a list of them")
    first = models[0]
    for k, m in enumerate(models):
        if not isinstance(m, ShallowNet):
            raise TypeError(f"models[{k}] must be a ShallowNet, got {type(m).__name__}")
        if (m.in_features, m.out_features, m.output, m.W1.dtype, m.W1.device) != (
            first.in_features,
            first.out_features,
            first.output,
            first.W1.dtype,
            first.W1.device,
        ):
            raise ValueError(
                f"models[{k}] is {m!r} ({m.W1.dtype}, {m.W1.device}); the models must share the in_features, "
                f"out_features, output, dtype and device of models[0], {first!r} ({first.W1.dtype}, {first.W1.device})"
            )
    K, d, d2, hidden = len(models), first.in_features, first.out_features, [m.hidden_features for m in models]
    d1 = max(hidden)
    factory: dict[str, Any] = {"dtype": first.W1.dtype, "device": first.W1.device}
    shapes = {"W1": (d1, d), "b1": (d1,), "W2": (d2, d1), "b2": (d2,)}
    parameters, masks = [], []
    for name in PARAMETERS:
        p, own = torch.zeros(K, *shapes[name], **factory), torch.zeros(K, *shapes[name], **factory)
        for k, m in enumerate(models):
            value = getattr(m, name)
            if value is not None:
                part = (slice(None),) * (name == "W2") + (slice(0, m.hidden_features),) * (name != "b2")
                p[k][part] = value.detach()
                own[k][part] = 1
        parameters.append(p)
        masks.append(own.reshape(K, -1))
    names = tuple(m.activation for m in models)
    activation = names[0] if len(set(names)) == 1 else names
    units = (torch.arange(d1) < torch.tensor(hidden)[:, None]).to(**factory)
    biases = torch.tensor([m.bias for m in models]).to(**factory)
    return Stack(parameters, torch.cat(masks, 1), activation, first.output, units, biases)


def _checked(
    models: ShallowNet | Sequence[ShallowNet], X: Tensor, Y: Tensor, check_inputs: bool = True
) -> tuple[Stack, Tensor]:
    """The models' stack, and Y as (n, d2) in X's dtype, after the checks of X and Y (unless ``check_inputs`` is
    False: data that a training loop checked once, Y given as (n, d2) in X's dtype)."""
    s = stack(models)
    if not check_inputs:
        return s, Y
    check_features(X, s.parameters[0][0])
    return s, check_targets(Y, (X.shape[0], s.parameters[2].shape[1]), like=X, output=s.output)


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    """θ-shaped tensors (W1, b1, W2, b2, each with leading axes) as one flat vector per leading index."""
    return torch.cat([t.flatten(t.dim() - trailing) for t, trailing in zip(tensors, (2, 1, 2, 1))], -1)


def hessian_vector_product(s: Stack, X: Tensor, Y: Tensor) -> Callable[[Tensor], Tensor]:
    """v ↦ ∇²J(θ) v for each model of the stack at once: v (K, P), or (B, K, P) for B vectors per model.

    One pass of the slides' formulas (:func:`~torch_shallow.functional.cost_and_gradients`) with tracked operations
    gives ∇J(θ) as a function of θ; each product is then one backward pass through that pass, ∇_θ⟨∇J(θ), v⟩, exact
    to rounding (Pearlmutter's R-operator, as ``gradgradcheck`` differentiates the same formulas). The Hessian is
    never formed. Entries of v outside the mask are ignored and come back 0.
    """
    theta = _flat(s.parameters).requires_grad_()  # (K, P), one leaf: each product comes back flat
    K, views, start = s.mask.shape[0], [], 0
    for p in s.parameters:  # one model: without the model axis, so that the pass runs the plain products
        views.append(theta[:, start : start + p[0].numel()].view(p.shape if K > 1 else p.shape[1:]))
        start += p[0].numel()
    with torch.enable_grad():
        W1, b1, W2, b2 = views
        gradients = cost_and_gradients(X, Y, W1, b1, W2, b2, s.activation, PARAMETER_GRADIENTS, output=s.output)
        g = _flat(cast("list[Tensor]", gradients.gradients[1:])).view(theta.shape)  # (K, P), all four asked for
    mask = None if bool(s.mask.all()) else s.mask

    def product(v: Tensor) -> Tensor:
        v = v if mask is None else v * mask
        (Hv,) = torch.autograd.grad(g, theta, v, retain_graph=True, is_grads_batched=v.dim() == 3)
        return Hv if mask is None else Hv * mask

    return product


def hessian(models: ShallowNet | Sequence[ShallowNet], X: Tensor, Y: Tensor) -> Tensor | list[Tensor]:
    """The exact Hessian ∇²J(θ) (P, P) of a model's cost on (X, Y) with respect to its parameters, in the
    order W1, b1, W2, b2 (row-major, absent biases skipped); for a list of models, a list of them, computed together.

    Column p is ∇²J e_p, by :func:`hessian_vector_product`, all P of them in one batched backward pass: for small P.
    """
    s, Y = _checked(models, X, Y)
    K, P = s.mask.shape
    basis = torch.eye(P, dtype=s.mask.dtype, device=s.mask.device).unsqueeze(1).expand(P, K, P)
    with threads_for_training(X, s.units.shape[1]):
        H = hessian_vector_product(s, X, Y)(basis).transpose(0, 1)  # (K, P, P): H[k, p] = ∇²J_k e_p
    own = s.mask.bool()
    result = [H[k][own[k]][:, own[k]] for k in range(K)]
    return result[0] if isinstance(models, ShallowNet) else result


def sharpness(
    models: ShallowNet | Sequence[ShallowNet], X: Tensor, Y: Tensor, k: int = 1, *, check_inputs: bool = True
) -> Tensor:
    """The k largest eigenvalues of the Hessian ∇²J(θ), in decreasing order: (k,) for one model, (K, k) for a list
    of K models, by :func:`lanczos` over exact Hessian-vector products (:func:`hessian_vector_product`), all models
    in lockstep. The largest, (k=1), is the sharpness. ``check_inputs=False`` skips the checks of X and Y, which read
    the data, for a training loop's callback on data it checked (Y (n, d2) in X's dtype).
    """
    s, Y = _checked(models, X, Y, check_inputs)
    smallest = int(s.mask.sum(-1).min())  # the fewest parameters of a model
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= smallest:
        raise ValueError(f"k must be an integer from 1 to the number of parameters, {smallest}, got {k!r}")
    with threads_for_training(X, s.units.shape[1]):  # small data: one thread, as in training
        top = lanczos(hessian_vector_product(s, X, Y), s.mask, k)
    return top[0] if isinstance(models, ShallowNet) else top


def lanczos(product: Callable[[Tensor], Tensor], mask: Tensor, k: int) -> Tensor:
    """The k largest eigenvalues (K, k), in decreasing order, of K symmetric operators v ↦ product(v) (K, P) at
    once, each restricted to the coordinates where its row of ``mask`` (K, P) is 1.

    Lanczos's iteration with full reorthogonalisation (Golub & Van Loan, *Matrix Computations*, §10.1): from a
    random unit q_1, q_{j+1} ∝ H q_j minus its projections on q_1..q_j (twice, as in classical Gram-Schmidt with
    reorthogonalisation, so that the basis stays orthogonal to rounding), which makes Qᵀ H Q = T tridiagonal with
    α_j = q_jᵀ H q_j on its diagonal and β_j = ‖q_{j+1}'s residual‖ beside it. The eigenvalues θ_i of T (Ritz values)
    approach H's extreme ones; with T's eigenvectors s_i, ‖H Q s_i - θ_i Q s_i‖ = ``β_m |s_mi|``, and an eigenvalue's
    error is at most that residual squared over the gap to the next. A model is done once the residuals of its top k
    are below ``√ε·max|θ|`` (ε of the dtype: errors of order ``ε·|θ|²/gap``), once its Krylov space is all of its P_k
    coordinates (then T is H in another basis, and its eigenvalues are H's to rounding), or once β vanishes; the
    models iterate in lockstep until all are done, a finished one with q = 0. The start vector is drawn from a fixed
    seed: the same models give the same values.
    """
    K, P = mask.shape
    sizes = mask.sum(-1).long()  # P_k, the coordinates of each model
    steps, eps = int(sizes.max()), torch.finfo(mask.dtype).eps
    exhausted = torch.arange(1, steps + 1, device=mask.device)[:, None] >= sizes  # (steps, K): all of P_k spanned
    q = torch.randn(K, P, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(mask) * mask
    q = q / q.norm(dim=-1, keepdim=True)
    Q = mask.new_zeros(K, steps, P)  # the Lanczos basis, q_j in row j
    T = torch.zeros(K, steps, steps, dtype=torch.float64, device=mask.device)  # Qᵀ H Q, filled as it grows
    length = sizes.clone()  # each model's number of Lanczos steps, final once it is done
    running = torch.ones(K, dtype=torch.bool, device=mask.device)
    for j in range(steps):
        Q[:, j] = q
        w = product(q)
        T[:, j, j] = (q * w).sum(-1)  # α_j
        basis = Q[:, : j + 1]
        for _ in range(2):
            w = w - (basis.mT @ (basis @ w.unsqueeze(-1))).squeeze(-1)
        beta = w.norm(dim=-1)
        ritz: Tensor  # torch.linalg's functions are not annotated
        vectors: Tensor
        ritz, vectors = torch.linalg.eigh(T[:, : j + 1, : j + 1])
        done = exhausted[j]
        if j + 1 >= k:  # the residuals of the top k Ritz values (a vanishing β makes them 0 too)
            residual = (beta.unsqueeze(-1) * vectors[:, -1, -k:]).abs().amax(-1)
            done = done | (residual <= eps**0.5 * ritz.abs().amax(-1))
        length[running & done] = j + 1
        running &= ~done
        if not running.any():
            break
        T[:, j, j + 1] = T[:, j + 1, j] = beta * running
        q = w * (running / beta.clamp_min(torch.finfo(mask.dtype).tiny)).unsqueeze(-1)  # 0 for a model that is done
    if bool((length == j + 1).all()):  # T is every model's as it stands
        return ritz[:, -k:].flip(-1).to(mask.dtype)
    T = T[:, : j + 1, : j + 1]
    # Rows after a model's last step: a diagonal below all of its eigenvalues (Gershgorin's bound), no coupling.
    outside = torch.arange(j + 1, device=mask.device) >= length.unsqueeze(-1)  # (K, m)
    diagonal = T.diagonal(dim1=-2, dim2=-1)
    low = (diagonal + diagonal.abs() - T.abs().sum(-1)).masked_fill(outside, torch.inf).amin(-1, keepdim=True)
    T = T + torch.diag_embed(torch.where(outside, low - 1 - low.abs() - diagonal, 0))
    eigenvalues: Tensor = torch.linalg.eigvalsh(T)
    return eigenvalues[:, -k:].flip(-1).to(mask.dtype)


def ntk(
    models: ShallowNet | Sequence[ShallowNet], X1: Tensor, X2: Tensor | None = None, *, check_inputs: bool = True
) -> Tensor:
    """The empirical neural tangent kernel Θ(x, x')_kl = ∂Z2_k(x)/∂θ · ∂Z2_l(x')/∂θ of the rows of X1 (n1, d) against
    those of X2 (n2, d) (X1's by default): (n1, d2, n2, d2), or (K, n1, d2, n2, d2) for a list of K models.

    From the closed-form Jacobians (:func:`~torch_shallow.functional.output_jacobians`), summed over the parameters
    without forming a sample's Jacobian::

        Θ_ikpl = δ_kl (A1_i · A1'_p + 1)  +  Σ_j G_ikj G'_plj (x_i · x'_p + 1),   G_ikj = W2_kj σ'(Z1)_ij

    the first term from W2 and b2, the second from W1 and b1; the + 1 of a layer without a bias is left out.
    ``check_inputs=False`` skips the checks of X1 and X2 (see :func:`sharpness`).
    """
    s = stack(models)
    X2 = X1 if X2 is None else X2
    for X in (X1, X2) if check_inputs else ():
        check_features(X, s.parameters[0][0])
    W1, b1, W2, _ = s.parameters
    K, n1, n2, d2 = W1.shape[0], X1.shape[0], X2.shape[0], W2.shape[1]
    has_b1, has_b2 = (s.biases[:, i].view(K, 1, 1) for i in range(2))
    with torch.no_grad(), threads_for_training(X1, s.units.shape[1]):
        (A1, G), (A1_, G_) = (
            output_jacobians(W2, hidden_layer(X, W1, b1, s.activation), s.activation) for X in (X1, X2)
        )
        A1, A1_ = A1 * s.units.unsqueeze(1), A1_ * s.units.unsqueeze(1)  # a padded unit's σ(0) is not the model's
        outer = A1 @ A1_.mT + has_b2  # (K, n1, n2)
        inputs = X1 @ X2.mT + has_b1  # (K, n1, n2)
        hidden = (G.reshape(K, n1 * d2, -1) @ G_.reshape(K, n2 * d2, -1).mT).view(K, n1, d2, n2, d2)
        eye = torch.eye(d2, dtype=W1.dtype, device=W1.device)[:, None, :]  # δ_kl at [k, p, l]
        theta = outer[:, :, None, :, None] * eye + hidden * inputs[:, :, None, :, None]
    return theta[0] if isinstance(models, ShallowNet) else theta
