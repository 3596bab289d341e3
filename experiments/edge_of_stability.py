"""The edge of stability (Cohen, Kaur, Li, Kolter & Talwalkar, ICLR 2021) on their one-hidden-layer regression
network: full-batch gradient descent drives the sharpness, the Hessian's largest eigenvalue, up to 2/η and holds it
there, for several learning rates η trained at once (fit_many), while a small enough η never gets there.

The network is theirs (locuslab/edge-of-stability, src/archs.py, ``make_one_layer_network``): 1 input, 100 tanh
units, no output bias; W1 Xavier-normal with gain 1.9, b1 = 0, W2 Xavier-normal. The data is their synthetic
Chebyshev set (src/synthetic.py), here 50 points evenly spaced on [-1, 1] labelled by the degree-4 Chebyshev
polynomial T4(x) = 8x⁴ - 8x² + 1 (their runs used 20), and the cost half the mean squared error. Float64, so that the
sharpness is exact to rounding.

    pip install '.[experiments]'                  # matplotlib
    python experiments/edge_of_stability.py       # prints a Markdown table, writes docs/figures/edge_of_stability.png
"""

import argparse
import math
from pathlib import Path

import matplotlib
import torch
from numpy.polynomial import chebyshev

from torch_shallow import ShallowNet, TrainConfig, fit_many
from torch_shallow.instruments import Sharpness

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

LRS = [0.01, 0.1, 0.2, 0.3]  # 2/η = 200, 20, 10, 6.7; the sharpness starts near 3.5
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "edge_of_stability.png"


def chebyshev_data(n: int = 50, degree: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """X (n, 1) evenly spaced on [-1, 1], Y (n, 1) the Chebyshev polynomial of the given degree at X."""
    X = torch.linspace(-1, 1, n, dtype=torch.float64)[:, None]
    return X, torch.from_numpy(chebyshev.chebval(X.numpy(), [0] * degree + [1]))


def cohen_network(seed: int = 0, hidden_bias: str = "zero") -> ShallowNet:
    """Their network, θ(0) drawn from ``seed``: W ~ N(0, (gain · √(2 / (fan_in + fan_out)))²), Xavier's normal rule,
    with gain 1.9 for W1 and 1 for W2; b1 zero (theirs), or ``"random"``, drawn from U(-1, 1)."""
    g = torch.Generator().manual_seed(seed)
    net = ShallowNet(1, 100, 1, "tanh", "identity", bias=(True, False), dtype=torch.float64)
    with torch.no_grad():
        net.W1.normal_(0, 1.9 * math.sqrt(2 / 101), generator=g)
        net.W2.normal_(0, math.sqrt(2 / 101), generator=g)
        net.b1.zero_() if hidden_bias == "zero" else net.b1.uniform_(-1, 1, generator=g)
    return net


def train(lrs: list[float], steps: int, every: int) -> tuple[list[int], torch.Tensor, list[list[float]]]:
    """(the steps t at which the sharpness was measured, the sharpness (T, K) there, each model's costs J(θ(t))),
    from one ``fit_many`` of every η with a ``Sharpness(every)`` callback, which measures at t = 0, every, 2·every..."""
    X, Y = chebyshev_data()
    models = [cohen_network() for _ in lrs]
    config = TrainConfig(max_epochs=steps, tol=0, progress=False)
    histories = fit_many(models, X, Y, config, lrs=lrs, callbacks=[Sharpness(every=every)])
    measured = [t for t, _ in histories[0].metrics["dynamics/sharpness"]]
    values = torch.tensor([[value for _, value in h.metrics["dynamics/sharpness"]] for h in histories]).T
    return measured, values, [h.costs for h in histories]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000, help="gradient steps (default: %(default)s)")
    parser.add_argument("--every", type=int, default=200, help="steps between measurements (default: %(default)s)")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="the PNG to write (default: %(default)s)")
    args = parser.parse_args()
    steps, S, costs = train(LRS, args.steps, args.every)
    print(
        f"Cohen et al.'s regression network, {args.steps:,} steps of gradient descent, sharpness every {args.every}\n"
    )
    print(
        "| η | 2/η | first step with sharpness ≥ 0.9 · 2/η | sharpness / (2/η) over the second half: min, mean, max "
        "| largest sharpness / (2/η) | final J |"
    )
    print("|---|---|---|---|---|---|")
    second_half = torch.tensor(steps) >= args.steps / 2
    for k, lr in enumerate(LRS):
        ratio = S[:, k] * lr / 2
        reached = [t for t, r in zip(steps, ratio.tolist()) if r >= 0.9]
        late = ratio[second_half]
        print(
            f"| {lr:g} | {2 / lr:.3g} | {reached[0] if reached else 'never'} | "
            f"{late.min():.4f}, {late.mean():.4f}, {late.max():.4f} | {ratio.max():.4f} | {costs[k][-1]:.3g} |"
        )
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for k, lr in enumerate(LRS):
        (line,) = ax.plot(steps, S[:, k], label=f"η = {lr:g}")
        ax.axhline(2 / lr, color=line.get_color(), linestyle="--", linewidth=1)
    ax.set(
        xlabel="step t",
        ylabel="sharpness λ_max(∇²J)",
        yscale="log",
        title="Edge of stability: sharpness (solid) and 2/η (dashed)",
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure)
    print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
