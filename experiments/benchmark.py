"""Benchmark: this project's full-batch cost + gradient and training loop against plain PyTorch autograd, a NumPy
version of the slides' formulas, scikit-learn's MLPClassifier and the matrix-product floor. Prints Markdown tables.

    python experiments/benchmark.py            # every case (a few minutes on 2 cores)
    python experiments/benchmark.py --quick    # smaller n, for a smoke test
    python experiments/benchmark.py --only planar sweep   # some of the cases
    python experiments/benchmark.py --only logged-sweep --repeats 9   # what logging a 500-model sweep costs

Times are medians over repeats, measured in one run; ratios are anchor time / our time, so a ratio above 1 means
this project is faster (the floor column is our time / floor time). In the large cases each method runs in a process
of its own, which also gives its peak resident memory above the data. NumPy is a runtime dependency; scikit-learn
comes from the ``experiments`` extra (``pip install '.[experiments]'``).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from torch_shallow import ShallowNet, TrainConfig, fit, planar

LARGE_CASES = [(100_000, 20, 64), (1_000_000, 32, 128), (200_000, 100, 256)]  # (n, d, d1)


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each run, the runs taking turns so that a slow spell of the machine hits all alike.

    PyTorch's and NumPy's runs take turns only among themselves: NumPy's BLAS threads keep spinning for a while
    after each call, which would slow down whatever PyTorch runs next on the same cores.
    """
    torch_runs = {name: run for name, run in runs.items() if name not in NUMPY_METHODS}
    numpy_runs = {name: run for name, run in runs.items() if name in NUMPY_METHODS}
    return {**_taking_turns(torch_runs, repeats), **_taking_turns(numpy_runs, repeats)}


def _taking_turns(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up: first-call allocations and lazy initialisation
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def large_problem(n: int, d: int, d1: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    Y = (torch.rand(n, 1, generator=g) > 0.5).float()
    net = ShallowNet(d, d1)
    net.reset_parameters(g)
    return X, Y, net


# ---- the methods: each returns a function computing J and ∇J over all n samples --------------------------------


def ours(X, Y, net):
    params = list(net.parameters())
    return lambda: torch.autograd.grad(net.cost(X, Y), params)


def autograd(X, Y, net):
    params = list(net.parameters())

    def run():
        Z2 = F.linear(torch.sigmoid(F.linear(X, net.W1, net.b1)), net.W2, net.b2)
        J = F.binary_cross_entropy_with_logits(Z2, Y, reduction="sum") / X.shape[0]
        return torch.autograd.grad(J, params)

    return run


def numpy_gradient(X, Y, W1, b1, W2, b2):
    """J and (dW1, db1, dW2, db2) by the slides' formulas in NumPy, as in the classic course implementation."""
    n = X.shape[0]
    A1 = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    A2 = 1 / (1 + np.exp(-(A1 @ W2.T + b2)))
    J = -np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)) / n
    dZ2 = (A2 - Y) / n
    dZ1 = (dZ2 @ W2) * A1 * (1 - A1)
    return J, (dZ1.T @ X, dZ1.sum(0), dZ2.T @ A1, dZ2.sum(0))


def numpy_arrays(X, Y, net):
    return X.numpy(), Y.numpy(), [p.detach().numpy().copy() for p in net.parameters()]


def numpy_slides(X, Y, net):
    X, Y, theta = numpy_arrays(X, Y, net)
    return lambda: numpy_gradient(X, Y, *theta)


def floor(X, Y, net):
    """The two products that any exact full-batch gradient must compute, X W1ᵀ and dZ1ᵀ X, into buffers made
    beforehand, so that neither allocation nor first-touch page faults are timed."""
    n, d1 = X.shape[0], net.hidden_features
    W1, dZ1 = net.W1.detach(), torch.randn(n, d1)
    Z1, dW1 = torch.empty(n, d1), torch.empty(d1, X.shape[1])
    return lambda: (torch.mm(X, W1.T, out=Z1), torch.mm(dZ1.T, X, out=dW1))


METHODS = {"torch_shallow": ours, "autograd": autograd, "numpy": numpy_slides, "matmul floor": floor}
NUMPY_METHODS = {"numpy", "scikit-learn", "numpy, one model"}


