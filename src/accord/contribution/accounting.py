"""A run's contribution table: per-round games summed into one score per site.

:func:`account` walks the kept rounds in order, builds each round's
:class:`~accord.contribution.game.RoundGame` (coalition models rebuilt from the
kept updates, see :mod:`accord.contribution.game`), scores it by leave-one-out,
GTG-Shapley or both (sharing the round's cached coalition values), and adds each
site's per-round scores. It reports the evaluations made and the seconds spent,
the whole cost of the method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from accord.contribution.game import RoundGame, RoundUpdates, Value
from accord.contribution.shapley import interval, leave_one_out, shapley

__all__ = ["ContributionReport", "Method", "SiteScore", "account"]

logger = logging.getLogger(__name__)

Method = Literal["loo", "shapley", "both"]


@dataclass(frozen=True)
class SiteScore:
    """One site's scores over the run (None: the method was not asked for)."""

    site: str
    rounds: int
    loo: float | None = None
    shapley: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class ContributionReport:
    """Per-site scores, what they cost, and the run's total gain they share."""

    method: Method
    sites: tuple[SiteScore, ...]
    rounds: int
    evaluations: int
    seconds: float
    gain: float
    permutations: int
    exact_rounds: int = 0
    truncated_rounds: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def ranking(self, by: Literal["loo", "shapley"]) -> list[str]:
        """Sites from highest to lowest score by ``by``."""
        scored = [s for s in self.sites if getattr(s, by) is not None]
        return [s.site for s in sorted(scored, key=lambda s: -float(getattr(s, by)))]


@dataclass
class _Totals:
    loo: dict[str, float] = field(default_factory=dict)
    shapley: dict[str, float] = field(default_factory=dict)
    variance: dict[str, list[float]] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    evaluations: int = 0
    gain: float = 0.0
    exact: int = 0
    truncated: int = 0


def account(
    kept: Iterable[RoundUpdates],
    value: Value,
    *,
    method: Method = "both",
    permutations: int = 20,
    seed: int = 0,
    round_tolerance: float = 0.0,
    within_tolerance: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
) -> ContributionReport:
    """Score every site of ``kept`` by ``method`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    totals = _Totals()
    t0 = clock()
    count = 0
    for one in kept:
        count += 1
        _score_round(
            one,
            RoundGame.of(one, value),
            totals,
            method=method,
            permutations=permutations,
            rng=rng,
            tolerances=(round_tolerance, within_tolerance),
        )
    seconds = clock() - t0
    sites = tuple(
        _site(name, totals, method) for name in sorted(totals.rounds, key=str)
    )
    logger.info(
        "contributions of %d sites over %d rounds: %d evaluations in %.2f s",
        len(sites),
        count,
        totals.evaluations,
        seconds,
    )
    return ContributionReport(
        method=method,
        sites=sites,
        rounds=count,
        evaluations=totals.evaluations,
        seconds=seconds,
        gain=totals.gain,
        permutations=permutations,
        exact_rounds=totals.exact,
        truncated_rounds=totals.truncated,
    )


def _score_round(
    one: RoundUpdates,
    game: RoundGame,
    totals: _Totals,
    *,
    method: Method,
    permutations: int,
    rng: np.random.Generator,
    tolerances: tuple[float, float],
) -> None:
    for name in one.sites:
        totals.rounds[name] = totals.rounds.get(name, 0) + 1
    if method in ("loo", "both"):
        for name, v in zip(one.sites, leave_one_out(game).values, strict=True):
            totals.loo[name] = totals.loo.get(name, 0.0) + v
    if method in ("shapley", "both"):
        scores = shapley(
            game,
            permutations=permutations,
            rng=rng,
            round_tolerance=tolerances[0],
            within_tolerance=tolerances[1],
        )
        totals.exact += scores.exact
        totals.truncated += scores.truncated
        for name, v, var in zip(one.sites, scores.values, scores.variance, strict=True):
            totals.shapley[name] = totals.shapley.get(name, 0.0) + v
            totals.variance.setdefault(name, []).append(var)
    totals.gain += game.value(game.everyone) - game.value(frozenset())
    totals.evaluations += game.evaluations


def _site(name: str, totals: _Totals, method: Method) -> SiteScore:
    loo = totals.loo.get(name, 0.0) if method in ("loo", "both") else None
    if method == "loo":
        return SiteScore(site=name, rounds=totals.rounds[name], loo=loo)
    value = totals.shapley.get(name, 0.0)
    low, high = interval(value, totals.variance.get(name, []))
    return SiteScore(
        site=name,
        rounds=totals.rounds[name],
        loo=loo,
        shapley=value,
        ci_low=low,
        ci_high=high,
    )
