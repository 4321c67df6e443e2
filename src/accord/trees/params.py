"""The settings of a gradient-boosted tree ensemble, shared by sites and coordinator.

One frozen value object, checked once when it is built, so that every later step
(sketch, histograms, split finding, export) can rely on its ranges. The names and
meanings follow XGBoost's (``max_depth``, ``eta``, ``max_bin``, ``lambda``,
``gamma``, ``min_child_weight``), so a pooled XGBoost model with the same values
is the reference the federated model is compared to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accord.errors import ConfigError

__all__ = ["TreeParams"]


@dataclass(frozen=True, slots=True)
class TreeParams:
    """Boosting settings: trees, depth, learning rate, bins and regularisation."""

    trees: int = 50
    max_depth: int = 4
    learning_rate: float = 0.3
    bins: int = 64
    reg_lambda: float = 1.0
    gamma: float = 0.0
    min_child_weight: float = 1.0
    #: Cells of the sketch's fixed grid per feature, and its half-width (the
    #: features are standardised, so +-8 holds all but the farthest outliers).
    sketch_cells: int = 4096
    sketch_range: float = 8.0

    def __post_init__(self) -> None:
        _whole("trees", self.trees, 1, 10_000)
        _whole("depth", self.max_depth, 1, 8)
        _whole("bins", self.bins, 2, 256)
        _whole("sketch_cells", self.sketch_cells, 2, 65_536)
        _real("sketch_range", self.sketch_range, low=0.0, open_low=True)
        _real("learning_rate", self.learning_rate, low=0.0, open_low=True, high=1.0)
        _real("lambda", self.reg_lambda, low=0.0)
        _real("gamma", self.gamma, low=0.0)
        _real("min_child_weight", self.min_child_weight, low=0.0)


def _whole(key: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"[trees] {key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"[trees] {key} must be in [{low}, {high}], got {value}")


def _real(
    key: str,
    value: float,
    *,
    low: float,
    open_low: bool = False,
    high: float = math.inf,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[trees] {key} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < low or (open_low and v == low) or v > high:
        side = "(" if open_low else "["
        raise ConfigError(f"[trees] {key} must be in {side}{low}, {high}], got {v}")
