"""Centered clipping (Karimireddy, He and Jaggi, ICML 2021).

Starting from a center ``v`` (the previous round's aggregate: history is what makes
the rule robust across rounds, since attackers cannot steer it far in one round),
each iteration moves ``v`` by the weighted mean of the updates' differences from it,
each difference clipped to L2 norm ``tau``::

    v <- v + sum_i s_i clip_tau(x_i - v),   s_i = w_i / sum(w)

An attacker's pull on the center is at most ``s_i tau`` per iteration whatever it
sends. ``tau = None`` takes, at each iteration, the median of the distances to the
center (an adaptive radius: half the updates pass unclipped), which needs no tuning
and equals the mean when all updates agree. A fixed ``tau`` bounds each site's pull
exactly but must suit the scale of the updates (see ``docs/robustness.md``).

Every iterate is a convex combination of the updates and the starting center, so the
iterations run on the Gram matrix of ``[x_1 .. x_n, v0]`` and the model is read twice
(:mod:`accord.aggregation.gram`). The coordinator keeps the center in the strategy's
checkpointed state (:mod:`accord.coordinator.strategy`); without one (the first
round) it is zero.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from accord.aggregation.geometric_median import Vector, distances_to
from accord.aggregation.gram import Matrix, gram_matrix
from accord.aggregation.mean import linear_combination
from accord.errors import ConfigError
from accord.params import Params

__all__ = ["CenteredClip", "centered_clip", "clip_iterations"]

logger = logging.getLogger(__name__)


def clip_iterations(
    gram: Matrix, weights: Sequence[float], *, tau: float | None, iterations: int
) -> Vector:
    """Coefficients of the clipped center over ``[x_1 .. x_n, v0]`` (last row: v0)."""
    n = gram.shape[0] - 1
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != n or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"need {n} finite weights >= 0, not all 0: {list(weights)}")
    share = w / w.sum()
    a = np.zeros(n + 1)
    a[n] = 1.0
    for _ in range(iterations):
        dist = distances_to(gram, a)[:n]
        radius = float(np.median(dist)) if tau is None else tau
        scale = np.ones(n)
        np.divide(radius, dist, out=scale, where=dist > radius)
        step = share * scale
        a = a * (1.0 - step.sum())
        a[:n] += step
    return a


def centered_clip(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    center: Params | None = None,
    tau: float | None = None,
    iterations: int = 3,
    workers: int | None = None,
) -> Params:
    """The clipped center after ``iterations``; ``center=None`` starts from zero."""
    if not updates:
        raise ValueError("no updates to aggregate; a round needs at least one")
    if center is None:
        center = Params({k: np.zeros_like(a) for k, a in updates[0].items()})
    rows = [*updates, center]
    gram = gram_matrix(rows, workers=workers)
    coefficients = clip_iterations(gram, weights, tau=tau, iterations=iterations)
    logger.debug("centered clipping kept %.3f of the center", coefficients[-1])
    return linear_combination(rows, coefficients.tolist(), workers=workers)


@dataclass(frozen=True, slots=True)
class CenteredClip:
    """Centered clipping around ``center`` (set per round by the strategy)."""

    name: ClassVar[str] = "centered_clip"
    streaming: ClassVar[bool] = False
    tau: float | None = None
    iterations: int = 3
    center: Params | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        tau = self.tau
        if tau is not None and (
            isinstance(tau, bool) or not (math.isfinite(tau) and tau > 0)
        ):
            raise ConfigError(f"must be a positive number, got {tau!r}", key="tau")
        its = self.iterations
        if isinstance(its, bool) or not isinstance(its, int) or its < 1:
            raise ConfigError(f"must be an integer >= 1, got {its!r}", key="iterations")

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Clip around :attr:`center` (zero if None)."""
        return centered_clip(
            updates,
            weights,
            center=self.center,
            tau=self.tau,
            iterations=self.iterations,
            workers=self.workers,
        )
