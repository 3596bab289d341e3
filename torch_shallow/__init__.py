"""torch_shallow: the lecture's one-hidden-layer network, its hand-written backward and batch gradient descent."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .activations import ACTIVATIONS
from .callbacks import Callback, Run
from .checkpoint import CheckpointError
from .early_stopping import EarlyStopping
from .errors import TrainingDiverged, TrainingInterrupted
from .evaluation import evaluate
from .functional import ShallowBCEFunction, ShallowNetFunction, shallow_bce, shallow_net
from .module import ShallowNet

if TYPE_CHECKING:  # the lazily imported names below, for type checkers and editors
    from .data import DATASETS, circles, load_csv, moons, planar
    from .ondisk import NpyRows, csv_to_npy, open_npy, parquet_to_npy
    from .parquet import ParquetRows, open_parquet
    from .run import RunInUse, default_run_dir
    from .stack import fit_many
    from .trainer import History, TrainConfig, fit

try:
    __version__ = version("torch_shallow")
except PackageNotFoundError:  # imported from a source tree that was not installed
    __version__ = "0+unknown"

# Names whose modules import TensorBoard or pyarrow, imported on first use (PEP 562), so that `import torch_shallow`
# costs little more than `import torch` for code that only needs the network.
_LAZY = {
    "DATASETS": "data",
    "circles": "data",
    "load_csv": "data",
    "moons": "data",
    "planar": "data",
    "NpyRows": "ondisk",
    "csv_to_npy": "ondisk",
    "open_npy": "ondisk",
    "parquet_to_npy": "ondisk",
    "ParquetRows": "parquet",
    "open_parquet": "parquet",
    "RunInUse": "run",
    "default_run_dir": "run",
    "fit_many": "stack",
    "History": "trainer",
    "TrainConfig": "trainer",
    "fit": "trainer",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'torch_shallow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ACTIVATIONS",
    "Callback",
    "CheckpointError",
    "DATASETS",
    "EarlyStopping",
    "History",
    "NpyRows",
    "ParquetRows",
    "Run",
    "RunInUse",
    "ShallowBCEFunction",
    "ShallowNet",
    "ShallowNetFunction",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingInterrupted",
    "circles",
    "csv_to_npy",
    "default_run_dir",
    "evaluate",
    "fit",
    "fit_many",
    "load_csv",
    "moons",
    "open_npy",
    "open_parquet",
    "parquet_to_npy",
    "planar",
    "shallow_bce",
    "shallow_net",
]
