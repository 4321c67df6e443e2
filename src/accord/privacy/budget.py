"""A privacy budget: the epsilon a run (or a site) may spend, checked before a step.

The question is always asked *before* the mechanism runs: "would one more round
leave epsilon within the limit?". A round that would exceed it does not start, so
the recorded epsilon never passes the limit. The caller stops cleanly on
:class:`~accord.errors.PrivacyBudgetExhausted` and records the epsilon spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accord.errors import PrivacyBudgetExhausted
from accord.privacy.accountant import Accountant
from accord.privacy.events import DpEvent

__all__ = ["PrivacyBudget"]


@dataclass(frozen=True, slots=True)
class PrivacyBudget:
    """At most ``epsilon`` at ``delta``; ``epsilon`` None: no limit, only accounting."""

    epsilon: float | None
    delta: float

    def __post_init__(self) -> None:
        if self.epsilon is not None and not (
            math.isfinite(self.epsilon) and self.epsilon > 0
        ):
            raise ValueError("a budget's epsilon must be finite and > 0")
        if not 0 < self.delta < 1:
            raise ValueError("a budget's delta must be in (0, 1)")

    def check(self, accountant: Accountant, event: DpEvent) -> float:
        """Epsilon after ``event``; :class:`PrivacyBudgetExhausted` if over the limit.

        Nothing is composed: the caller composes ``event`` once it has run.
        """
        after = accountant.epsilon_after(event, self.delta)
        if self.epsilon is not None and after > self.epsilon:
            raise PrivacyBudgetExhausted(
                spent=accountant.epsilon(self.delta), limit=self.epsilon, next=after
            )
        return after
