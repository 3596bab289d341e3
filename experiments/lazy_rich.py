"""Lazy and rich training (Chizat, Oyallon & Bach, "On lazy training in differentiable programming", NeurIPS 2019):
scaling a network's output by α and its cost by 1/α² leaves the early dynamics of the function alone but shrinks how
far the weights move by 1/α; for large α the tangent kernel stays put and the network trains as its linearisation.

The model is h(x) = α (f(x; θ) - f(x; θ0)), f Cohen et al.'s network of experiments/edge_of_stability.py with the
hidden biases drawn at random (U(-1, 1); with zero biases every hidden unit's kink sits at x = 0), on the same
Chebyshev data, with J = (1/α²) (1/2n) Σ (h - y)². Its gradient is the slides' backward pass from
dZ2 = ∂J/∂Z2 = n⁻¹ (h - y) / α: the α's run as one stack, in a torch loop over the package's forward and backward
passes (torch_shallow.functional). In function space a step moves h by -η n⁻¹ Θ (h - y) whatever α, Θ the NTK of f;
in weight space it moves θ by a step ∝ 1/α.

    pip install '.[experiments]'           # matplotlib
    python experiments/lazy_rich.py        # prints a Markdown table, writes docs/figures/lazy_rich.png
"""

import argparse
from pathlib import Path

import matplotlib
import torch
from edge_of_stability import chebyshev_data, cohen_network

from torch_shallow import ShallowNet
from torch_shallow.dynamics import ntk, stack
from torch_shallow.functional import Wanted, backward_pass, forward_pass

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

ALPHAS = [1.0, 10.0, 100.0]
LR = 0.05  # below 2 / the sharpness at θ0 (23.7, with the random b1) for every α: its Gauss-Newton part is α-free
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "lazy_rich.png"


def train(alphas: list[float], steps: int, every: int) -> dict[str, list]:
    """Gradient descent on the α-scaled model, all α at once; every ``every`` steps, the relative changes of θ and
    of the NTK on the training data, and each α's cost."""
    X, Y = chebyshev_data()
    net = cohen_network(hidden_bias="random")
    K = len(alphas)
    W1, b1, W2, _ = (p.clone() for p in stack([net] * K).parameters)  # (K, 100, 1), (K, 100), (K, 1, 100)
    alpha = torch.tensor(alphas, dtype=X.dtype).view(K, 1, 1)
    _, Z2_0 = forward_pass(X, W1, b1, W2, None, "tanh")  # f(X; θ0), (K, n, 1)
    theta_0 = torch.cat([W1.flatten(1), b1, W2.flatten(1)], 1)
    kernel_0 = ntk(net, X)
    record = {"step": [], "weight_change": [], "kernel_change": [], "cost": []}
    for t in range(steps + 1):
        A1, Z2 = forward_pass(X, W1, b1, W2, None, "tanh")
        h = alpha * (Z2 - Z2_0)
        if t % every == 0:
            models = [_model(W1[k], b1[k], W2[k]) for k in range(K)]
            theta = torch.cat([W1.flatten(1), b1, W2.flatten(1)], 1)
            kernels = ntk(models, X)
            record["step"].append(t)
            record["weight_change"].append(((theta - theta_0).norm(dim=1) / theta_0.norm(dim=1)).tolist())
            change = (kernels - kernel_0).flatten(1).norm(dim=1) / kernel_0.norm()
            record["kernel_change"].append(change.tolist())
            record["cost"].append(((h - Y).square().sum((1, 2)) / (2 * len(X))).tolist())
        if t == steps:
            break
        dZ2 = (h - Y) / (len(X) * alpha)  # ∂J/∂Z2 for J = (1/α²)(1/2n) Σ (α(Z2 - Z2_0) - Y)²
        _, dW1, db1, dW2, _ = backward_pass(dZ2, X, W1, W2, A1, "tanh", Wanted(dW1=True, db1=True, dW2=True))
        W1, b1, W2 = W1 - LR * dW1, b1 - LR * db1, W2 - LR * dW2
    return record


def _model(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor) -> ShallowNet:
    net = ShallowNet(1, W1.shape[0], 1, "tanh", "identity", bias=(True, False), dtype=W1.dtype)
    with torch.no_grad():
        net.W1.copy_(W1), net.b1.copy_(b1), net.W2.copy_(W2)
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000, help="gradient steps (default: %(default)s)")
    parser.add_argument("--every", type=int, default=100, help="steps between measurements (default: %(default)s)")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="the PNG to write (default: %(default)s)")
    args = parser.parse_args()
    record = train(ALPHAS, args.steps, args.every)
    weights, kernels, costs = (torch.tensor(record[key]) for key in ("weight_change", "kernel_change", "cost"))
    print(f"α-scaled regression network, {args.steps:,} steps of gradient descent with η = {LR}\n")
    print("| α | ‖θ - θ0‖ / ‖θ0‖ | ‖Θ - Θ0‖_F / ‖Θ0‖_F | final J |")
    print("|---|---|---|---|")
    for k, alpha in enumerate(ALPHAS):
        print(f"| {alpha:g} | {weights[-1, k]:.3e} | {kernels[-1, k]:.3e} | {costs[-1, k]:.3g} |")
    print(
        f"\nweight change, α = 10 over α = 100: {weights[-1, 1] / weights[-1, 2]:.2f}×; "
        f"kernel change, α = 1 over α = 10: {kernels[-1, 0] / kernels[-1, 1]:.1f}×"
    )
    print("\n| step | weight change, α = 10 over α = 100 | kernel change, α = 1 over α = 10 |\n|---|---|---|")
    for i in range(len(record["step"]) // 5, len(record["step"]), len(record["step"]) // 5):
        print(f"| {record['step'][i]} | {weights[i, 1] / weights[i, 2]:.2f}× | {kernels[i, 0] / kernels[i, 1]:.1f}× |")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=110)
    for k, alpha in enumerate(ALPHAS):
        for ax, values in zip(axes, (weights, kernels, costs)):
            ax.plot(record["step"][1:], values[1:, k], label=f"α = {alpha:g}")
    titles = ("relative weight change", "relative NTK change", "cost J")
    for ax, title in zip(axes, titles):
        ax.set(xlabel="step t", yscale="log", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure)
    print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
