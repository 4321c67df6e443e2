"""From a target epsilon to the noise multiplier that reaches it.

The operator states the privacy they want (``target_epsilon`` at ``delta``) and
accord finds the smallest noise multiplier whose mechanism, run for the planned
number of steps at the planned sampling rate, spends no more. The search is
``dp_accounting.calibrate_dp_mechanism`` (Brent's method over fresh accountants),
so the maths stays in the maintained library; this module states the events and
turns its failures into errors that say what to change.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from accord.errors import ConfigError
from accord.privacy._dp import dp_accounting
from accord.privacy.accountant import (
    PLD_DISCRETIZATION,
    AccountantKind,
    epsilon_of,
    fresh_accountant,
)
from accord.privacy.events import DpEvent, dp_sgd_event, participant_round_event

__all__ = [
    "MAX_NOISE_MULTIPLIER",
    "MIN_NOISE_MULTIPLIER",
    "calibrate",
    "calibrate_noise_multiplier",
]

#: The largest noise multiplier searched: beyond it the signal is gone anyway.
MAX_NOISE_MULTIPLIER = 100.0
#: The smallest: below it one Gaussian alone spends epsilon > 40 at delta 1e-5, no
#: protection worth the name (and PLD's grid grows as 1 / z^2).
MIN_NOISE_MULTIPLIER = 0.1
#: Relative precision of the multiplier found (the result errs on the noisy side).
_TOLERANCE = 1e-4


def calibrate(
    make_event: Callable[[float], DpEvent],
    *,
    target_epsilon: float,
    delta: float,
    kind: AccountantKind = "pld",
    pld_discretization: float = PLD_DISCRETIZATION,
) -> float:
    """The smallest noise multiplier ``z`` with ``epsilon(make_event(z)) <= target``.

    ``make_event`` states the whole mechanism (every round or step) for a given
    multiplier. :class:`ConfigError` when even ``MAX_NOISE_MULTIPLIER`` does not
    reach the target.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ConfigError(
            f"must be a finite number > 0, got {target_epsilon!r}",
            key="privacy.target_epsilon",
        )

    def epsilon(z: float, how: AccountantKind = kind) -> float:
        events = [(make_event(z), 1)]
        return epsilon_of(
            events, delta, kind=how, pld_discretization=pld_discretization
        )

    # The bracket comes from RDP, which is fast at every multiplier; PLD, slow
    # where the noise is small, then searches only inside it.
    if epsilon(MIN_NOISE_MULTIPLIER, "rdp") <= target_epsilon:
        raise ConfigError(
            f"epsilon {target_epsilon:g} is spent only with a noise multiplier below "
            f"{MIN_NOISE_MULTIPLIER:g}, which protects next to nothing; lower "
            "target_epsilon, or give noise_multiplier directly",
            key="privacy.target_epsilon",
        )
    if epsilon(MAX_NOISE_MULTIPLIER) > target_epsilon:
        raise ConfigError(
            f"epsilon {target_epsilon:g} at delta {delta:g} cannot be reached with a "
            f"noise multiplier up to {MAX_NOISE_MULTIPLIER:g}; raise target_epsilon, "
            "run fewer rounds, or select fewer participants per round",
            key="privacy.target_epsilon",
        )
    low, high = MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER
    if kind != "rdp":
        z_rdp = _search(make_event, target_epsilon, delta, "rdp", low, high, 1e-2)
        high = min(high, z_rdp * 1.05)
        while high < MAX_NOISE_MULTIPLIER and epsilon(high) > target_epsilon:
            high = min(MAX_NOISE_MULTIPLIER, high * 1.5)
        low = max(low, high / 4)
        while low > MIN_NOISE_MULTIPLIER and epsilon(low) <= target_epsilon:
            low = max(MIN_NOISE_MULTIPLIER, low / 2)
    z = _search(
        make_event,
        target_epsilon,
        delta,
        kind,
        low,
        high,
        _TOLERANCE,
        pld_discretization,
    )
    # Brent's method ends within the tolerance on either side: step up until the
    # target holds, so the promise is kept rather than approximately kept.
    while epsilon(z) > target_epsilon:
        z *= 1 + _TOLERANCE
    return z


def _search(
    make_event: Callable[[float], DpEvent],
    target_epsilon: float,
    delta: float,
    kind: AccountantKind,
    low: float,
    high: float,
    tol: float,
    pld_discretization: float = PLD_DISCRETIZATION,
) -> float:
    """``dp_accounting``'s Brent search for the multiplier within ``[low, high]``."""
    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: fresh_accountant(kind, pld_discretization=pld_discretization),
            make_event,
            target_epsilon,
            delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(low, high),
            tol=tol,
        )
    )


def calibrate_noise_multiplier(
    target_epsilon: float,
    *,
    sampling_rate: float,
    steps: int,
    delta: float,
    kind: AccountantKind = "pld",
    mechanism: str = "participant",
    pld_discretization: float = PLD_DISCRETIZATION,
) -> float:
    """Noise multiplier for ``steps`` rounds (or DP-SGD steps) at ``sampling_rate``.

    ``mechanism`` is ``"participant"`` (one Gaussian per round, participants
    sampled at ``sampling_rate``) or ``"record"`` (DP-SGD, records Poisson-sampled).
    """
    if steps < 1:
        raise ValueError(f"calibration needs at least one step, got {steps}")

    def make_event(z: float) -> DpEvent:
        if mechanism == "record":
            return dp_sgd_event(z, sampling_rate, steps)
        if mechanism != "participant":
            raise ValueError(f"unknown mechanism {mechanism!r}")
        one = participant_round_event(z, sampling_rate)
        return one if steps == 1 else dp_accounting.SelfComposedDpEvent(one, steps)

    return calibrate(
        make_event,
        target_epsilon=target_epsilon,
        delta=delta,
        kind=kind,
        pld_discretization=pld_discretization,
    )
