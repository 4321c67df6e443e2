"""Adaptive clipping after Andrew et al. 2021."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.privacy import AdaptiveClip

SETTINGS = AdaptiveClip(target_quantile=0.5, learning_rate=0.2, count_stddev=1.0)


def test_noise_is_split_between_count_and_updates():
    z_update = SETTINGS.update_noise_multiplier(1.0)

    # z^-2 = z_update^-2 + (2 sigma_b)^-2  (their Theorem 1)
    assert z_update**-2 + (2 * 1.0) ** -2 == pytest.approx(1.0)
    assert z_update > 1.0


def test_count_noise_too_small_for_the_multiplier_is_refused():
    tight = AdaptiveClip(0.5, 0.2, count_stddev=0.5)  # 2 * 0.5 == z: nothing left
    with pytest.raises(ValueError, match="clip_count_stddev"):
        tight.update_noise_multiplier(1.0)
    assert AdaptiveClip(0.5, 0.2, 0.5001).update_noise_multiplier(1.0) > 0


def test_clip_shrinks_when_more_than_the_quantile_fit_and_grows_otherwise():
    assert SETTINGS.next_clip(1.0, 0.9) == pytest.approx(math.exp(-0.2 * 0.4))
    assert SETTINGS.next_clip(1.0, 0.1) > 1.0
    assert SETTINGS.next_clip(1.0, 0.5) == 1.0


def test_noisy_fraction_is_centred_on_the_true_fraction():
    rng = np.random.default_rng(0)
    draws = [SETTINGS.noisy_fraction(30, 40, rng) for _ in range(4000)]
    assert np.mean(draws) == pytest.approx(0.75, abs=0.005)
    assert np.std(draws) == pytest.approx(1.0 / 40, rel=0.05)


@pytest.mark.parametrize("quantile", [0.0, 1.0])
def test_quantile_must_be_inside_the_unit_interval(quantile):
    with pytest.raises(ValueError, match="target_quantile"):
        AdaptiveClip(quantile, 0.2, 1.0)
