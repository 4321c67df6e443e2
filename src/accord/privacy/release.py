"""Noise for statistics a site releases once: Laplace or Gaussian, calibrated to ε.

A site's data profile (:mod:`accord.data.summary`) is a handful of histograms and
sums released once, before round 1, not a stream of model updates: the mechanism
is the textbook one. :class:`StatisticNoise` splits the profile's budget evenly
over its ``queries`` (basic composition: the total is at most the ``epsilon`` and
``delta`` it was given, which is what the run records) and adds to each query

- Laplace noise of scale ``sensitivity * queries / epsilon`` (pure ε-DP), or
- Gaussian noise whose standard deviation is the smallest that makes the query
  ``(epsilon / queries, delta / queries)``-DP by the *analytic* Gaussian mechanism
  (Balle and Wang 2018, "Improving the Gaussian mechanism for differential
  privacy", Theorem 8), which holds for every ε, unlike the classic
  ``sqrt(2 ln(1.25/δ))`` bound that needs ε < 1. The bound is solved here by
  bisection with :class:`statistics.NormalDist` (a few lines; dp-accounting's
  calibration is built for composed training runs and is an optional extra).

``sensitivity`` is the L1 (Laplace) or L2 (Gaussian) change of one query when one
row is added or removed; the caller states it (a histogram: 1, a sum of values
clipped to ``[-c, c]``: ``c``). Draws come from :class:`~accord.privacy.noise
.NoiseSource` (the OS's CSPRNG unless seeded, in tests) and are snapped to the grid
of :func:`~accord.privacy.noise.grid_step` against floating-point attacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from accord.privacy.noise import NoiseSource, grid_step

__all__ = ["Mechanism", "StatisticNoise", "analytic_gaussian_std"]

Mechanism = Literal["laplace", "gaussian"]
Floats = npt.NDArray[np.float64]
_NORMAL = NormalDist()


def analytic_gaussian_std(sensitivity: float, epsilon: float, delta: float) -> float:
    """The smallest σ for which N(0, σ²) noise is (ε, δ)-DP (Balle and Wang 2018).

    Raises ValueError for a sensitivity, ε or δ out of range.
    """
    if not (sensitivity > 0 and math.isfinite(sensitivity)):
        raise ValueError(f"sensitivity must be positive and finite: {sensitivity!r}")
    if not (0 < epsilon <= 1000 and 0 < delta < 1):
        raise ValueError(
            f"need 0 < epsilon <= 1000 and 0 < delta < 1: {epsilon}, {delta}"
        )

    def achieved(sigma: float) -> float:
        a = sensitivity / (2 * sigma)
        b = epsilon * sigma / sensitivity
        tail = _NORMAL.cdf(-a - b)
        # e^ε Φ(-a-b) in log space: e^ε alone overflows for ε past 709.
        second = 0.0 if tail <= 0 else math.exp(min(epsilon + math.log(tail), 700.0))
        return _NORMAL.cdf(a - b) - second

    low, high = 1e-12 * sensitivity, sensitivity
    while achieved(high) > delta:  # δ(σ) decreases in σ: find an upper bound
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if achieved(mid) > delta:
            low = mid
        else:
            high = mid
    return high


@dataclass(frozen=True, slots=True)
class StatisticNoise:
    """One release's mechanism and budget, split evenly over ``queries``."""

    mechanism: Mechanism
    epsilon: float
    delta: float
    queries: int
    source: NoiseSource

    def __post_init__(self) -> None:
        if not (0 < self.epsilon <= 1000) or self.queries < 1:
            raise ValueError(
                f"need 0 < epsilon <= 1000 and at least one query: {self.epsilon}, "
                f"{self.queries}"
            )
        if self.mechanism == "gaussian" and not 0 < self.delta < 1:
            raise ValueError(
                f"the Gaussian mechanism needs 0 < delta < 1: {self.delta}"
            )

    def scale(self, sensitivity: float) -> float:
        """The noise's scale for one query: Laplace b, or the Gaussian's σ."""
        share = self.epsilon / self.queries
        if self.mechanism == "laplace":
            return sensitivity / share
        return analytic_gaussian_std(sensitivity, share, self.delta / self.queries)

    def add(self, values: Floats, sensitivity: float, *key: int) -> Floats:
        """``values`` with this query's noise, snapped; ``key`` picks a seeded draw."""
        scale = self.scale(sensitivity)
        rng = self.source.generator(*key)
        x = np.asarray(values, dtype=np.float64)
        if self.mechanism == "laplace":
            noised = x + rng.laplace(0.0, scale, size=x.shape)
        else:
            noised = x + rng.normal(0.0, scale, size=x.shape)
        step = grid_step(scale)
        return np.asarray(np.round(noised / step) * step, dtype=np.float64)
