"""Bulyan (El Mhamdi et al., ICML 2018): Krum to choose, then a trimmed coordinate rule.

Krum alone picks an update close to the honest ones in L2, but one coordinate of it
may still be far off. Bulyan first chooses ``theta = n - 2f`` updates by applying
Krum repeatedly (each pick leaves the pool), then, for every coordinate, averages the
``beta = theta - 2f`` of the chosen values closest to their median. It needs
``n >= 4f + 3``; with ``f`` left out it takes the largest allowed,
``floor((n - 3) / 4)``. That is 1 attacker for 7 to 10 sites and 0 below 7, where
Bulyan reduces to the mean of the Krum-chosen updates. Small consortia should use
``weighted_trimmed_mean`` or ``multi_krum`` instead (see ``docs/robustness.md``).

The coordinate step: the ``beta`` values closest to the median are always ``beta``
consecutive ones in sorted order, so each chunk of the ``theta`` chosen updates is
sorted by a comparator network (:mod:`accord.aggregation.network`) and, of the
``2f + 1`` windows of ``beta`` consecutive values, the one whose farthest value is
nearest the median is averaged (the first such window on a tie). Unweighted, as in
the paper: the coordinate step is what stops a heavy site from pulling a coordinate.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from accord.aggregation.coordinatewise import map_chunks
from accord.aggregation.gram import gram_matrix, squared_distances
from accord.aggregation.krum import check_attackers, krum_scores
from accord.aggregation.network import sorting_network
from accord.errors import TooFewUpdates
from accord.params import Array, Params

__all__ = ["Bulyan", "bulyan", "bulyan_attackers", "closest_to_median"]

logger = logging.getLogger(__name__)

#: Coordinates per chunk: theta sorted buffers plus 6 more, float32 (3.7 MiB for 8
#: updates), in L3. The comparators are numpy calls on one row each, and a thread
#: releases the GIL only inside them: at 8192 two threads were slower than one.
CHUNK = 65_536


def bulyan_attackers(n: int, f: int | None) -> int:
    """``f`` itself, or the largest with ``n >= 4f + 3``; TooFewUpdates below it."""
    chosen = (n - 3) // 4 if f is None else f
    if chosen < 0 or n < 4 * chosen + 3:
        need = 4 * max(chosen, 0) + 3
        bound = "n >= 4f + 3" + ("" if f is None else f" with f = {f}")
        raise TooFewUpdates(rule="bulyan", received=n, required=need, bound=bound)
    return chosen


class _WindowKernel:
    """Sort ``theta`` values per coordinate, average the best ``beta`` window."""

    def __init__(self, theta: int, beta: int, dtype: np.dtype[Any], size: int) -> None:
        compute = np.dtype(np.float32) if dtype.itemsize < 4 else dtype
        self.theta, self.beta = theta, beta
        self.comparators = sorting_network(theta)
        self.wires = [np.empty(size, compute) for _ in range(theta)]
        self.spare = np.empty(size, compute)
        self.median = np.empty(size, compute)
        self.cost = np.empty(size, compute)
        self.best_cost = np.empty(size, compute)
        self.window = np.empty(size, compute)
        self.best = np.empty(size, compute)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        wires = [w[:m] for w in self.wires]
        spare = self.spare[:m]
        for wire, x in zip(wires, inputs, strict=True):
            np.copyto(wire, x)
        for i, j in self.comparators:
            np.minimum(wires[i], wires[j], out=spare)
            np.maximum(wires[i], wires[j], out=wires[j])
            wires[i], spare = spare, wires[i]
        theta, beta = self.theta, self.beta
        median, cost, best_cost = self.median[:m], self.cost[:m], self.best_cost[:m]
        window, best = self.window[:m], self.best[:m]
        np.add(wires[(theta - 1) // 2], wires[theta // 2], out=median)
        median *= 0.5
        with np.errstate(over="ignore", invalid="ignore"):
            _window_sum(wires, 0, beta, best)
            _window_cost(wires, 0, beta, median, best_cost, spare)
            for a in range(1, theta - beta + 1):
                # each window summed afresh: sliding (subtract the value leaving)
                # would lose the others to rounding next to an attacker's 1e30
                _window_sum(wires, a, beta, window)
                _window_cost(wires, a, beta, median, cost, spare)
                better = cost < best_cost
                np.copyto(best, window, where=better)
                np.minimum(best_cost, cost, out=best_cost)
            best /= beta
        np.copyto(out, best, casting="same_kind")


def _window_sum(wires: Sequence[Array], a: int, beta: int, out: Array) -> None:
    """``out`` = the sum of the ``beta`` sorted values from position ``a``."""
    np.copyto(out, wires[a])
    for wire in wires[a + 1 : a + beta]:
        out += wire


def _window_cost(
    wires: Sequence[Array],
    a: int,
    beta: int,
    median: Array,
    out: Array,
    scratch: Array,
) -> None:
    """``max(median - low end, high end - median)`` of the window at ``a``."""
    np.subtract(median, wires[a], out=out)
    np.subtract(wires[a + beta - 1], median, out=scratch)
    np.maximum(out, scratch, out=out)


def closest_to_median(
    updates: Sequence[Params], beta: int, *, workers: int | None = None
) -> Params:
    """Per coordinate, the mean of the ``beta`` values closest to the median."""
    theta = len(updates)
    if not 1 <= beta <= theta:
        raise ValueError(f"cannot average {beta} of {theta} values")
    if theta == 1:
        return updates[0].copy()
    kernel = functools.partial(_WindowKernel, theta, beta)
    return map_chunks(updates, kernel, chunk=CHUNK, workers=workers)


def bulyan(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    f: int | None = None,
    workers: int | None = None,
) -> Params:
    """Bulyan of ``updates``; weights are checked, then unused (see module doc)."""
    n = len(updates)
    if len(weights) != n:
        raise ValueError(f"{n} updates but {len(weights)} weights")
    attackers = bulyan_attackers(n, f)
    theta = n - 2 * attackers
    dist = squared_distances(gram_matrix(updates, workers=workers))
    pool = list(range(n))
    chosen: list[int] = []
    while len(chosen) < theta:
        scores = krum_scores(dist, attackers, pool)
        pick = pool[int(np.argmin(scores))]
        chosen.append(pick)
        pool.remove(pick)
    logger.debug("bulyan with f = %d chose updates %s of %d", attackers, chosen, n)
    return closest_to_median(
        [updates[i] for i in chosen], theta - 2 * attackers, workers=workers
    )


@dataclass(frozen=True, slots=True)
class Bulyan:
    """Bulyan: iterated Krum, then the ``theta - 2f`` values nearest the median."""

    name: ClassVar[str] = "bulyan"
    streaming: ClassVar[bool] = False
    attackers: int | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        check_attackers(self.attackers)

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Bulyan of ``updates``."""
        return bulyan(updates, weights, f=self.attackers, workers=self.workers)
