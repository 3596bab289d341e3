"""Benchmark of reading data: ``convert`` (csv_to_npy) of a 200,000 × 32 CSV file against pandas ``read_csv`` +
``np.save``, Arrow's CSV parser alone and the row-by-row reader that this one replaced; load_csv's peak memory; the
converted bytes compared with the old reader's, NumPy's ``loadtxt`` and the same data as Parquet; the data
fingerprint of a 1 GiB .npy file against reading it; an epoch's reading of a Parquet file in 1-row row groups
against the same rows in one row group. Prints Markdown tables and the CPU.

    python experiments/benchmark_data.py            # 200,000 rows, 1 GiB of .npy (about 5 minutes on 2 cores)
    python experiments/benchmark_data.py --quick    # 20,000 rows, 64 MiB of .npy, a smoke test

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

from torch_shallow.fingerprint import Fingerprint
from torch_shallow.ondisk import NpyRows, csv_to_npy, parquet_to_npy
from torch_shallow.parquet import ParquetRows

OLD_READER = "33b9631"  # the last commit whose data.py read CSV with csv.reader and float()
OLD_FINGERPRINT = "41ecf1c"  # the last commit whose fingerprint summed SplitMix hashes with torch on whole blocks
OLD_PARQUET = "0a6864c"  # the last commit whose ParquetRows opened the file for each row group it read
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
    return old_modules(directory, "torch_shallow_old", OLD_READER, ("data.py", "ondisk.py"))


def old_modules(directory: Path, package: str, commit: str, names: tuple[str, ...]) -> str:
    """Files ``names`` of torch_shallow at ``commit``, from git, as package ``package`` under ``directory``."""
    (directory / package).mkdir()
    (directory / package / "__init__.py").write_text("")
    for name in names:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:torch_shallow/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (directory / package / name).write_text(text)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    return package


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


def fingerprint_rates(directory: Path, mib: int, repeats: int) -> None:
    """MB/s of the data fingerprint of a (n, 64) float32 X.npy of ``mib`` MiB, read by NpyRows in blocks of 4 MiB
    as ``fit`` reads it, against reading alone, and of the old fingerprint on a sixteenth of it (it is slow)."""
    old = importlib.import_module(
        old_modules(directory, "torch_shallow_fp_old", OLD_FINGERPRINT, ("fingerprint.py", "distributed.py"))
        + ".fingerprint"
    )
    width, block = 64, (4 << 20) // 256
    n = (mib << 20) // (width * 4)
    X = np.lib.format.open_memmap(directory / "X.npy", mode="w+", dtype=np.float32, shape=(n, width))
    for start in range(0, n, 1 << 16):
        X[start : start + (1 << 16)] = np.random.default_rng(start).standard_normal((min(1 << 16, n - start), width))
    X.flush()
    del X
    rows = NpyRows(directory / "X.npy")

    def sweep(fingerprint: type | None, stop: int = n) -> None:
        hashes = fingerprint() if fingerprint is not None else None
        for start in range(0, stop, block):
            part = rows[start : min(start + block, stop)]
            if hashes is not None:
                hashes.update("X", part, start)

    blocks = [rows[start : start + block] for start in range(0, min(n, (256 << 20) // (width * 4)), block)]

    def in_memory() -> None:
        hashes = Fingerprint()
        for k, part in enumerate(blocks):
            hashes.update("X", part, k * block)

    seconds = median_seconds(
        {"reading alone": lambda: sweep(None), "reading + fingerprint": lambda: sweep(Fingerprint)}, repeats
    )
    memory_seconds = median_seconds({"memory": in_memory}, repeats)["memory"][0] * n / sum(map(len, blocks))
    old_seconds = median_seconds({"old": lambda: sweep(old.Fingerprint, n // 16)}, 1)["old"][0] * 16
    megabytes = n * width * 4 / 1e6
    print(f"\n### The data fingerprint of a {megabytes:,.0f} MB .npy file, in the page cache (median of {repeats})\n")
    print("| what | seconds | MB/s |\n|---|---|---|")
    for name, (wall, _) in seconds.items():
        print(f"| {name} | {wall:.2f} | {megabytes / wall:,.0f} |")
    memory_rate = megabytes / memory_seconds
    print(f"| the fingerprint alone, of blocks in memory (from 256 MiB) | {memory_seconds:.2f} | {memory_rate:,.0f} |")
    print(
        f"| reading + the old fingerprint (torch on whole blocks), from a sixteenth | {old_seconds:.2f} | "
        f"{megabytes / old_seconds:,.0f} |"
    )


def parquet_row_groups(directory: Path, n: int, repeats: int) -> None:
    """Seconds of an epoch's reading (blocks of 1,024 rows) of n × 8 float32 features in row groups of 1 row,
    against the same rows in 10 row groups, by ParquetRows now and as it was at OLD_PARQUET."""
    old = importlib.import_module(
        old_modules(directory, "torch_shallow_pq_old", OLD_PARQUET, ("data.py", "parquet.py")) + ".parquet"
    )
    table = pa.table({f"x{j}": np.random.default_rng(j).standard_normal(n, dtype=np.float32) for j in range(9)})
    runs = {}
    for group_rows in (n // 10, 1):
        path = directory / f"groups-of-{group_rows}.parquet"
        pq.write_table(table, path, row_group_size=group_rows)
        for name, reader in (("now", ParquetRows), ("before", old.ParquetRows)):
            X = reader(path, [f"x{j}" for j in range(8)])
            runs[f"{name}, row groups of {group_rows:,} row{'s' * (group_rows > 1)}"] = lambda X=X: [
                X[a : a + 1024] for a in range(0, n, 1024)
            ]
    seconds = median_seconds(runs, repeats)
    print(f"\n### Reading {n:,} rows × 8 float32 of Parquet a block of 1,024 rows at a time (median of {repeats})\n")
    print("| ParquetRows | seconds |\n|---|---|")
    for name, (wall, _) in seconds.items():
        print(f"| {name} | {wall:.3f} |")


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
    parser.add_argument("--only", choices=["csv", "fingerprint", "parquet"], help="run one part of the benchmark")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    if args.only in ("fingerprint", "parquet"):
        print(f"CPU: {processor()}; load average before the runs: {os.getloadavg()[0]:.2f}")
        with tempfile.TemporaryDirectory() as tmp:
            if args.only == "fingerprint":
                fingerprint_rates(Path(tmp), 64 if args.quick else 1024, args.repeats)
            else:
                parquet_row_groups(Path(tmp), 4_000 if args.quick else 20_000, args.repeats)
        return
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
    with tempfile.TemporaryDirectory() as tmp:
        fingerprint_rates(Path(tmp), 64 if args.quick else 1024, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        parquet_row_groups(Path(tmp), 4_000 if args.quick else 20_000, args.repeats)


if __name__ == "__main__":
    main()
