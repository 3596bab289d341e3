"""torch_shallow: the lecture's one-hidden-layer network, its hand-written backward and batch gradient descent."""

from importlib.metadata import PackageNotFoundError, version

from .activations import ACTIVATIONS
from .callbacks import Callback, Run
from .checkpoint import CheckpointError
from .data import DATASETS, circles, load_csv, moons, planar
from .early_stopping import EarlyStopping
from .errors import TrainingDiverged, TrainingInterrupted
from .evaluation import evaluate
from .functional import ShallowBCEFunction, ShallowNetFunction, shallow_bce, shallow_net
from .module import ShallowNet
from .ondisk import NpyRows, csv_to_npy, open_npy, parquet_to_npy
from .parquet import ParquetRows, open_parquet
from .run import RunInUse, default_run_dir
from .stack import fit_many
from .trainer import History, TrainConfig, fit

try:
    __version__ = version("torch_shallow")
except PackageNotFoundError:  # imported from a source tree that was not installed
    __version__ = "0+unknown"

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
