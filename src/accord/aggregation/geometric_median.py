"""Weighted geometric median by smoothed Weiszfeld iterations (Pillutla et al., RFA).

The geometric median ``z`` minimises ``sum_i w_i ||x_i - z||``: unlike the mean, a
minority of the total weight (below one half) cannot move it arbitrarily far,
however far away its updates are. Weiszfeld's algorithm re-weights the mean by
``w_i / max(nu, ||x_i - z||)`` until the point moves by less than ``tolerance``
times the median distance of the updates to it, or ``max_iterations`` is reached;
the smoothing ``nu`` keeps a weight finite when ``z`` lands on an update. (A test on
the objective's relative change, as in RFA, stops far too early when an attacker is
far away: its distance swamps the objective.) Convergence is linear and slows as
the attackers' share of the weight nears one half.

Every iterate is a convex combination ``z = sum_j a_j x_j`` of the updates, so the
distances ``||x_i - z||^2 = G_ii - 2 (G a)_i + a^T G a`` come from the Gram matrix
``G`` (:mod:`accord.aggregation.gram`) and the iterations cost ``n^2`` each, not a
pass over the model. The model is read twice in all: once for ``G``, once for the
final combination. The weights are the round's example counts after the
``max_weight_share`` cap, so a large site counts more but never a majority alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from accord.aggregation.gram import Matrix, gram_matrix
from accord.aggregation.mean import linear_combination
from accord.errors import ConfigError
from accord.params import Params

__all__ = ["GeometricMedian", "distances_to", "geometric_median", "weiszfeld"]

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float64]


def distances_to(gram: Matrix, coefficients: Vector) -> Vector:
    """``||x_i - sum_j a_j x_j||`` for every ``i``, from the Gram matrix."""
    ga = gram @ coefficients
    squared = np.diag(gram) - 2.0 * ga + float(coefficients @ ga)
    return np.sqrt(np.maximum(squared, 0.0))


def weiszfeld(
    gram: Matrix,
    weights: Sequence[float],
    *,
    smoothing: float = 1e-6,
    max_iterations: int = 1000,
    tolerance: float = 1e-6,
) -> tuple[Vector, int]:
    """Coefficients of the weighted geometric median, and the iterations used.

    Starts from the weighted mean. Raises ``ValueError`` if the weights sum to 0.
    """
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0, not all 0: {list(weights)}")
    a = w / w.sum()
    dist = distances_to(gram, a)
    for iteration in range(1, max_iterations + 1):
        beta = w / np.maximum(dist, smoothing)
        previous, a = a, beta / beta.sum()
        dist = distances_to(gram, a)
        step = previous - a
        moved = math.sqrt(max(float(step @ gram @ step), 0.0))
        # relative to the typical distance of the updates to the point, not to
        # the objective: a far attacker inflates the objective so much that a
        # relative change in it stops the iterations far from the honest updates
        if moved <= tolerance * max(float(np.median(dist)), smoothing):
            return a, iteration
    return a, max_iterations


def geometric_median(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    smoothing: float = 1e-6,
    max_iterations: int = 1000,
    tolerance: float = 1e-6,
    workers: int | None = None,
) -> Params:
    """The weighted geometric median of ``updates`` (see the module docstring)."""
    if len(weights) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
    gram = gram_matrix(updates, workers=workers)
    coefficients, used = weiszfeld(
        gram,
        weights,
        smoothing=smoothing,
        max_iterations=max_iterations,
        tolerance=tolerance,
    )
    logger.debug("geometric median: %d Weiszfeld iterations", used)
    return linear_combination(updates, coefficients.tolist(), workers=workers)


def _positive(value: float, key: str) -> None:
    if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"must be a positive number, got {value!r}", key=key)


@dataclass(frozen=True, slots=True)
class GeometricMedian:
    """Weighted geometric median (smoothed Weiszfeld)."""

    name: ClassVar[str] = "geometric_median"
    streaming: ClassVar[bool] = False
    max_iterations: int = 1000
    tolerance: float = 1e-6
    smoothing: float = 1e-6
    workers: int | None = None

    def __post_init__(self) -> None:
        its = self.max_iterations
        if isinstance(its, bool) or not isinstance(its, int) or its < 1:
            raise ConfigError(f"must be an integer >= 1, got {its!r}", key="iterations")
        _positive(self.tolerance, "tolerance")
        _positive(self.smoothing, "smoothing")

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """The weighted geometric median of ``updates``."""
        return geometric_median(
            updates,
            weights,
            smoothing=self.smoothing,
            max_iterations=self.max_iterations,
            tolerance=self.tolerance,
            workers=self.workers,
        )
