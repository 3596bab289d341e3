"""The hyperparameters' constraints, declared once, and the dtypes a model may train in.

``TrainConfig``, ``fit_many``, the command line's argument types and ``ShallowClassifier`` all check their numbers
against :data:`CONSTRAINTS`, each in its own words: a ``ValueError`` naming the field, an ``argparse`` error naming
the text typed, scikit-learn's ``check_scalar`` message.
"""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (``int`` or ``float``) between ``low`` and ``high`` (None: unbounded), each bound
    included or not; floats must be finite. bool is refused although Python counts it as an int."""

    kind: type[int] | type[float]
    low: float | None = None
    high: float | None = None
    low_included: bool = True
    high_included: bool = False

    def describe(self) -> str:
        """'an integer >= 1', 'a finite number > 0', 'a number strictly between 0 and 1', ..."""
        noun = "an integer" if self.kind is int else "a finite number"
        bounds = []
        show: Callable[[float], str] = (lambda v: str(v)) if self.kind is int else (lambda v: f"{v:g}")
        if self.low is not None:
            bounds.append(f"{'>=' if self.low_included else '>'} {show(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<=' if self.high_included else '<'} {show(self.high)}")
        return f"{noun} {' and '.join(bounds)}".strip()

    def contains(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.kind is int else numbers.Real):
            return False
        if not math.isfinite(value):
            return False
        value = cast(float, value)  # a real number, which typeshed's numbers.Real does not let compare
        above = self.low is None or (value >= self.low if self.low_included else value > self.low)
        below = self.high is None or (value <= self.high if self.high_included else value < self.high)
        return above and below

    def check(self, name: str, value: object) -> int | float:
        """``value`` as a plain Python int or float (NumPy scalars are accepted); ValueError naming ``name``."""
        if not self.contains(value):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return self.kind(cast(float, value))  # a real number, as contains said

    def parse(self, text: str) -> int | float:
        """An argparse type: the text as a number inside the interval."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if not self.contains(value):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text}")
        return value

    def sklearn_bounds(self) -> dict[str, object]:
        """The keywords of ``sklearn.utils.check_scalar`` for this interval."""
        low, high = self.low_included, self.high_included
        return {
            "target_type": numbers.Integral if self.kind is int else numbers.Real,
            "min_val": self.low,
            "max_val": self.high,
            "include_boundaries": {(True, True): "both", (True, False): "left", (False, True): "right"}.get(
                (low, high), "neither"
            ),
        }


POSITIVE_INT = Interval(int, 1)
POSITIVE = Interval(float, 0, low_included=False)
NON_NEGATIVE = Interval(float, 0)
FRACTION = Interval(float, 0, 1, low_included=False)
SEED = Interval(int, 0, 2**64 - 1, high_included=True)  # what torch.Generator.manual_seed takes

CONSTRAINTS: dict[str, Interval] = {
    "lr": POSITIVE,  # α; also each of fit_many's lrs
    "tol": NON_NEGATIVE,
    "max_epochs": POSITIVE_INT,
    "log_every": POSITIVE_INT,
    "dashboard_every": POSITIVE_INT,
    "checkpoint_every": POSITIVE_INT,
    "patience": POSITIVE_INT,
    "hidden_features": POSITIVE_INT,
    "in_features": POSITIVE_INT,
    "out_features": POSITIVE_INT,
    "validation_fraction": FRACTION,
    "n_iter_no_change": POSITIVE_INT,
    "timeout": POSITIVE,
    "dashboard_models": POSITIVE_INT,
    "seed": SEED,
}
"""Every numeric hyperparameter's interval, by its name in ``TrainConfig``, ``ShallowNet`` or the estimators."""

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
"""The dtypes a model trains in, by the name the command line, the estimators and checkpoints use."""


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")
