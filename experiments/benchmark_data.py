"""Benchmark of reading data: ``convert`` (csv_to_npy) of a 200,000 × 32 CSV file against pandas ``read_csv`` +
``np.save``, Arrow's CSV parser alone and the row-by-row reader that this one replaced; load_csv's peak memory; the
converted bytes compared with the old reader's, NumPy's ``loadtxt`` and the same data as Parquet. Prints Markdown
tables and the CPU.

    python experiments/benchmark_data.py            # 200,000 rows (about 3 minutes on 2 cores)
    python experiments/benchmark_data.py --quick    # 20,000 rows, a smoke test

pandas is a benchmark dependency only, from the ``experiments`` extra (``pip install '.[experiments]'``). The old
reader (csv.reader, then float() per cell, in Python) is taken from git at commit OLD_READER, so this script runs
in a clone of the repository. Times are medians of the runs, the methods taking turns, in this one process; memory
is measured in a process of its own per method: the peak resident memory (VmHWM, reset by writing 5 to
/proc/self/clear_refs) above what the process held before reading, against the float32 data, n × 33 × 4 bytes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv as arrow_csv

from torch_shallow.ondisk import csv_to_npy, parquet_to_npy

OLD_READER = "33b9631"  # the last commit whose data.py read CSV with csv.reader and float()
ROOT = Path(__file__).resolve().parent.parent
D = 32

PEAK = """
import importlib, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])  # where the old reader's package lies
method, path = sys.argv[1], sys.argv[2]
reader = importlib.import_module(method.rpartition(".")[0]) if method != "pandas" else importlib.import_module("pandas")

def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))

Path("/proc/self/clear_refs").write_text("5")
before = kib("VmRSS")
if method == "pandas":
    frame = reader.read_csv(path)
    X, y = frame.drop(columns="y").to_numpy("float32"), frame["y"].to_numpy("float32")
    del frame
else:
    X, Y = reader.load_csv(path)
print((kib("VmHWM") - before) / 1024)
"""


def write_csv(path: Path, n: int, seed: int = 0) -> None:
    """n rows of D standard normal features, each printed with the digits that float64 needs (as pandas'
    to_csv writes them), and a 0/1 label column "y" last."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, D)), rng.integers(0, 2, n)
    with path.open("w") as f:
        f.write(",".join([f"x{j}" for j in range(D)] + ["y"]) + "\n")
        f.writelines(",".join(map(repr, row)) + f",{label}\n" for row, label in zip(X.tolist(), y.tolist()))


def old_reader(directory: Path) -> str:
    """Import the old data.py and ondisk.py from git as package ``torch_shallow_old`` under ``directory``."""
    package = directory / "torch_shallow_old"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("data.py", "ondisk.py"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{OLD_READER}:torch_shallow/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (package / name).write_text(text)
    sys.path.insert(0, str(directory))
    return "torch_shallow_old"


def median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of each run, medians, after a warm-up run of each (which also brings the file into the
    page cache); the runs take turns, so that a slow spell of the machine hits all alike. CPU time is the process's,
    all its threads', so it shows the work done however many cores share it."""
    times = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            start, cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return {name: tuple(statistics.median(column) for column in zip(*t)) for name, t in times.items()}


def pandas_convert(path: Path, directory: Path) -> None:
    frame = pandas.read_csv(path)
    directory.mkdir(exist_ok=True)
    np.save(directory / "X.npy", frame.drop(columns="y").to_numpy(np.float32))
    np.save(directory / "Y.npy", frame["y"].to_numpy(np.float32))


def arrow_parse(path: Path) -> pa.Table:
    """The file parsed by Arrow alone, on one thread (as each of csv_to_npy's threads parses its blocks)."""
    names = [f"x{j}" for j in range(D)] + ["y"]
    return arrow_csv.read_csv(
        path,
        read_options=arrow_csv.ReadOptions(use_threads=False),
        convert_options=arrow_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()), null_values=[]),
    )


