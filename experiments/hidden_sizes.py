"""The hidden-layer-size study of the deeplearning.ai course on the planar data, with tanh (the course) and sigmoid
(the slides) hidden units: lr 1.2, 5,000 epochs, W ~ 0.01 N(0, 1) and zero biases, d1 in 1, 2, 3, 4, 5, 20, 50.

    python experiments/hidden_sizes.py                   # prints a Markdown table; one TensorBoard run per setting
    tensorboard --logdir runs                            # HParams tab: the settings side by side
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from torch_shallow import ShallowNet, TrainConfig, default_run_dir, fit, planar

SIZES = [1, 2, 3, 4, 5, 20, 50]
COURSE_TANH = {1: 67.5, 2: 67.25, 3: 90.75, 4: 90.5, 5: 91.25, 20: 90.0, 50: 90.25}  # training accuracy, %


def course_init(net: ShallowNet) -> None:
    """The course's ``initialize_parameters``: NumPy's legacy generator seeded with 2, W1 then W2 drawn as
    0.01 × randn, biases zero; so every hidden size starts from the course's own numbers."""
    rng = np.random.RandomState(2)
    with torch.no_grad():
        net.W1.copy_(torch.from_numpy(rng.randn(*net.W1.shape) * 0.01))
        net.W2.copy_(torch.from_numpy(rng.randn(*net.W2.shape) * 0.01))
        net.b1.zero_()
        net.b2.zero_()


def study(activations: list[str], sizes: list[int], epochs: int, root) -> dict[tuple[str, int], float]:
    X, Y = planar(dtype=torch.float64)  # float64, as the course's NumPy code
    accuracy = {}
    for activation in activations:
        for d1 in sizes:
            net = ShallowNet(2, d1, activation=activation, dtype=torch.float64)
            course_init(net)
            config = TrainConfig(lr=1.2, max_epochs=epochs, tol=0, log_dir=root / f"{activation}-d1_{d1}",
                                 log_every=10, dashboard_every=epochs)
            history = fit(net, X, Y, config, hparams={"dataset": "planar", "init": "course: 0.01 N(0, 1), seed 2"})
            accuracy[activation, d1] = 100 * history.train_accuracy
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5000, help="epochs per setting (default: %(default)s)")
    parser.add_argument("--log-root", help="parent of the runs (default: runs/hidden_sizes-<timestamp>)")
    args = parser.parse_args()
    root = default_run_dir("hidden_sizes") if args.log_root is None else Path(args.log_root)
    accuracy = study(["tanh", "sigmoid"], SIZES, args.epochs, root)
    print(f"Training accuracy (%) on the planar data after {args.epochs:,} epochs\n")
    print("| d1 | course, tanh | torch_shallow, tanh | torch_shallow, sigmoid |")
    print("|---|---|---|---|")
    for d1 in SIZES:
        print(f"| {d1} | {COURSE_TANH[d1]:.2f} | {accuracy['tanh', d1]:.2f} | {accuracy['sigmoid', d1]:.2f} |")
    print(f"\nTensorBoard: tensorboard --logdir {root}")


if __name__ == "__main__":
    main()
