"""Many models trained at once, as one stack: a grid of hidden sizes, activations, learning rates and seeds.

On small data an epoch of one model costs the fixed price of each PyTorch call, not arithmetic. Stacking K models
along a leading axis runs the slides' formulas once per epoch for all of them, as batched products: the same code
as for one model (:mod:`~torch_shallow.functional`), through the same training loop
(:func:`~torch_shallow.trainer.train`).

Models of different hidden sizes are padded to the largest, d1max. A padded unit has zero weights in and out:
its Z1 is 0 and it adds 0 to Z2, so J and every other gradient are those of the model alone. Only dW2's padded
columns, dZ2ᵀ A1 with A1 = σ(0), are not zero; they are masked before each step, so padded units stay exactly zero.
A model without a bias (``bias=False``) has one of zeros in the stack, whose gradient is zeroed before each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from .callbacks import Callback
from .checkpoint import architecture
from .functional import PARAMETER_GRADIENTS, RowPass, cost_and_gradients
from .hyperparameters import CONSTRAINTS
from .module import ShallowNet
from .ondisk import NpyRows
from .run import check_run_names, model_run_names
from .trainer import History, TrainConfig, run_training
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
    callbacks: Sequence[Callback] = (),
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
        X: as for ``fit``.
        Y: as for ``fit``.
        config: as for ``fit``; ``config.lr`` is every model's unless ``lrs`` is given.
        val: as for ``fit``.
        resume_from: as for ``fit``.
        lrs: one learning rate α_k per model.
        hparams: one dict per model, for its HParams session and the checkpoint (seed, ...).
        run_names: one TensorBoard run name per model under ``config.log_dir``, distinct plain directory names;
            by default ``h<d1>-<activation>-lr<α>``, with ``-s<seed>`` where ``hparams`` give a seed and ``-<k>``
            where names would still be equal (:func:`~torch_shallow.run.model_run_names`).
        callbacks: as for ``fit``; ``run.models`` are copies of the stack's models.

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
    hparams = hparams or [{} for _ in models]
    if run_names is None:
        run_names = model_run_names(
            [m.hidden_features for m in models],
            [m.activation for m in models],
            stack.lrs,
            [h.get("seed") for h in hparams],
        )
    check_run_names(list(run_names))
    try:
        return run_training(
            stack,
            X,
            Y,
            config,
            val=val,
            hparams=hparams,
            resume_from=resume_from,
            run_names=list(run_names),
            callbacks=callbacks,
        )
    finally:
        stack.models()


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
            CONSTRAINTS["lr"].check(f"lrs[{k}]", lr)
            if lr > torch.finfo(first.W1.dtype).max:
                raise ValueError(f"lrs[{k}] = {lr:g} is beyond the range of the models' dtype {first.W1.dtype}")
        self.nets, self.count = models, len(models)
        self.hidden = [m.hidden_features for m in models]
        d1 = max(self.hidden)
        factory: dict[str, Any] = {"dtype": first.W1.dtype, "device": first.W1.device}
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
        self._previous = [p.clone() for p in self.parameters()]  # θ before the last step

    def cost_and_grad(self, X: Any, Y: Any, n: int, count_right: bool) -> RowPass:
        """J (K,) and ∇J of every model in one pass over the rows; dW2's padded columns, dZ2ᵀ σ(0), masked."""
        with torch.no_grad():
            result = cost_and_gradients(
                X,
                Y,
                self.W1,
                self.b1,
                self.W2,
                self.b2,
                self.activation,
                PARAMETER_GRADIENTS,
                n=n,
                output=self.output,
                count_right=count_right,
            )
        self._gradients = cast("list[Tensor]", list(result.gradients[1:]))  # all four asked for, biases padded
        if self.unit_mask is not None:
            self._gradients[2].mul_(self.unit_mask)
        for i, models in self.biasless.items():  # models without that bias keep it at zero
            if models:
                self._gradients[i][models] = 0
        return result

    def gradients(self) -> list[Tensor]:
        return self._gradients

    def parameters(self) -> list[Tensor]:
        return [self.W1, self.b1, self.W2, self.b2]

    def step(self, running: list[bool]) -> None:
        """θ_k ← θ_k - α_k ∇J(θ_k) for the running models; padded units and stopped models do not move."""
        torch._foreach_copy_(self._previous, self.parameters())
        stopped = [k for k, on in enumerate(running) if not on]
        if stopped:
            for g in self._gradients:
                g[stopped] = 0  # a stopped model's ∇J may be NaN: zeroed, not multiplied by 0
        for p, g in zip(self.parameters(), self._gradients):
            p.addcmul_(g, self._lr.view(-1, *([1] * (g.dim() - 1))), value=-1)

    def restore_previous(self, k: int) -> None:
        for p, previous in zip(self.parameters(), self._previous):
            p[k] = previous[k]

    def select(self, tensor: Tensor, k: int) -> Tensor:
        return tensor[k]

    def grad_norms(self) -> list[float]:
        squares = cast(Tensor, sum(g.square().sum(dim=tuple(range(1, g.dim()))) for g in self._gradients))
        return squares.sqrt().tolist()

    def learning_rates(self) -> list[float]:
        return self.lrs

    def models(self, indices: Sequence[int] | None = None) -> list[ShallowNet]:
        """The models (all, or those of ``indices``), their parameters, and gradients after a pass, copied from the
        stack without the padding."""
        chosen = range(self.count) if indices is None else indices
        for k in chosen:
            m, h = self.nets[k], self.hidden[k]
            for i, (name, p) in enumerate(zip(PARAMETERS, self.parameters())):
                target = getattr(m, name)
                if target is None:
                    continue
                with torch.no_grad():
                    target.copy_(self._unpadded(p[k], name, h))
                if self._gradients:
                    target.grad = self._unpadded(self._gradients[i][k], name, h).clone()
        return [self.nets[k] for k in chosen]

    @staticmethod
    def _unpadded(p: Tensor, name: str, hidden: int) -> Tensor:
        """The part of one model's padded parameter that is its own: the first ``hidden`` rows of W1 and b1 and
        columns of W2, and all of b2."""
        if name == "b2":
            return p
        return p[:, :hidden] if name == "W2" else p[:hidden]

    def weights(self) -> dict[str, Tensor]:
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def optimizer_state(self) -> dict[str, Any]:
        return {"lrs": self.learning_rates()}

    def architecture(self) -> list[dict[str, Any]]:
        return [architecture(m) for m in self.nets]

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
