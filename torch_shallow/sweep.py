"""Many models trained in one full-batch pass: a sweep over hidden sizes, activations, learning rates and seeds.

On small data an epoch of one model costs the fixed price of each PyTorch call, not arithmetic. Stacking K models
along a leading axis runs the slides' formulas once per epoch for all of them, as batched products (``baddbmm``,
broadcasting ``@``): the same code as for one model (:mod:`~torch_shallow.functional`), through the same training
loop (:func:`~torch_shallow.trainer.train`).

Models of different hidden sizes are padded to the largest, d1max. A padded unit has zero weights in and out:
its Z1 is 0 and it adds 0 to Z2, so J and every other gradient are those of the model alone. Only dW2's padded
columns, dZ2ᵀ A1 with A1 = σ(0), are not zero; they are masked before each step, so padded units stay exactly zero.
A model without a bias (``bias=False``) has one of zeros in the stack, whose gradient is zeroed before each step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import architecture
from .functional import Sweep, cost_and_gradients
from .module import ShallowNet
from .ondisk import NpyRows
from .trainer import History, TrainConfig, train
from .validation import check_parameters

PARAMETERS = ("W1", "b1", "W2", "b2")


def fit_many(
    models: list[ShallowNet],
    X: Tensor | NpyRows,
    Y: Tensor | NpyRows,
    config: TrainConfig | None = None,
    *,
    lrs: list[float] | None = None,
    val: tuple[Tensor, Tensor] | None = None,
    hparams: list[dict[str, object]] | None = None,
    run_names: list[str] | None = None,
    resume_from: str | Path | None = None,
) -> list[History]:
    """Train every model of ``models`` on all of (X, Y) by batch gradient descent, all at once; see
    :func:`~torch_shallow.trainer.fit`, which each model's training equals (to float64 rounding).

    Each epoch is one batched pass of the slides' formulas over a leading model axis, and one step
    θ_k ← θ_k - α_k ∇J(θ_k) for each model still running. Each model stops on its own (``tol``, divergence, early
    stopping), after which it no longer changes; a model that diverges is put back to its last good θ and the
    others go on. Checkpoints, resume, Ctrl-C and SIGTERM, validation data, on-disk data and distributed runs
    work as in ``fit``: in a distributed run the ranks reduce all models' J and ∇J in one collective.

    Args:
        models: ShallowNets with one ``in_features``, ``out_features`` and ``output``, one dtype and device;
            hidden sizes and activations may differ. Their parameters are updated in place at the end (and on
            Ctrl-C, SIGTERM or an error).
        X, Y, config, val, resume_from: as for ``fit``; ``config.lr`` is every model's unless ``lrs`` is given.
        lrs: one learning rate α_k per model.
        hparams: one dict per model, for its HParams session and the checkpoint (seed, ...).
        run_names: one TensorBoard run name per model under ``config.log_dir``; by default
            ``h<d1>-<activation>-lr<α>-<k>``.

    Returns:
        One :class:`~torch_shallow.trainer.History` per model, in the order of ``models``.
    """
    config = config or TrainConfig()
    models = list(models)
    K = len(models)
    if K == 0:
        raise ValueError("models is empty; give at least one ShallowNet")
    lrs = [config.lr] * K if lrs is None else list(lrs)
    for name, values in (("lrs", lrs), ("hparams", hparams), ("run_names", run_names)):
        if values is not None and len(values) != K:
            raise ValueError(f"{name} must have one entry per model ({K}), got {len(values)}")
    stack = ModelStack(models, lrs)
    names = run_names or [
        f"h{m.hidden_features}-{m.activation}-lr{lr:g}-{k}" for k, (m, lr) in enumerate(zip(models, lrs))
    ]
    try:
        return train(
            stack,
            X,
            Y,
            config,
            val=val,
            hparams=hparams or [{} for _ in models],
            resume_from=resume_from,
            run_names=names,
        )
    finally:
        stack.write_back()


class ModelStack:
    """The trainee of :func:`fit_many`: K models' parameters stacked along a leading axis, W1 (K, d1max, d),
    b1 (K, d1max), W2 (K, d2, d1max), b2 (K, d2), updated by plain gradient descent with one α per model."""

    optimizer_class = "SGD"

    def __init__(self, models: list[ShallowNet], lrs: list[float]) -> None:
        first = models[0]
        for k, m in enumerate(models):
            if not isinstance(m, ShallowNet):
                raise TypeError(f"models[{k}] must be a ShallowNet, got {type(m).__name__}")
            check_parameters(m.W1, m.b1, m.W2, m.b2)
            frozen = [
                name for name in PARAMETERS if getattr(m, name) is not None and not getattr(m, name).requires_grad
            ]
            if frozen:  # the stack trains every parameter of every model
                raise ValueError(
                    f"models[{k}].{frozen[0]} does not require a gradient; fit_many trains all of a "
                    "model's parameters: train a model with frozen parameters with fit"
                )
            same = (m.in_features, m.out_features, m.output, m.W1.dtype, m.W1.device)
            if same != (first.in_features, first.out_features, first.output, first.W1.dtype, first.W1.device):
                raise ValueError(
                    f"models[{k}] is {m!r} ({m.W1.dtype}, {m.W1.device}), but a stack needs the "
                    f"in_features, out_features, output, dtype and device of models[0], {first!r} "
                    f"({first.W1.dtype}, {first.W1.device})"
                )
        for k, lr in enumerate(lrs):
            if (
                isinstance(lr, bool)
                or not isinstance(lr, (int, float))
                or not (math.isfinite(lr) and 0 < lr <= torch.finfo(first.W1.dtype).max)
            ):
                raise ValueError(f"lrs[{k}] must be a finite number > 0 within {first.W1.dtype}, got {lr!r}")
        self.models, self.count = models, len(models)
        self.hidden = [m.hidden_features for m in models]
        d1 = max(self.hidden)
        factory = {"dtype": first.W1.dtype, "device": first.W1.device}
        self.reference = ShallowNet(
            first.in_features, d1, first.out_features, first.activation, first.output, **factory
        )
        K, d, d2 = self.count, first.in_features, first.out_features
        self.W1, self.b1 = torch.zeros(K, d1, d, **factory), torch.zeros(K, d1, **factory)
        self.W2, self.b2 = torch.zeros(K, d2, d1, **factory), torch.zeros(K, d2, **factory)
        with torch.no_grad():
            for k, m in enumerate(models):
                for name, p in zip(PARAMETERS, self.parameters()):
                    if getattr(m, name) is not None:
                        self._unpadded(p[k], name, self.hidden[k]).copy_(getattr(m, name))
        self.lrs = list(map(float, lrs))
        self._lr = torch.tensor(self.lrs, **factory)
        names = tuple(m.activation for m in models)
        self.activation = names[0] if len(set(names)) == 1 else names  # one name: one operation, no runs to cut
        self.output = first.output
        units = torch.arange(d1, device=first.W1.device) < torch.tensor(self.hidden, device=first.W1.device)[:, None]
        self.unit_mask = None if min(self.hidden) == d1 else units[:, None, :].to(first.W1.dtype)  # (K, 1, d1max)
        self.biasless = {
            i: [k for k, m in enumerate(models) if getattr(m, name) is None] for i, name in ((1, "b1"), (3, "b2"))
        }
        self._gradients: list[Tensor] = []

    def sweep(self, X: Any, Y: Any, n: int, count_right: bool) -> Sweep:
        with torch.no_grad():
            sweep = cost_and_gradients(
                X,
                Y,
                self.W1,
                self.b1,
                self.W2,
                self.b2,
                self.activation,
                (False, True, True, True, True),
                n=n,
                output=self.output,
                count_right=count_right,
            )
        self._gradients = list(sweep.gradients[1:])
        return sweep

    def evaluate(self, X: Any, Y: Any, n: int) -> Sweep:
        with torch.no_grad():
            return cost_and_gradients(
                X,
                Y,
                self.W1,
                self.b1,
                self.W2,
                self.b2,
                self.activation,
                (False,) * 5,
                n=n,
                output=self.output,
                count_right=True,
            )

    def gradients(self) -> list[Tensor]:
        return self._gradients

    def parameters(self) -> list[Tensor]:
        return [self.W1, self.b1, self.W2, self.b2]

    def step(self, running: list[bool]) -> None:
        """θ_k ← θ_k - α_k ∇J(θ_k) for the running models; padded units and stopped models do not move."""
        dW1, db1, dW2, db2 = self._gradients
        if self.unit_mask is not None:
            dW2.mul_(self.unit_mask)
        for i, models in self.biasless.items():
            if models:
                self._gradients[i][models] = 0
        stopped = [k for k, on in enumerate(running) if not on]
        if stopped:
            for g in self._gradients:
                g[stopped] = 0  # a stopped model's ∇J may be NaN: zeroed, not multiplied by 0
        for p, g in zip(self.parameters(), self._gradients):
            p.addcmul_(g, self._lr.view(-1, *([1] * (g.dim() - 1))), value=-1)

    def select(self, tensor: Tensor, k: int) -> Tensor:
        return tensor[k]

    def grad_norms(self) -> list[float]:
        squares = sum(g.square().sum(dim=tuple(range(1, g.dim()))) for g in self._gradients)
        return squares.sqrt().tolist()

    def learning_rates(self) -> list[float]:
        return self.lrs

    def model(self, k: int) -> ShallowNet:
        """Model k, its parameters (and, after a sweep, gradients) copied from the stack without the padding."""
        m, h = self.models[k], self.hidden[k]
        for i, (name, p) in enumerate(zip(PARAMETERS, self.parameters())):
            target = getattr(m, name)
            if target is None:
                continue
            with torch.no_grad():
                target.copy_(self._unpadded(p[k], name, h))
            if self._gradients:
                target.grad = self._unpadded(self._gradients[i][k], name, h).clone()
        return m

    @staticmethod
    def _unpadded(p: Tensor, name: str, hidden: int) -> Tensor:
        """The part of one model's padded parameter that is its own: the first ``hidden`` rows of W1 and b1 and
        columns of W2, and all of b2."""
        if name == "b2":
            return p
        return p[:, :hidden] if name == "W2" else p[:hidden]

    def write_back(self) -> None:
        for k in range(self.count):
            self.model(k)

    def weights(self) -> dict[str, Tensor]:
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def optimizer_state(self) -> dict[str, Any]:
        return {"lrs": self.learning_rates()}

    def architecture(self) -> list[dict[str, Any]]:
        return [architecture(m) for m in self.models]

    def hyperparameter_changes(self, saved: dict[str, Any]) -> list[str]:
        return (
            []
            if saved["lrs"] == self.learning_rates()
            else [f"the learning rates were {saved['lrs']}, now {self.learning_rates()}"]
        )

    def load(self, weights: dict[str, Tensor], optimizer_state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, p in zip(PARAMETERS, self.parameters()):
                p.copy_(weights[name])
