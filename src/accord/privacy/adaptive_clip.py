"""Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021), as pure functions.

A fixed clip is a guess: too low and every update is cut down (bias), too high and
the noise, proportional to the clip, drowns the signal. Andrew et al. let the clip
follow a chosen quantile ``gamma`` of the participants' update norms: each round,
every participant reports one bit, "my update's norm was within the clip", the
coordinator sums the bits *with Gaussian noise* (they are private data too) and
moves the clip geometrically::

    b = (sum_i (bit_i - 1/2) + N(0, sigma_b^2)) / m + 1/2
    clip <- clip * exp(-lr * (b - gamma))

The noisy count is a second Gaussian mechanism on the same participants (centred
bits: sensitivity 1/2). Run together with the update's Gaussian of multiplier
``z_update``, the pair is one Gaussian mechanism of multiplier ``z`` with
``z^-2 = z_update^-2 + (2 sigma_b)^-2`` (their Theorem 1). So accord accounts the
round with the configured ``noise_multiplier`` ``z`` as usual and spends part of it
on the count: :func:`update_noise_multiplier` gives the ``z_update`` to use on the
updates. State is explicit (the clip is a float the caller keeps and records).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AdaptiveClip"]


@dataclass(frozen=True, slots=True)
class AdaptiveClip:
    """Settings of the clip's update: quantile, learning rate and count noise."""

    target_quantile: float
    learning_rate: float
    count_stddev: float

    def __post_init__(self) -> None:
        if not 0 < self.target_quantile < 1:
            raise ValueError("target_quantile must be in (0, 1)")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError("the clip's learning rate must be finite and > 0")
        if not (math.isfinite(self.count_stddev) and self.count_stddev > 0):
            raise ValueError("the count's noise must be finite and > 0")

    def update_noise_multiplier(self, noise_multiplier: float) -> float:
        """The updates' multiplier, so that updates and count together give ``z``.

        :class:`ValueError` when the count's noise alone already spends more than
        ``z`` allows (``2 * count_stddev <= z``): raise ``count_stddev``.
        """
        rest = noise_multiplier**-2 - (2 * self.count_stddev) ** -2
        if rest <= 0:
            raise ValueError(
                f"the clip count's noise ({self.count_stddev:g}) leaves nothing of "
                f"noise multiplier {noise_multiplier:g} for the updates; raise "
                f"clip_count_stddev above {noise_multiplier / 2:g}"
            )
        return float(rest**-0.5)

    def noisy_fraction(
        self, within: int, participants: int, rng: np.random.Generator
    ) -> float:
        """The noised fraction of ``participants`` whose norm was within the clip."""
        if participants < 1 or not 0 <= within <= participants:
            raise ValueError(f"{within} within the clip out of {participants}")
        centred = within - participants / 2 + rng.normal(0.0, self.count_stddev)
        return float(centred / participants + 0.5)

    def next_clip(self, clip: float, fraction_within: float) -> float:
        """The clip after a round in which ``fraction_within`` (noisy) were within."""
        return float(
            clip
            * math.exp(-self.learning_rate * (fraction_within - self.target_quantile))
        )