def measure(method: str, n: int, d: int, d1: int, repeats: int) -> tuple[float, float]:
    """Median seconds and peak memory (MiB) of one cost + gradient by ``method``, in a process of its own.

    A fresh process per method keeps one method's large allocations and frees, and the page faults they bring,
    out of another's timings. The peak is that of the first run, above what the process held with the data:
    writing 5 to /proc/self/clear_refs (Linux) resets the peak (VmHWM) to the current resident size.
    """
    code = (
        f"import benchmark as b, statistics, time, torch; torch.set_num_threads({torch.get_num_threads()}); "
        f"X, Y, net = b.large_problem({n}, {d}, {d1}); run = b.METHODS[{method!r}](X, Y, net); "
        "open('/proc/self/clear_refs', 'w').write('5'); before = b.status_kib('VmRSS'); run(); "
        "peak = (b.status_kib('VmHWM') - before) / 1024; times = []\n"
        f"for _ in range({repeats}):\n"
        "    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)\n"
        "print(statistics.median(times), peak)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    seconds, peak = out.stdout.split()[-2:]
    return float(seconds), float(peak)


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def large_cases(cases, repeats: int) -> None:
    print("\n### Cost + gradient over all n samples, float32 (median seconds; ratio = anchor / torch_shallow)\n")
    print(
        "| n × d, d1 | torch_shallow | autograd | numpy | matmul floor | vs autograd | vs numpy | / floor |"
        " memory: ours | memory: autograd |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, d, d1 in cases:
        t, mem = {}, {}
        for name in METHODS:
            t[name], mem[name] = measure(name, n, d, d1, repeats)
        print(
            f"| {n:,} × {d}, {d1} | {t['torch_shallow']:.3f} | {t['autograd']:.3f} | {t['numpy']:.3f} | "
            f"{t['matmul floor']:.3f} | {t['autograd'] / t['torch_shallow']:.2f}× | "
            f"{t['numpy'] / t['torch_shallow']:.2f}× | {t['torch_shallow'] / t['matmul floor']:.2f}× | "
            f"{mem['torch_shallow']:.0f} MiB | {mem['autograd']:.0f} MiB |",
            flush=True,
        )


# ---- the planar training loop ----------------------------------------------------------------------------------


def planar_loops(epochs: int):
    X, Y = planar()

    def seeded_net():
        net = ShallowNet(2, 4)
        net.reset_parameters(torch.Generator().manual_seed(0))
        return net

    def ours_loop():
        fit(seeded_net(), X, Y, TrainConfig(lr=1.2, max_epochs=epochs, tol=0, progress=False))

    def autograd_loop():
        net = seeded_net()
        opt = torch.optim.SGD(net.parameters(), lr=1.2)
        for _ in range(epochs):
            opt.zero_grad()
            Z2 = F.linear(torch.sigmoid(F.linear(X, net.W1, net.b1)), net.W2, net.b2)
            (F.binary_cross_entropy_with_logits(Z2, Y, reduction="sum") / X.shape[0]).backward()
            opt.step()

    def numpy_loop():
        Xn, Yn, theta = numpy_arrays(X, Y, seeded_net())
        for _ in range(epochs):
            _, grads = numpy_gradient(Xn, Yn, *theta)
            for p, g in zip(theta, grads):
                p -= 1.2 * g

    loops = {"torch_shallow": ours_loop, "autograd": autograd_loop, "numpy": numpy_loop}
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # max_iter is the point here

        def sklearn_loop():
            MLPClassifier(
                hidden_layer_sizes=(4,),
                activation="logistic",
                solver="sgd",
                batch_size=len(X),
                learning_rate_init=1.2,
                momentum=0,
                nesterovs_momentum=False,
                alpha=0,
                shuffle=False,
                max_iter=epochs,
                tol=0,
                n_iter_no_change=epochs + 1,
                random_state=0,
            ).fit(X.numpy(), Y.numpy().ravel())

        loops["scikit-learn"] = sklearn_loop
    except ImportError:
        print("(scikit-learn is not installed: pip install '.[experiments]' adds it)")
    return loops


def planar_case(epochs: int, repeats: int) -> dict[str, float]:
    """The planar loops' µs per epoch, printed, and returned for the sweep's comparison."""
    loops = planar_loops(epochs)
    t = {name: seconds / epochs * 1e6 for name, seconds in median_seconds(loops, repeats).items()}
    print(f"\n### Planar training loop: n = 400, d1 = 4, {epochs:,} epochs, float32 (median µs per epoch)\n")
    print("| method | µs / epoch | ratio to torch_shallow |")
    print("|---|---|---|")
    for name, us in t.items():
        print(f"| {name} | {us:.1f} | {us / t['torch_shallow']:.2f} |")
    return t


# ---- many models at once, and the cost of logging -----------------------------------------------------------------

SWEEP_MODELS = 64


def sweep_case(epochs: int, repeats: int, single: dict[str, float], logged_epochs: int) -> None:
    """64 planar models (d1 = 4, seeds 0-63) trained by fit_many, per model-epoch, beside one model's epoch in
    NumPy, scikit-learn and fit (``single``, measured in the same run); and fit with the defaults
    (``TrainConfig()``: 10,000 epochs, a run directory, ``log_every`` keeping ~1,000 points, a dashboard every
    1,000 epochs) beside the same fit unlogged, ``logged_epochs`` epochs each."""
    import tempfile

    from torch_shallow import fit_many

    X, Y = planar()

    def nets():
        out = []
        for seed in range(SWEEP_MODELS):
            net = ShallowNet(2, 4)
            net.reset_parameters(torch.Generator().manual_seed(seed))
            out.append(net)
        return out

    def sweep():
        fit_many(nets(), X, Y, TrainConfig(lr=1.2, max_epochs=epochs, tol=0, progress=False))

    with tempfile.TemporaryDirectory() as root:
        runs = iter(range(10**6))

        def defaults(**changes):
            history = fit(nets()[0], X, Y, TrainConfig(max_epochs=logged_epochs, progress=False, **changes))
            assert history.epochs == logged_epochs, "the run converged early; the ratio would not be per epoch"

        def logged():
            defaults(log_dir=Path(root) / str(next(runs)))

        t = median_seconds({"sweep": sweep, "logged": logged, "unlogged": defaults}, repeats)
    per_model = t["sweep"] / epochs / SWEEP_MODELS * 1e6
    print(
        f"\n### {SWEEP_MODELS} planar models at once (fit_many), {epochs:,} epochs, float32 "
        "(median µs per model-epoch)\n"
    )
    print("| method | µs per model-epoch | fit_many's share of it |")
    print("|---|---|---|")
    print(f"| fit_many, {SWEEP_MODELS} models | {per_model:.2f} | 1.00 |")
    for name, label in (
        ("numpy", "NumPy, one model"),
        ("scikit-learn", "scikit-learn, one model"),
        ("torch_shallow", f"fit, one model ({SWEEP_MODELS} in sequence)"),
    ):
        if name in single:
            print(f"| {label} | {single[name]:.1f} | {per_model / single[name]:.3f} |")
    print(f"\n{SWEEP_MODELS} sequential fits over fit_many: {single['torch_shallow'] / per_model:.1f}×\n")
    but = "" if logged_epochs == TrainConfig().max_epochs else f" but {logged_epochs:,} epochs"
    print(f"| fit on the planar data, the defaults{but} | µs / epoch | ratio to unlogged |")
    print("|---|---|---|")
    for name in ("unlogged", "logged"):
        print(
            f"| {name}{' (TensorBoard)' if name == 'logged' else ''} | {t[name] / logged_epochs * 1e6:.1f} | "
            f"{t[name] / t['unlogged']:.2f} |"
        )


LOGGED_SWEEP_MODELS = 500


def logged_sweep_case(epochs: list[int], repeats: int) -> None:
    """500 planar models (hidden sizes 1-5, a seed each) trained at once by fit_many, logged with the defaults (a
    TensorBoard run per model: scalars at about 1,000 points, the dashboards of the 8 best at the end) beside the
    same unlogged, for each number of ``epochs``; float32, the runs taking turns.

    The run directories are deleted at the end only: deleting thousands of directories makes the file system's next
    ones slow for seconds (ext4 with discard), which a real sweep, writing into a directory of its own, never meets.
    """
    import shutil
    import tempfile

    from torch_shallow import fit_many

    X, Y = planar()

    def nets():
        out = []
        for seed in range(LOGGED_SWEEP_MODELS):
            net = ShallowNet(2, 1 + seed % 5)
            net.reset_parameters(torch.Generator().manual_seed(seed))
            out.append(net)
        return out

    print(f"\n### {LOGGED_SWEEP_MODELS} planar models at once (fit_many, hidden sizes 1-5), logged and unlogged\n")
    print("| epochs | unlogged, s | logged, s | logged / unlogged |")
    print("|---|---|---|---|")
    root = tempfile.mkdtemp(prefix="torch_shallow-benchmark-")
    runs = iter(range(10**6))
    try:
        for count in epochs:
            fresh = iter([nets() for _ in range(2 * (repeats + 1))])  # made before: fit_many's time alone

            def sweep(log_dir=None, count=count, fresh=fresh):
                config = TrainConfig(max_epochs=count, tol=0, log_dir=log_dir, progress=False, compile=False)
                fit_many(next(fresh), X, Y, config)

            def logged(sweep=sweep):
                sweep(Path(root) / str(next(runs)))

            t = median_seconds({"unlogged": sweep, "logged": logged}, repeats)
            print(f"| {count:,} | {t['unlogged']:.3f} | {t['logged']:.3f} | {t['logged'] / t['unlogged']:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- compiled chunks of epochs, against JAX -----------------------------------------------------------------------

MIXED_SIZES = [h for h in range(1, 9) for _ in range(8)]  # hidden sizes 1-8, 8 seeds each: 64 models


def planar_nets(sizes: list[int]) -> list[ShallowNet]:
    nets = []
    for seed, d1 in enumerate(sizes):
        net = ShallowNet(2, d1)
        net.reset_parameters(torch.Generator().manual_seed(seed))
        nets.append(net)
    return nets


def padded(nets: list[ShallowNet]) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The nets' parameters along a leading model axis, zero-padded to the largest hidden size, and the unit mask."""
    d1 = max(m.hidden_features for m in nets)
    params = [
        torch.zeros(len(nets), d1, 2),
        torch.zeros(len(nets), d1),
        torch.zeros(len(nets), 1, d1),
        torch.zeros(len(nets), 1),
    ]
    mask = torch.zeros(len(nets), 1, d1)
    for k, m in enumerate(nets):
        h = m.hidden_features
        params[0][k, :h], params[1][k, :h], params[2][k, :, :h], params[3][k] = m.W1, m.b1, m.W2, m.b2
        mask[k, :, :h] = 1
    return params, None if (mask == 1).all() else mask


def chunked(X, Y, params, activation, unit_mask, epochs: int, chunk: int | None = None) -> Callable[[], object]:
    """A training run of ``epochs`` epochs in compiled chunks (of ``chunk`` epochs, or all at once), from ``params``."""
    from torch_shallow.compiled import Chunks, ChunkState

    K = sum(W1.shape[0] if W1.dim() == 3 else 1 for W1 in params[::4])

    def run():
        state = ChunkState.start([p.clone() for p in params])
        chunks = Chunks(X, Y, state, [1.2] * K, activation=activation, unit_mask=unit_mask, tol=0.0)
        for t in range(0, epochs, chunk or epochs):
            chunks(t, min(chunk or epochs, epochs - t))

    return run


def jax_loops(X, Y, single: ShallowNet, stack: list[ShallowNet], epochs: int) -> dict[str, Callable[[], object]]:
    """JAX's jit(fori_loop) of the slides' formulas, written out by hand as in numpy_gradient, for one model and
    vmap'ed over the stack's models; each epoch records J, as the compiled chunks do. The first call compiles."""
    import jax
    import jax.numpy as jnp

    X, Y, n = jnp.asarray(X.numpy()), jnp.asarray(Y.numpy()), X.shape[0]

    def epoch(theta):
        W1, b1, W2, b2 = theta
        A1 = jax.nn.sigmoid(X @ W1.T + b1)
        Z2 = A1 @ W2.T + b2
        J = jnp.sum(jax.nn.softplus(Z2) - Y * Z2) / n
        dZ2 = (jax.nn.sigmoid(Z2) - Y) / n
        dZ1 = (dZ2 @ W2) * A1 * (1 - A1)
        gradients = (dZ1.T @ X, dZ1.sum(0), dZ2.T @ A1, dZ2.sum(0))
        return J, tuple(p - 1.2 * g for p, g in zip(theta, gradients))

    def training(step, theta, costs):
        def body(t, carried):
            theta, costs = carried
            J, theta = step(theta)
            return theta, costs.at[t].set(J)

        return jax.jit(lambda theta: jax.lax.fori_loop(0, epochs, body, (theta, costs)))

    def arrays(nets):
        return tuple(
            jnp.stack([jnp.asarray(getattr(m, name).detach().numpy()) for m in nets])
            for name in ("W1", "b1", "W2", "b2")
        )

    one = tuple(a[0] for a in arrays([single]))
    many = arrays(stack)
    train_one = training(epoch, one, jnp.zeros(epochs))
    train_many = training(jax.vmap(epoch), many, jnp.zeros((epochs, len(stack))))
    return {
        "jax, one model": lambda: jax.block_until_ready(train_one(one)),
        "jax, 64 models": lambda: jax.block_until_ready(train_many(many)),
    }


def compile_seconds(case: str, cache: str) -> float:
    """Seconds to the end of the first compiled epoch of ``case`` in a fresh process whose Inductor caches are in
    ``cache``: a first compile where the directory is empty, a cached one after."""
    code = (
        "import time, benchmark as b; from torch_shallow import planar; X, Y = planar()\n"
        f"run = b.COMPILE_CASES[{case!r}](X, Y); start = time.perf_counter(); run(); print(time.perf_counter() - start)"
    )
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent, env=env
    )
    return float(out.stdout.split()[-1])


def _grouped(X, Y, sizes):
    from torch_shallow.compiled import stacks_by_size

    params, activations, _ = stacks_by_size(planar_nets(sizes))
    return chunked(X, Y, params, activations, [None] * len(activations), 1)


COMPILE_CASES = {
    "one model": lambda X, Y: chunked(X, Y, [p.detach() for p in planar_nets([4])[0].parameters()], "sigmoid", None, 1),
    "64 models": lambda X, Y: chunked(X, Y, padded(planar_nets([4] * SWEEP_MODELS))[0], "sigmoid", None, 1),
    "sizes 1-8, grouped": lambda X, Y: _grouped(X, Y, MIXED_SIZES),
}


def compiled_case(epochs: int, repeats: int) -> None:
    """Compiled chunks (torch_shallow.compiled) against the eager loop, NumPy and JAX on the planar data, float32."""
    from torch_shallow import fit_many
    from torch_shallow.compiled import stacks_by_size

    X, Y = planar()
    single, stack, mixed = planar_nets([4])[0], planar_nets([4] * SWEEP_MODELS), planar_nets(MIXED_SIZES)
    config = TrainConfig(lr=1.2, max_epochs=epochs, tol=0, progress=False)

    def eager(nets):
        return lambda: fit_many([copy.deepcopy(m) for m in nets], X, Y, config)

    grouped, activations, _ = stacks_by_size(mixed)
    runs = {
        "numpy, one model": planar_loops(epochs)["numpy"],
        "fit, one model": lambda: fit(copy.deepcopy(single), X, Y, config),
        "compiled, one model": chunked(X, Y, [p.detach() for p in single.parameters()], "sigmoid", None, epochs),
        "compiled, one model, chunks of 10": chunked(
            X, Y, [p.detach() for p in single.parameters()], "sigmoid", None, epochs, 10
        ),
        "fit_many, 64 models": eager(stack),
        "compiled, 64 models": chunked(X, Y, padded(stack)[0], "sigmoid", None, epochs),
        "fit_many, sizes 1-8": eager(mixed),
        "compiled, sizes 1-8, padded": chunked(X, Y, *padded(mixed)[:1], "sigmoid", padded(mixed)[1], epochs),
        "compiled, sizes 1-8, grouped by size": chunked(X, Y, grouped, activations, [None] * len(activations), epochs),
    }
    try:
        start = time.perf_counter()
        jax_runs = jax_loops(X, Y, single, stack, epochs)
        for run in jax_runs.values():
            run()
        jax_compile = time.perf_counter() - start
        runs.update(jax_runs)
    except ImportError:
        print("(JAX is not installed: pip install '.[experiments]' adds it)")
    t = median_seconds(runs, repeats)  # its warm-up compiles the chunks
    models = {name: 1 if "one model" in name else SWEEP_MODELS for name in runs}
    us = {name: t[name] / epochs / models[name] * 1e6 for name in runs}
    numpy_us = us["numpy, one model"]
    print(f"\n### Compiled chunks of epochs: planar data, {epochs:,} epochs, float32 (median µs per model-epoch)\n")
    print("| method | µs per model-epoch | / NumPy's one-model epoch | / JAX's |")
    print("|---|---|---|---|")
    for name in runs:
        anchor = "jax, one model" if models[name] == 1 else "jax, 64 models"
        versus = f"{us[name] / us[anchor]:.2f}" if anchor in us and "sizes" not in name else ""
        print(f"| {name} | {us[name]:.2f} | {us[name] / numpy_us:.3f} | {versus} |")
    print("\n| compile (seconds to the first epoch, in a fresh process) | first | cached |")
    print("|---|---|---|")
    import tempfile

    for case in COMPILE_CASES:
        with tempfile.TemporaryDirectory() as cache:
            first, cached = compile_seconds(case, cache), compile_seconds(case, cache)
        print(f"| compiled, {case} | {first:.1f} | {cached:.1f} |")
    if "jax, one model" in runs:
        print(f"| JAX, one model and 64 (jit, in this process) | {jax_compile:.1f} | |")


# ---- scaling out: the same full-batch training in 1 and 2 processes ------------------------------------------

SCALING_CASE = (1_000_000, 32, 128)  # n, d, d1


def scaling_worker(directory: str, epochs: int) -> None:
    """Run by torchrun: each rank trains on its shard of the on-disk data; rank 0 prints the seconds per epoch."""
    from torch_shallow.distributed import init_from_environment, shard, world
    from torch_shallow.ondisk import open_npy

    init_from_environment(torch.device("cpu"), timeout_s=300)
    rank, size = world()
    n = np.load(Path(directory) / "X.npy", mmap_mode="r").shape[0]
    X, Y = open_npy(directory, shard(n, rank, size))
    net = ShallowNet(SCALING_CASE[1], SCALING_CASE[2])
    net.reset_parameters(torch.Generator().manual_seed(0))
    config = TrainConfig(lr=0.1, max_epochs=1, tol=0, progress=False)
    fit(net, X, Y, config)  # warm-up: thread pools, page cache
    start = time.perf_counter()
    fit(net, X, Y, TrainConfig(lr=0.1, max_epochs=epochs, tol=0, progress=False))
    if rank == 0:
        print((time.perf_counter() - start) / epochs)
    if size > 1:
        torch.distributed.barrier()  # no rank tears the group down while another still uses it
        torch.distributed.destroy_process_group()


def scaling_case(epochs: int) -> None:
    import tempfile

    n, d, _ = SCALING_CASE
    with tempfile.TemporaryDirectory() as directory:
        rng = np.random.default_rng(0)
        np.save(Path(directory) / "X.npy", rng.standard_normal((n, d), dtype=np.float32))
        np.save(Path(directory) / "Y.npy", (rng.random(n) > 0.5).astype(np.float32))
        seconds = {}
        for processes in (1, 2):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    f"--nproc-per-node={processes}",
                    __file__,
                    "--scaling-worker",
                    directory,
                    str(epochs),
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"torchrun with {processes} processes failed:\n{out.stderr[-3000:]}")
            seconds[processes] = float(out.stdout.split()[-1])
    print(f"\n### Scaling out: full-batch epochs on on-disk data, {n:,} × {d}, d1 = {SCALING_CASE[2]}, float32\n")
    print("| processes (torchrun, gloo) | seconds / epoch | speed-up |")
    print("|---|---|---|")
    for processes, s in seconds.items():
        print(f"| {processes} | {s:.3f} | {seconds[1] / s:.2f}× |")


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` gives it, for the tables' readers: timings differ between machines."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n / 20 and fewer repeats, as a smoke test")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per method (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice, one per core)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["planar", "sweep", "logged-sweep", "compiled", "large", "scaling"],
        help="run these cases only (sweep implies planar, which it is compared with)",
    )
    parser.add_argument("--scaling-worker", nargs=2, metavar=("DIR", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scaling_worker:
        scaling_worker(args.scaling_worker[0], int(args.scaling_worker[1]))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [(n // 20, d, d1) for n, d, d1 in LARGE_CASES] if args.quick else LARGE_CASES
    repeats = 2 if args.quick else args.repeats
    print(
        f"Machine: {cpu_model()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
    )
    only = set(args.only or ["planar", "sweep", "logged-sweep", "compiled", "large", "scaling"])
    if only & {"planar", "sweep"}:
        single = planar_case(1_000 if args.quick else 10_000, repeats)
    if "sweep" in only:
        sweep_case(300 if args.quick else 3_000, repeats, single, 1_000 if args.quick else TrainConfig().max_epochs)
    if "logged-sweep" in only:
        logged_sweep_case([20] if args.quick else [20, 200], repeats)
    if "compiled" in only:
        compiled_case(300 if args.quick else 3_000, repeats)
    if "large" in only:
        large_cases(cases, repeats)
    if "scaling" in only:
        scaling_case(2 if args.quick else 10)


if __name__ == "__main__":
    main()
