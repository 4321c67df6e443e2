"""Leave-one-out and GTG-Shapley contribution scores over a run's kept rounds.

Per round (a :class:`~accord.contribution.game.RoundGame`):

* **Leave-one-out**: ``v(all) - v(all without i)``: what the round lost without
  site ``i``. Cheap (``n + 1`` evaluations) but blind to redundancy: two sites with
  the same data each score near zero.
* **Shapley** (GTG-Shapley, Liu et al. 2022, "GTG-Shapley: Efficient and Accurate
  Participant Contribution Evaluation in Federated Learning"): the mean marginal
  gain of ``i`` over permutations of the round's sites. When ``n!`` is at most the
  number of permutations asked for, every permutation is enumerated and the values
  are exact. Otherwise permutations are sampled with *guided sampling* (permutation
  ``k`` starts with site ``k mod n``, the rest shuffled by a seeded generator) and
  two truncations cut the evaluations:

  - *between rounds*: a round whose whole gain ``|v(all) - v(base)|`` is at most
    ``round_tolerance`` is skipped (every site gets 0 for it);
  - *within a round*: once a permutation's coalition is within
    ``within_tolerance`` times the round's gain of ``v(all)``, the remaining sites'
    marginals are taken as 0 and not evaluated.

A site's score is the sum of its per-round scores (a site not selected in a round
scores 0 for it). With no truncation the Shapley values of each round add up to
``v(all) - v(base)`` (efficiency), so over the run they add up to the sum of the
rounds' gains.

**Confidence interval**: the per-round estimate is a mean over permutations; its
variance is the sample variance of the marginals over the permutations divided by
their number, rounds being sampled independently their variances add, and the
interval is the normal 95 % one, ``value +- 1.96 * sqrt(sum of variances)``. An
enumerated (exact) or skipped round adds no variance.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from accord.contribution.game import RoundGame

__all__ = [
    "Z95",
    "RoundScores",
    "interval",
    "leave_one_out",
    "shapley",
]

logger = logging.getLogger(__name__)

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class RoundScores:
    """One method's scores for one round's players, with their sampling variance.

    ``variance`` is that of each estimate (all zeros for leave-one-out and for
    exact Shapley); ``permutations`` is how many were used (0 when the round was
    truncated or for leave-one-out); ``exact`` whether they were all of them.
    """

    values: tuple[float, ...]
    variance: tuple[float, ...]
    permutations: int = 0
    exact: bool = True
    truncated: bool = False


def leave_one_out(game: RoundGame) -> RoundScores:
    """``v(all) - v(all without i)`` for each player ``i``."""
    everyone = game.everyone
    total = game.value(everyone)
    values = tuple(total - game.value(everyone - {i}) for i in range(game.players))
    return RoundScores(values=values, variance=(0.0,) * game.players)


def _orders(
    players: int, count: int, rng: np.random.Generator
) -> tuple[Iterator[tuple[int, ...]], int, bool]:
    """Permutations to walk: all of them when there are at most ``count``."""
    if math.factorial(players) <= count:
        return (
            itertools.permutations(range(players)),
            math.factorial(players),
            True,
        )

    def guided() -> Iterator[tuple[int, ...]]:
        for k in range(count):
            first = k % players
            rest = [p for p in range(players) if p != first]
            rng.shuffle(rest)
            yield (first, *rest)

    return guided(), count, False


def shapley(
    game: RoundGame,
    *,
    permutations: int,
    rng: np.random.Generator,
    round_tolerance: float = 0.0,
    within_tolerance: float = 0.0,
) -> RoundScores:
    """GTG-Shapley values of ``game`` (see the module docstring for the knobs).

    ``permutations`` must be at least 2 (a variance needs two samples); the
    tolerances are at least 0 (0: no truncation).
    """
    if permutations < 2:
        raise ValueError(f"permutations is {permutations}; need at least 2")
    if round_tolerance < 0 or within_tolerance < 0:
        raise ValueError("truncation tolerances must be >= 0")
    n = game.players
    v_base = game.value(frozenset())
    v_all = game.value(game.everyone)
    gain = v_all - v_base
    if round_tolerance > 0 and abs(gain) <= round_tolerance:
        zeros = (0.0,) * n
        return RoundScores(zeros, zeros, permutations=0, exact=False, truncated=True)
    orders, count, exact = _orders(n, permutations, rng)
    marginals = np.zeros((count, n))
    cut = within_tolerance * abs(gain)
    for k, order in enumerate(orders):
        coalition: frozenset[int] = frozenset()
        previous = v_base
        for player in order:
            if cut > 0 and abs(v_all - previous) <= cut:
                break  # within-round truncation: the rest add (about) nothing
            coalition = coalition | {player}
            current = game.value(coalition)
            marginals[k, player] = current - previous
            previous = current
    values = marginals.mean(axis=0)
    variance = np.zeros(n) if exact else marginals.var(axis=0, ddof=1) / count
    return RoundScores(
        values=tuple(float(v) for v in values),
        variance=tuple(float(v) for v in variance),
        permutations=count,
        exact=exact,
    )


def interval(value: float, variances: Sequence[float]) -> tuple[float, float]:
    """The normal 95 % interval of a sum of independent estimates."""
    half = Z95 * math.sqrt(max(0.0, float(sum(variances))))
    return value - half, value + half
