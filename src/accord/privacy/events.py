"""The DpEvent each of accord's mechanisms declares, for any accountant to compose.

A mechanism states what it did as a ``dp_accounting`` DpEvent, and the accountant
(:mod:`accord.privacy.accountant`) composes the events; nothing else decides what a
round cost. This keeps the maths in one maintained library and lets a new
mechanism (record-level DP-SGD, adaptive clipping, distributed noise) be accounted
by stating its event, not by a new accountant.

Adjacency is add-or-remove one unit (one participant, or one record).
"""

from __future__ import annotations

import math
from typing import TypeAlias

from accord.privacy._dp import dp_event

__all__ = [
    "DpEvent",
    "dp_sgd_event",
    "gaussian_event",
    "participant_round_event",
]

#: ``dp_accounting.DpEvent`` (the library ships no type hints: Any to mypy).
DpEvent: TypeAlias = dp_event.DpEvent


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _rate(sampling_rate: float) -> float:
    q = float(sampling_rate)
    if not (math.isfinite(q) and 0 < q <= 1):
        raise ValueError(f"sampling rate must be in (0, 1], got {sampling_rate!r}")
    return q


def gaussian_event(noise_multiplier: float) -> DpEvent:
    """One Gaussian mechanism with noise ``noise_multiplier`` times the sensitivity."""
    return dp_event.GaussianDpEvent(_positive("noise multiplier", noise_multiplier))


def participant_round_event(noise_multiplier: float, sampling_rate: float) -> DpEvent:
    """One round of participant-level DP-FedAvg (central Gaussian noise).

    Each participant is in the round with probability ``sampling_rate`` (selected
    over eligible); the sum of clipped updates gets Gaussian noise of
    ``noise_multiplier`` times the clip. A rate of 1 (everyone, every round) is
    the plain Gaussian mechanism. accord selects a fixed number of participants;
    accounting it as Poisson sampling at the same rate is the approximation that
    TensorFlow Federated makes too (Flower 1.42's optional accountant for its
    fixed-clipping wrappers claims no amplification at all); it is exact at rate 1.
    """
    q = _rate(sampling_rate)
    gaussian = gaussian_event(noise_multiplier)
    return gaussian if q == 1.0 else dp_event.PoissonSampledDpEvent(q, gaussian)


def dp_sgd_event(noise_multiplier: float, sampling_rate: float, steps: int) -> DpEvent:
    """``steps`` steps of DP-SGD with Poisson sampling of records at ``sampling_rate``.

    Record-level DP inside one site (Opacus, or per-example clipping in numpy).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    q = _rate(sampling_rate)
    step = dp_event.PoissonSampledDpEvent(q, gaussian_event(noise_multiplier))
    return dp_event.SelfComposedDpEvent(step, steps)
