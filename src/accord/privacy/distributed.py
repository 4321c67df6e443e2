"""Accounting of distributed noise: Skellam events composed in Rényi DP.

``dp-accounting`` knows Gaussian, Laplace and subsampled events but not the
Skellam mechanism, so a round with distributed noise declares a
:class:`SkellamEvent` (the summed noise parameter and the sum's integer
sensitivities), and :class:`SkellamAccountant` composes their RDP curves
(:func:`~accord.privacy.skellam.skellam_rdp`, additive per order) and converts the
total to (epsilon, delta) with ``dp-accounting``'s RDP conversion
(``compute_epsilon``, Proposition 12 of Canonne, Kamath and Steinke 2020). It
answers the same questions as :class:`~accord.privacy.accountant.DpAccountant`,
so the budget check works unchanged.

No amplification by sampling is claimed: a round is accounted as if the protected
site took part in it (the worst case), whatever fraction of the federation was
selected. The Skellam RDP bound holds at integer orders only, which are the only
ones used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accord.privacy._dp import rdp_privacy_accountant
from accord.privacy.skellam import RDP_ORDERS, skellam_rdp

__all__ = ["SkellamAccountant", "SkellamEvent", "calibrate_multiplier"]

#: A round's ring sensitivity for calibration. Real rounds have 1e4 to 1e6 (the
#: scale keeps rounding under a tenth of the clip and shares under 2^36); the
#: Skellam bound's second-order term shrinks as the sensitivity grows, so
#: calibrating at the low end is conservative for them.
_CALIBRATION_L2 = 1e4
#: Calibrate a hair below the target, so that the real rounds' sensitivities
#: (which move epsilon by far less) never push the last round over it.
_CALIBRATION_MARGIN = 1e-4


@dataclass(frozen=True, slots=True)
class SkellamEvent:
    """One release of an integer sum carrying ``Sk(mu)`` noise per coordinate.

    ``l2`` and ``l1`` are the sum's sensitivities in ring units (one site's
    encoded, rounded contribution), ``mu`` the Skellam parameter of the noise in
    the sum (the sum of the contributors' shares).
    """

    mu: float
    l2: float
    l1: float

    def __post_init__(self) -> None:
        for name in ("mu", "l2", "l1"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")

    def rdp(self) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
        """The event's RDP at :data:`~accord.privacy.skellam.RDP_ORDERS`."""
        return skellam_rdp(self.mu, l2=self.l2, l1=self.l1)


class SkellamAccountant:
    """Composes :class:`SkellamEvent` s; epsilon from ``dp-accounting``'s conversion."""

    kind = "skellam-rdp"

    def __init__(self) -> None:
        self._counts: list[tuple[SkellamEvent, int]] = []

    @property
    def events(self) -> tuple[tuple[SkellamEvent, int], ...]:
        """Distinct events with their counts, in order."""
        return tuple(self._counts)

    def compose(self, event: SkellamEvent, count: int = 1) -> None:
        """Record that ``event`` ran ``count`` more times."""
        self._counts = _added(self._counts, event, count)

    def epsilon(self, delta: float) -> float:
        """Epsilon spent so far at ``delta`` (0 before anything ran)."""
        return _epsilon(self._counts, delta)

    def epsilon_after(self, event: SkellamEvent, delta: float, count: int = 1) -> float:
        """Epsilon if ``event`` ran ``count`` more times; changes nothing."""
        return _epsilon(_added(self._counts, event, count), delta)


def _epsilon(counts: list[tuple[SkellamEvent, int]], delta: float) -> float:
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if not any(n for _, n in counts):
        return 0.0
    total = sum((event.rdp() * n for event, n in counts), np.zeros(len(RDP_ORDERS)))
    eps, _ = rdp_privacy_accountant.compute_epsilon(
        list(RDP_ORDERS), total.tolist(), delta
    )
    return float(eps)


def _added(
    counts: list[tuple[SkellamEvent, int]], event: SkellamEvent, count: int
) -> list[tuple[SkellamEvent, int]]:
    if not isinstance(event, SkellamEvent):
        raise TypeError(
            f"a Skellam accountant composes SkellamEvents, not {type(event).__name__}"
        )
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    out = list(counts)
    for i, (known, n) in enumerate(out):
        if known == event:
            out[i] = (known, n + count)
            return out
    out.append((event, count))
    return out


def calibrate_multiplier(
    target_epsilon: float, *, rounds: int, delta: float, share_of_target: float = 1.0
) -> float:
    """The smallest noise multiplier whose ``rounds`` Skellam rounds stay in budget.

    Each round is accounted with the noise of the fewest contributors the
    protocol unmasks (``share_of_target`` times the target noise; 1 when the
    shares are sized for the threshold), no amplification by sampling. Bisection
    over the multiplier, since epsilon falls as it grows; ValueError when even
    a multiplier of 100 spends more than the target.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0) or rounds < 1:
        raise ValueError("need a target epsilon > 0 and at least one round")
    goal = target_epsilon * (1 - _CALIBRATION_MARGIN)

    def spent(multiplier: float) -> float:
        l2 = _CALIBRATION_L2
        mu = share_of_target * (multiplier * l2) ** 2 / 2
        return _epsilon([(SkellamEvent(mu, l2, l2 * 1e3), rounds)], delta)

    low, high = 1e-3, 100.0
    if spent(high) > goal:
        raise ValueError(
            f"epsilon {target_epsilon} over {rounds} rounds needs a noise multiplier "
            "above 100"
        )
    for _ in range(60):
        middle = (low + high) / 2
        if spent(middle) > goal:
            low = middle
        else:
            high = middle
    return high