def peak_mib(method: str, path: Path, old_directory: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, method, str(path), str(old_directory)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[-1])


def same_bits(a: Path, b: Path) -> bool:
    """Whether the X.npy and Y.npy in directories a and b hold arrays of one dtype and shape, bit for bit (the
    headers may be padded differently)."""
    arrays = [(np.load(a / name), np.load(b / name)) for name in ("X.npy", "Y.npy")]
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in arrays)


def processor() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        "unknown",
    )
    return f"{model}, {os.cpu_count()} logical CPUs, pyarrow {pa.__version__}, pandas {pandas.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows instead of 200,000")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each method (default: %(default)s)")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "data.csv"
        write_csv(path, n)
        old = importlib.import_module(old_reader(tmp) + ".ondisk")
        data_mib = n * (D + 1) * 4 / 2**20
        print(f"CPU: {processor()}; load average before the runs: {os.getloadavg()[0]:.2f}\n")
        print(
            f"### Converting a {n:,} × {D} CSV file ({path.stat().st_size / 2**20:.0f} MiB) to .npy, float32 "
            f"(median seconds of {args.repeats} runs)\n"
        )
        seconds = median_seconds(
            {
                "torch_shallow `csv_to_npy` (`convert`)": lambda: csv_to_npy(path, tmp / "new"),
                "pandas `read_csv` + `np.save`": lambda: pandas_convert(path, tmp / "pandas"),
                "Arrow's parser alone, one thread, float64 columns, no checks": lambda: arrow_parse(path),
                "the old reader (csv.reader, float() per cell)": lambda: old.csv_to_npy(path, tmp / "old"),
            },
            args.repeats,
        )
        anchor, anchor_cpu = seconds["pandas `read_csv` + `np.save`"]
        print("| method | seconds | / pandas | CPU seconds | / pandas |\n|---|---|---|---|---|")
        for name, (wall, cpu) in seconds.items():
            print(f"| {name} | {wall:.3f} | {wall / anchor:.2f}× | {cpu:.3f} | {cpu / anchor_cpu:.2f}× |")

        print(
            f"\n### `load_csv`: peak memory above the process's before (MiB); the float32 data is {data_mib:.1f} MiB\n"
        )
        print("| method | MiB | / data |\n|---|---|---|")
        for name, method in (
            ("torch_shallow `load_csv`", "torch_shallow.data.load_csv"),
            ("the old `load_csv`", "torch_shallow_old.data.load_csv"),
            ("pandas `read_csv`, then float32 arrays", "pandas"),
        ):
            peak = peak_mib(method, path, tmp)
            print(f"| {name} | {peak:.1f} | {peak / data_mib:.2f}× |")

        oracle = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)  # independent, float64
        (tmp / "oracle").mkdir()
        np.save(tmp / "oracle" / "X.npy", oracle[:, :D].astype(np.float32))
        np.save(tmp / "oracle" / "Y.npy", oracle[:, D].astype(np.float32))
        names = [f"x{j}" for j in range(D)] + ["y"]
        pq.write_table(pa.table(dict(zip(names, oracle.T))), tmp / "data.parquet")
        start = time.perf_counter()
        parquet_to_npy(tmp / "data.parquet", tmp / "parquet")
        print(
            f"\n### The converted arrays, bit for bit (`parquet_to_npy` of the same float64 numbers as Parquet: "
            f"{time.perf_counter() - start:.3f} s)\n"
        )
        print("| compared with | X.npy and Y.npy |\n|---|---|")
        for name, other in (
            ("the old reader's", "old"),
            ("np.loadtxt (float64), cast to float32", "oracle"),
            ("`parquet_to_npy` of the same numbers", "parquet"),
            ("pandas' `read_csv`", "pandas"),
        ):
            print(f"| {name} | {'identical' if same_bits(tmp / 'new', tmp / other) else 'different'} |")


if __name__ == "__main__":
    main()
