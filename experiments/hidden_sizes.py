"""The hidden-layer-size study of the deeplearning.ai course on the planar data, with tanh (the course) and sigmoid
(the slides) hidden units: lr 1.2, 5,000 epochs, W ~ 0.01 N(0, 1) and zero biases, d1 in 1, 2, 3, 4, 5, 20, 50, for
the course's seed 2 and four more, all 70 models trained at once as one sweep (fit_many).

    python experiments/hidden_sizes.py                   # prints a Markdown table; one TensorBoard run per model
    tensorboard --logdir runs                            # HParams tab: the settings side by side
"""

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from torch_shallow import ShallowNet, TrainConfig, default_run_dir, fit_many, planar

SIZES = [1, 2, 3, 4, 5, 20, 50]
SEEDS = [2, 3, 4, 5, 6]  # 2 is the course's
COURSE_TANH = {1: 67.5, 2: 67.25, 3: 90.75, 4: 90.5, 5: 91.25, 20: 90.0, 50: 90.25}  # training accuracy, %


def course_init(net: ShallowNet, seed: int) -> ShallowNet:
    """The course's ``initialize_parameters``: NumPy's legacy generator (the course seeds it with 2), W1 then W2
    drawn as 0.01 × randn, biases zero; so that with seed 2 every hidden size starts from the course's numbers."""
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        net.W1.copy_(torch.from_numpy(rng.randn(*net.W1.shape) * 0.01))
        net.W2.copy_(torch.from_numpy(rng.randn(*net.W2.shape) * 0.01))
        net.b1.zero_()
        net.b2.zero_()
    return net


def study(
    activations: list[str], sizes: list[int], seeds: list[int], epochs: int, root: Path
) -> dict[tuple[str, int, int], float]:
    """Training accuracy, %, of every (activation, d1, seed), trained together in one stack."""
    X, Y = planar(dtype=torch.float64)  # float64, as the course's NumPy code
    grid = [(a, d1, seed) for a in activations for d1 in sizes for seed in seeds]
    nets = [course_init(ShallowNet(2, d1, activation=a, dtype=torch.float64), seed) for a, d1, seed in grid]
    config = TrainConfig(lr=1.2, max_epochs=epochs, tol=0, log_dir=root, dashboard_every=epochs)
    hparams = [{"dataset": "planar", "init": "course: 0.01 N(0, 1)", "seed": seed} for *_, seed in grid]
    histories = fit_many(nets, X, Y, config, hparams=hparams, run_names=[f"{a}-d1_{d1}-s{s}" for a, d1, s in grid])
    return {key: 100 * h.train_accuracy for key, h in zip(grid, histories)}


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5000, help="epochs per setting (default: %(default)s)")
    parser.add_argument("--log-root", help="parent of the runs (default: runs/hidden_sizes-<timestamp>)")
    args = parser.parse_args()
    root = default_run_dir("hidden_sizes") if args.log_root is None else Path(args.log_root)
    accuracy = study(["tanh", "sigmoid"], SIZES, SEEDS, args.epochs, root)
    print(
        f"Training accuracy (%) on the planar data after {args.epochs:,} epochs; seed 2 is the course's, "
        f"mean ± standard deviation over seeds {', '.join(map(str, SEEDS))}\n"
    )
    print("| d1 | course, tanh | tanh, seed 2 | tanh, 5 seeds | sigmoid, seed 2 | sigmoid, 5 seeds |")
    print("|---|---|---|---|---|---|")
    for d1 in SIZES:
        cells = [
            f"{accuracy[a, d1, 2]:.2f} | {spread([accuracy[a, d1, s] for s in SEEDS])}" for a in ("tanh", "sigmoid")
        ]
        print(f"| {d1} | {COURSE_TANH[d1]:.2f} | {cells[0]} | {cells[1]} |")
    print(f"\nTensorBoard: tensorboard --logdir {root}")


if __name__ == "__main__":
    main()
