"""The coalition game of one round: which model a subset of its sites would have made.

Contribution accounting never retrains. A round's coalition model is rebuilt from
what the round kept: the global model the round started from (the *base*) and each
valid site's update. The model a coalition ``S`` would have produced is the base
plus the server step times the example-weighted mean of ``S``'s updates, the same
FedAvg step the coordinator takes (GTG-Shapley, Liu et al. 2022, section 4). The
empty coalition's model is the base itself, so a round's game is worth
``v(all) - v(base)`` in total: the gain the round brought.

A coalition's value is whatever number the caller's ``value`` callback returns for
a flat parameter vector (accord's CLI: the metric averaged over the sites' own
holdouts, weighted by holdout size). Values are cached per coalition and counted,
because evaluating a model is the whole cost of the method.

Pure numpy: nothing here reads files or imports a task framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Coalition", "RoundGame", "RoundUpdates", "Value"]

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float64]
#: A coalition: indices into the round's participants.
Coalition = frozenset[int]
#: The value of a flat parameter vector (higher is better).
Value = Callable[[Vector], float]


@dataclass(frozen=True)
class RoundUpdates:
    """What one round kept: its base model and each valid site's update and weight.

    ``updates`` has one row per site in ``sites`` (flat float64, the layout of
    ``base``); ``weights`` are the examples each site claimed; ``server_lr`` is the
    server step (1.0 for plain FedAvg).
    """

    number: int
    sites: tuple[str, ...]
    base: Vector
    updates: Vector
    weights: Vector
    server_lr: float = 1.0

    def __post_init__(self) -> None:
        rows = len(self.sites)
        if self.updates.shape != (rows, self.base.size):
            raise ValueError(
                f"round {self.number}: updates have shape {self.updates.shape}, "
                f"expected ({rows}, {self.base.size}) for {rows} sites"
            )
        if self.weights.shape != (rows,) or not bool(np.all(self.weights > 0)):
            raise ValueError(
                f"round {self.number}: need one positive weight per site, "
                f"got {self.weights.tolist()}"
            )
        if len(set(self.sites)) != rows:
            raise ValueError(f"round {self.number}: a site is listed twice")

    def model(self, coalition: Coalition) -> Vector:
        """The model ``coalition`` would have made this round (the base if empty)."""
        if not coalition:
            return self.base
        rows = sorted(coalition)
        w = self.weights[rows]
        mean = np.tensordot(w / w.sum(), self.updates[rows], axes=1)
        return np.asarray(self.base + self.server_lr * mean, dtype=np.float64)


class RoundGame:
    """The values of one round's coalitions, each computed once and counted."""

    def __init__(self, players: int, value: Callable[[Coalition], float]) -> None:
        if players < 1:
            raise ValueError("a game needs at least one player")
        self.players = players
        self._value = value
        self._cache: dict[Coalition, float] = {}

    @classmethod
    def of(cls, kept: RoundUpdates, value: Value) -> RoundGame:
        """The game of ``kept``: a coalition is worth ``value`` of its model."""
        return cls(len(kept.sites), lambda c: float(value(kept.model(c))))

    @property
    def evaluations(self) -> int:
        """How many distinct coalitions were evaluated so far."""
        return len(self._cache)

    @property
    def everyone(self) -> Coalition:
        """The grand coalition."""
        return frozenset(range(self.players))

    def value(self, coalition: Coalition) -> float:
        """The value of ``coalition`` (cached)."""
        found = self._cache.get(coalition)
        if found is None:
            found = self._value(coalition)
            if not np.isfinite(found):
                raise ValueError(
                    f"the value of coalition {sorted(coalition)} is {found}; the "
                    "metric must be finite on every coalition model"
                )
            self._cache[coalition] = found
        return found

    def values(self, coalitions: Sequence[Coalition]) -> list[float]:
        """The values of several coalitions."""
        return [self.value(c) for c in coalitions]
