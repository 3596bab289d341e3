"""``ShallowNet``: the slides' one-hidden-layer network as an ``nn.Module``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .activations import get_activation
from .functional import RowPass, Wanted, cost_and_gradients, probabilities, shallow_bce, shallow_net
from .validation import check_cost_inputs, check_fits_in_memory, check_output


class ShallowNet(nn.Module):
    r"""A neural network with one hidden layer, with the slides' hand-written backward formulas.

    .. code-block:: text

        Z1 = b1ᵀ + X W1ᵀ     A1 = σ(Z1)      (n, d1)
        Z2 = b2ᵀ + A1 W2ᵀ    A2 = σ(Z2)      (n, d2)
        J  = -(1/n) Σ { Y log A2 + (1 - Y) log(1 - A2) }

    ``forward`` returns the logits Z2 through :class:`~torch_shallow.functional.ShallowNetFunction`, so the
    module composes with any loss and any layer below it; ``cost`` returns J through
    :class:`~torch_shallow.functional.ShallowBCEFunction`, whose backward starts from dZ2 = n⁻¹(A2 - Y).

    Args:
        in_features: d, the size of each input sample.
        hidden_features: d1, the number of hidden units.
        out_features: d2, the number of output units: independent binary labels, or the K classes of a softmax
            output. Default: 1.
        activation: the hidden units' σ: ``"sigmoid"`` (the slides), ``"tanh"`` or ``"relu"``. Default: ``"sigmoid"``.
        output: the output units: ``"sigmoid"`` (the slides; each unit an independent binary label), ``"softmax"``
            (one of K = d2 ≥ 2 classes, with the categorical cross-entropy J = -(1/n) Σ_i Σ_k Y_ik log A2_ik, whose
            dZ2 = n⁻¹(A2 - Y) is the slides' again) or ``"identity"`` (regression: A2 = Z2, with half the mean squared
            error J = (1/2n) Σ_i Σ_k (Z2 - Y)²_ik, whose dZ2 is again n⁻¹(A2 - Y)). Default: ``"sigmoid"``.
        bias: whether the layers have biases b1 and b2: one bool for both, or a pair (hidden, output), as
            ``nn.Linear``'s ``bias``. A missing bias is registered as None. Default: True.

    Shape:
        - X: (n, d), n ≥ 1 samples stacked by rows.
        - Y: (n, d2) labels in [0, 1], or (n,) when d2 = 1; float, bool or integer. Softmax: (n, K) one-hot rows or
          class probabilities. Identity: any finite reals.
        - Output of ``forward``: (n, d2) logits; ``predict_proba`` and ``predict``: (n, d2); ``cost``: scalar.

    Attributes:
        W1: (d1, d) hidden-layer weights, row j is hidden unit j's weight vector.
        b1: (d1,) hidden-layer biases, or None without them.
        W2: (d2, d1) output-layer weights.
        b2: (d2,) output-layer biases, or None without them.

    Example::

        >>> net = ShallowNet(2, 4)
        >>> X, Y = torch.randn(400, 2), torch.randint(0, 2, (400, 1))
        >>> net(X).shape
        torch.Size([400, 1])
        >>> net.cost(X, Y).backward()
        >>> net.W1.grad.shape
        torch.Size([4, 2])
    """

    # b1 and b2 are registered with register_parameter, which nn.Module's attribute lookup types loosely
    W1: nn.Parameter
    b1: nn.Parameter | None
    W2: nn.Parameter
    b2: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int = 1,
        activation: str = "sigmoid",
        output: str = "sigmoid",
        bias: bool | tuple[bool, bool] = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_features", in_features),
            ("hidden_features", hidden_features),
            ("out_features", out_features),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        get_activation(activation)
        check_output(output, out_features)
        biases = (bias, bias) if isinstance(bias, bool) else bias
        if not (isinstance(biases, tuple) and len(biases) == 2 and all(isinstance(b, bool) for b in biases)):
            raise ValueError(f"bias must be True, False or a pair of them (hidden, output), got {bias!r}")
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.out_features = out_features
        self.activation = activation
        self.output = output
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        if torch.device(device or "cpu").type == "cpu":
            size = torch.empty((), dtype=dtype).element_size()
            elements = hidden_features * (in_features + out_features + 1) + out_features
            check_fits_in_memory(elements, size, f"ShallowNet({in_features}, {hidden_features}, {out_features})")
        self.W1 = nn.Parameter(torch.empty(hidden_features, in_features, **factory))
        self.register_parameter("b1", nn.Parameter(torch.empty(hidden_features, **factory)) if biases[0] else None)
        self.W2 = nn.Parameter(torch.empty(out_features, hidden_features, **factory))
        self.register_parameter("b2", nn.Parameter(torch.empty(out_features, **factory)) if biases[1] else None)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw θ(0) at random, the slides' step 1.

        Each layer's weights and biases are drawn from U(-1/√fan_in, 1/√fan_in), fan_in being d for layer 1 and
        d1 for layer 2: the rule of ``nn.Linear``, so this module starts where ``Linear-σ-Linear`` would. Random
        values break the symmetry between hidden units (equal rows of W1 would get equal gradients and stay equal
        forever), and the 1/√fan_in scale keeps Z1 = b1ᵀ + X W1ᵀ of order one for standardised inputs, where σ'
        is not vanishingly small.

        Args:
            generator: a CPU ``torch.Generator`` for a reproducible draw; the global generator if None. Values are
                drawn on the CPU in float64, then copied, so one seed gives the same θ(0) on every device and
                (up to rounding) in every dtype.
        """
        with torch.no_grad():
            for W, b in ((self.W1, self.b1), (self.W2, self.b2)):
                bound = 1 / math.sqrt(W.shape[1])
                for p in (W, b) if b is not None else (W,):
                    draw = torch.empty(p.shape, dtype=torch.float64).uniform_(-bound, bound, generator=generator)
                    p.copy_(draw)

    def forward(self, X: Tensor) -> Tensor:
        """Z2 = b2ᵀ + σ(b1ᵀ + X W1ᵀ) W2ᵀ, the logits (n, d2)."""
        return shallow_net(X, self.W1, self.b1, self.W2, self.b2, self.activation)

    @property
    def bias(self) -> tuple[bool, bool]:
        """(hidden, output): which layers have a bias."""
        return self.b1 is not None, self.b2 is not None

    def predict_proba(self, X: Tensor) -> Tensor:
        """A2 (n, d2): σ(Z2), the probability of label 1 of each unit; softmax(Z2), rows summing to 1; identity, Z2."""
        return probabilities(self(X), self.output)

    def predict(self, X: Tensor) -> Tensor:
        """Labels (n, d2) in X's dtype: 1 where A2 > 0.5, that is, where Z2 > 0; softmax, the one-hot argmax;
        identity, the predicted values Z2."""
        Z2: Tensor = self(X)
        if self.output == "identity":
            return Z2
        if self.output == "sigmoid":
            return (Z2 > 0).to(X.dtype)
        return torch.nn.functional.one_hot(Z2.argmax(-1), self.out_features).to(X.dtype)

    def cost(self, X: Tensor, Y: Tensor, *, block_rows: int | None = None, check_inputs: bool = True) -> Tensor:
        """J = -(1/n) Σ { Y log A2 + (1 - Y) log(1 - A2) } (softmax: -(1/n) Σ Y log A2; identity:
        (1/2n) Σ (Z2 - Y)²), a scalar, through the slides' backward.

        J and its gradient come from one pass over blocks of ``block_rows`` rows of X (None: chosen from d1);
        see :func:`~torch_shallow.functional.shallow_bce`, also for ``check_inputs``.
        """
        return shallow_bce(
            X,
            Y,
            self.W1,
            self.b1,
            self.W2,
            self.b2,
            self.activation,
            output=self.output,
            block_rows=block_rows,
            check_inputs=check_inputs,
        )

    def cost_and_grad(
        self, X: Tensor, Y: Tensor, *, n: int | None = None, block_rows: int | None = None, check_inputs: bool = True
    ) -> Tensor:
        """J, with ∇J written into the ``.grad`` of each parameter that requires a gradient.

        The same values as ``zero_grad(set_to_none=True)`` then ``cost(X, Y).backward()``, from the same pass,
        but without building an autograd graph: on small data the autograd engine's fixed cost per call is half
        of a training step. Existing ``.grad`` tensors are replaced, not added to, and gradient hooks on the
        parameters do not run. Returns J detached. ``n`` is the number of samples J averages over, X's rows by
        default; a distributed run passes the global n (see :func:`~torch_shallow.functional.cost_and_gradients`,
        which also takes on-disk data such as :class:`~torch_shallow.ondisk.NpyRows` when ``check_inputs=False``).
        """
        if check_inputs:
            Y = check_cost_inputs(X, Y, self.W1, self.b1, self.W2, self.b2, self.activation, block_rows, self.output)
        return self.gradient_pass(X, Y, n=n, block_rows=block_rows).J

    def gradient_pass(
        self, X: Tensor, Y: Tensor, *, n: int | None = None, block_rows: int | None = None, count_right: bool = False
    ) -> RowPass:
        """:meth:`cost_and_grad` without the checks of X and Y, for a trainer that checked them once: one pass over
        the rows giving J, ∇J written into ``.grad`` as there, and the labels predicted right if ``count_right``
        (:func:`~torch_shallow.functional.cost_and_gradients`). Y is (n, d2) in X's dtype."""
        params = (self.W1, self.b1, self.W2, self.b2)
        wanted = Wanted(False, *(p is not None and p.requires_grad for p in params))
        with torch.no_grad():
            result = cost_and_gradients(X, Y, *params, self.activation, wanted, block_rows, n, self.output, count_right)
        for p, g in zip(params, result.gradients[1:]):
            if p is not None:
                p.grad = g  # None for a parameter that needs none: an old gradient of a now frozen one must not stay
        return result

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, hidden_features={self.hidden_features}, "
            f"out_features={self.out_features}, activation={self.activation!r}"
            + (f", output={self.output!r}" if self.output != "sigmoid" else "")
            + (f", bias={self.bias}" if self.bias != (True, True) else "")
        )
