"""Target epsilon -> noise multiplier, and back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import ConfigError
from accord.privacy.accountant import epsilon_of
from accord.privacy.calibration import calibrate_noise_multiplier
from accord.privacy.events import dp_sgd_event, participant_round_event


@settings(max_examples=8)
@given(st.floats(0.5, 10.0), st.sampled_from([0.25, 1.0]), st.integers(1, 30))
def test_calibration_round_trips(target, rate, rounds):
    z = calibrate_noise_multiplier(
        target, sampling_rate=rate, steps=rounds, delta=1e-5, kind="rdp"
    )

    spent = epsilon_of([(participant_round_event(z, rate), rounds)], 1e-5, kind="rdp")

    assert spent <= target  # the promise holds...
    assert spent == pytest.approx(target, rel=2e-3)  # ...and is not wasted


def test_calibration_finds_sigma_one_for_the_published_epsilon():
    z = calibrate_noise_multiplier(
        1.4743,
        sampling_rate=0.00512,
        steps=1953,
        delta=1e-5,
        kind="rdp",
        mechanism="record",
    )
    assert z == pytest.approx(1.0, abs=2e-3)
    spent = epsilon_of([(dp_sgd_event(z, 0.00512, 1953), 1)], 1e-5, kind="rdp")
    assert spent <= 1.4743


def test_pld_calibration_keeps_its_promise():
    z = calibrate_noise_multiplier(2.0, sampling_rate=1.0, steps=10, delta=1e-5)
    assert epsilon_of([(participant_round_event(z, 1.0), 10)], 1e-5) <= 2.0


def test_unreachable_target_names_what_to_change():
    with pytest.raises(ConfigError, match="raise target_epsilon") as err:
        calibrate_noise_multiplier(
            1e-6, sampling_rate=1.0, steps=100_000, delta=1e-5, kind="rdp"
        )
    assert err.value.key == "privacy.target_epsilon"


@pytest.mark.parametrize("target", [0.0, -1.0, float("inf")])
def test_target_must_be_positive_and_finite(target):
    with pytest.raises(ConfigError, match="target_epsilon"):
        calibrate_noise_multiplier(target, sampling_rate=1.0, steps=1, delta=1e-5)
