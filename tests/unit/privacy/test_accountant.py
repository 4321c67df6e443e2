"""Accountants against published values, and their monotonicity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.privacy.accountant import DpAccountant, epsilon_of
from accord.privacy.events import (
    dp_sgd_event,
    gaussian_event,
    participant_round_event,
)

# Abadi et al. 2016's MNIST setting, as TensorFlow Privacy's and Opacus's tests use
# it: sigma 1, batch 256 of 50,000 (q = 0.00512), 60 epochs (1953 steps), delta 1e-5.
ABADI = dp_sgd_event(1.0, 0.00512, 1953)

#: Coarse PLD grid for the property tests: the epsilon stays an upper bound, 10x
#: faster than the default.
COARSE = 1e-2


def test_rdp_matches_the_published_value():
    # RDP (Mironov 2017): 1.47 in the issue, as TensorFlow Privacy reports.
    assert epsilon_of([(ABADI, 1)], 1e-5, kind="rdp") == pytest.approx(1.47, abs=0.01)


def test_pld_matches_the_published_value():
    # PLD (Koskela et al., Doroshenko et al.): 1.23, tighter than RDP.
    assert epsilon_of([(ABADI, 1)], 1e-5, kind="pld") == pytest.approx(1.23, abs=0.01)


def test_empty_accountant_has_spent_nothing():
    assert DpAccountant().epsilon(1e-5) == 0.0


def test_rounds_composed_one_by_one_equal_the_self_composition():
    one = participant_round_event(1.1, 0.5)
    accountant = DpAccountant("rdp")
    for _ in range(5):
        accountant.compose(one)

    assert accountant.events == ((one, 5),)
    assert accountant.epsilon(1e-5) == pytest.approx(
        epsilon_of([(one, 5)], 1e-5, kind="rdp"), rel=1e-12
    )


def test_epsilon_after_asks_without_spending():
    accountant = DpAccountant("rdp")
    accountant.compose(gaussian_event(2.0))
    before = accountant.epsilon(1e-5)

    after = accountant.epsilon_after(gaussian_event(2.0), 1e-5)

    assert after > before
    assert accountant.epsilon(1e-5) == before
    assert accountant.events == ((gaussian_event(2.0), 1),)


def test_full_participation_is_the_plain_gaussian():
    assert participant_round_event(1.0, 1.0) == gaussian_event(1.0)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.0 + 1e-12, float("nan")])
def test_sampling_rate_out_of_range_is_refused(rate):
    with pytest.raises(ValueError, match="sampling rate"):
        participant_round_event(1.0, rate)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5])
def test_delta_out_of_range_is_refused(delta):
    with pytest.raises(ValueError, match="delta"):
        epsilon_of([(gaussian_event(1.0), 1)], delta)


def test_unknown_accountant_is_refused():
    with pytest.raises(ValueError, match="pld, rdp"):
        DpAccountant("moments")  # type: ignore[arg-type]


def _eps(z: float, q: float, t: int, kind: str = "pld") -> float:
    event = participant_round_event(z, q)
    return epsilon_of([(event, t)], 1e-5, kind=kind, pld_discretization=COARSE)  # type: ignore[arg-type]


@settings(max_examples=15)
@given(
    st.floats(0.7, 3.0), st.floats(0.05, 1.0), st.integers(1, 40), st.integers(1, 20)
)
def test_epsilon_grows_with_steps(z, q, t, more):
    assert _eps(z, q, t + more, "rdp") >= _eps(z, q, t, "rdp")


@settings(max_examples=15)
@given(st.floats(0.7, 3.0), st.floats(0.05, 0.9), st.floats(0.01, 0.1))
def test_epsilon_grows_with_the_sampling_rate(z, q, dq):
    assert _eps(z, min(1.0, q + dq), 10) >= _eps(z, q, 10) - 1e-9


@settings(max_examples=15)
@given(st.floats(0.7, 3.0), st.floats(0.05, 1.0), st.floats(0.05, 1.0))
def test_epsilon_falls_as_the_noise_grows(z, q, dz):
    assert _eps(z + dz, q, 10) <= _eps(z, q, 10) + 1e-9


def test_without_the_extra_the_error_names_the_install_command():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['dp_accounting'] = None  # as if not installed\n"
        "import accord.privacy  # clipping and noise need numpy only\n"
        "try:\n"
        "    import accord.privacy.accountant\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("MissingExtraError")
    assert "pip install 'accord[privacy]'" in out.stdout
