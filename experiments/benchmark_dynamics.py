"""What measuring the sharpness costs: on the planar data (400 × 2, 4 sigmoid units), the top Hessian eigenvalue every
100 epochs of a 10,000-epoch fit, against the fit itself; and one Lanczos run for a stack of 64 models, per model,
against one model's, both as a Sharpness callback runs them inside the training loop (one thread for data this
small, the data checked once). Ratios against anchors measured in the same run.

    python experiments/benchmark_dynamics.py
"""

import copy
import platform
import time

import torch

from torch_shallow import ShallowNet, TrainConfig, fit, fit_many, planar
from torch_shallow.dynamics import sharpness
from torch_shallow.parallel import threads_for_training


def best_of(repeats: int, run) -> float:
    """The least wall time of ``repeats`` calls of ``run``, in seconds: the one least disturbed by the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def sharpness_cost(epochs: int = 10_000, every: int = 100, stack: int = 64, repeats: int = 3) -> dict[str, float]:
    """Seconds of the fit, of its sharpness measurements, and of a stack's; and the ratios the targets are set in."""
    X, Y = planar()  # Y (n, 1) in X's dtype, as a training loop hands the checked data to its callbacks
    net = ShallowNet(2, 4)
    net.reset_parameters(torch.Generator().manual_seed(0))
    start = copy.deepcopy(net)
    segment = TrainConfig(max_epochs=every, tol=0, progress=False)
    snapshots = []  # θ at every measurement of a Sharpness(every) callback
    for _ in range(epochs // every):
        fit(net, X, Y, segment)
        snapshots.append(copy.deepcopy(net))
    config = TrainConfig(max_epochs=epochs, tol=0, progress=False)
    seconds_fit = best_of(repeats, lambda: fit(copy.deepcopy(start), X, Y, config))

    def measure_all() -> None:
        with threads_for_training(X, net.hidden_features):  # as inside fit's loop
            for m in snapshots:
                sharpness(m, X, Y, check_inputs=False)

    seconds_measured = best_of(repeats, measure_all)

    models = []
    for seed in range(stack):
        model = ShallowNet(2, 4)
        model.reset_parameters(torch.Generator().manual_seed(seed))
        models.append(model)
    fit_many(models, X, Y, TrainConfig(max_epochs=1000, tol=0, progress=False))
    one = best_of(repeats, lambda: [sharpness(m, X, Y, check_inputs=False) for m in models[:8]]) / 8
    stacked = best_of(repeats, lambda: sharpness(models, X, Y, check_inputs=False))
    return {
        "fit": seconds_fit,
        "sharpness": seconds_measured,
        "added": seconds_measured / seconds_fit,
        "one model": one,
        "stack": stacked,
        "stack per model / one": stacked / stack / one,
    }


def main() -> None:
    result = sharpness_cost()
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n"
    )
    print("| what | seconds | ratio |\n|---|---|---|")
    print(f"| planar fit, 10,000 epochs | {result['fit']:.3f} | 1 |")
    print(f"| its sharpness every 100 epochs (100 Lanczos runs) | {result['sharpness']:.3f} | {result['added']:.2f} |")
    print(f"| sharpness of one model | {result['one model'] * 1e3:.2f} ms | 1 |")
    print(
        f"| sharpness of a stack of 64, per model | {result['stack'] / 64 * 1e3:.3f} ms | "
        f"{result['stack per model / one']:.3f} |"
    )


if __name__ == "__main__":
    main()
