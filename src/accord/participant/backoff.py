"""How long a participant waits before dialling the coordinator again.

Exponential backoff with jitter: after the n-th failure in a row the wait is
``initial · factorⁿ``, capped at ``maximum``, then shortened by a random fraction
of up to ``jitter``, so that sites cut off by the same outage do not all redial
in the same instant when the coordinator comes back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts (seconds)."""

    initial_s: float = 0.5
    maximum_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.maximum_s and self.factor >= 1):
            raise ValueError("need 0 < initial_s <= maximum_s and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (0: the first failure)."""
        exponent = min(max(failures, 0), 64)
        base = min(self.maximum_s, self.initial_s * self.factor**exponent)
        return base * (1.0 - self.jitter * self.rng.random())
