"""Krum and Multi-Krum (Blanchard et al., NeurIPS 2017).

Each update is scored by the sum of its squared distances to its ``n - f - 2``
nearest other updates; Krum returns the update with the lowest score, Multi-Krum the
weighted mean of the ``m`` lowest-scored ones. With at most ``f`` attackers among
``n`` updates and ``n > 2f + 2`` (at least ``2f + 3`` updates), the chosen update is
close to the honest ones whatever the attackers send: an attacker far from everyone
scores high, and one placed among the honest updates is no worse than they are.

``f`` is either given (``[strategy] attackers``) or, when left out, the largest the
bound allows for the round's ``n``: ``floor((n - 3) / 2)``. A round with too few
updates for a given ``f`` fails with :class:`~accord.errors.TooFewUpdates`, leaving
the model unchanged. Multi-Krum's ``m`` defaults to ``n - f`` and never exceeds it,
since selecting more could take in an attacker whatever the scores.

Cost: one Gram pass over the updates (:mod:`accord.aggregation.gram`), ``n^2`` work
on the scores, then one weighted-mean pass over the ``m`` chosen updates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from accord.aggregation.gram import Matrix, gram_matrix, squared_distances
from accord.aggregation.mean import weighted_mean
from accord.errors import ConfigError, TooFewUpdates
from accord.params import Params

__all__ = [
    "Krum",
    "MultiKrum",
    "check_attackers",
    "krum_attackers",
    "krum_scores",
    "krum_select",
    "multi_krum",
]

logger = logging.getLogger(__name__)

KRUM_BOUND = "n > 2f + 2"


def check_attackers(f: int | None, *, key: str = "attackers") -> int | None:
    """``f`` if it is None or an integer >= 0, else :class:`ConfigError`."""
    if f is None:
        return None
    if isinstance(f, bool) or not isinstance(f, int) or f < 0:
        raise ConfigError(f"must be an integer >= 0, got {f!r}", key=key)
    return f


def krum_attackers(n: int, f: int | None, *, rule: str = "krum") -> int:
    """The ``f`` Krum uses among ``n`` updates: ``f`` itself, or the largest allowed.

    Raises :class:`~accord.errors.TooFewUpdates` when ``n <= 2f + 2``.
    """
    chosen = (n - 3) // 2 if f is None else f
    if chosen < 0 or n <= 2 * chosen + 2:
        need = 2 * max(chosen, 0) + 3
        bound = KRUM_BOUND + ("" if f is None else f" with f = {f}")
        raise TooFewUpdates(rule=rule, received=n, required=need, bound=bound)
    return chosen


def krum_scores(
    dist: Matrix, f: int, among: Sequence[int] | None = None
) -> npt.NDArray[np.float64]:
    """Krum's score of each update in ``among`` (default all), within ``among``.

    The score is the sum of squared distances to the ``len(among) - f - 2`` nearest
    others (at least 1 of them, so that Bulyan's last picks are still scored).
    """
    idx = np.arange(dist.shape[0]) if among is None else np.asarray(among)
    sub = dist[np.ix_(idx, idx)]
    k = len(idx) - f - 2
    k = max(1, min(k, len(idx) - 1))
    if len(idx) == 1:
        return np.zeros(1)
    others = np.where(np.eye(len(idx), dtype=bool), np.inf, sub)
    nearest = np.partition(others, k - 1, axis=1)[:, :k]
    return np.asarray(nearest.sum(axis=1), dtype=np.float64)


def krum_select(dist: Matrix, f: int, m: int) -> list[int]:
    """Indices of the ``m`` lowest Krum scores, ties to the lower index, in order."""
    scores = krum_scores(dist, f)
    order = np.argsort(scores, kind="stable")
    return [int(i) for i in order[:m]]


def multi_krum(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    f: int | None = None,
    m: int | None = 1,
    workers: int | None = None,
    rule: str = "multi_krum",
) -> Params:
    """Weighted mean of the ``m`` updates with the lowest Krum scores.

    ``m = 1`` is Krum (the chosen update itself); ``m = None`` is ``n - f``; an
    ``m`` above ``n - f`` is lowered to it. Raises
    :class:`~accord.errors.TooFewUpdates` if ``n <= 2f + 2``.
    """
    n = len(updates)
    if len(weights) != n:
        raise ValueError(f"{n} updates but {len(weights)} weights")
    attackers = krum_attackers(n, f, rule=rule)
    limit = n - attackers
    count = limit if m is None else min(m, limit)
    if m is not None and m > limit:
        logger.info("%s: m = %d lowered to n - f = %d", rule, m, limit)
    dist = squared_distances(gram_matrix(updates, workers=workers))
    chosen = krum_select(dist, attackers, count)
    logger.debug("%s with f = %d chose updates %s of %d", rule, attackers, chosen, n)
    if len(chosen) == 1:
        return updates[chosen[0]].copy()
    picked = [updates[i] for i in chosen]
    picked_weights = [float(weights[i]) for i in chosen]
    if sum(picked_weights) <= 0:  # every chosen site claims nothing: count them equally
        picked_weights = [1.0] * len(picked)
    return weighted_mean(picked, picked_weights, workers=workers)


def _check_select(m: int | None) -> None:
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise ConfigError(f"must be an integer >= 1, got {m!r}", key="select")


@dataclass(frozen=True, slots=True)
class Krum:
    """Krum: the one update closest to its ``n - f - 2`` nearest neighbours."""

    name: ClassVar[str] = "krum"
    streaming: ClassVar[bool] = False
    attackers: int | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        check_attackers(self.attackers)

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """The update with the lowest Krum score (weights only checked)."""
        return multi_krum(
            updates,
            weights,
            f=self.attackers,
            m=1,
            workers=self.workers,
            rule=self.name,
        )


@dataclass(frozen=True, slots=True)
class MultiKrum:
    """Multi-Krum: weighted mean of the ``select`` best-scored (default ``n - f``)."""

    name: ClassVar[str] = "multi_krum"
    streaming: ClassVar[bool] = False
    attackers: int | None = None
    select: int | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        check_attackers(self.attackers)
        _check_select(self.select)

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Weighted mean of the chosen updates."""
        return multi_krum(
            updates,
            weights,
            f=self.attackers,
            m=self.select,
            workers=self.workers,
            rule=self.name,
        )
