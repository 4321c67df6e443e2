"""The Skellam sampler, its RDP curve and its tail bound."""

import math

import numpy as np
import pytest

from accord.privacy.skellam import (
    MAX_MU,
    integer_sensitivity,
    sample_skellam,
    skellam_rdp,
    tail_bound,
)

N = 200_000


def test_a_seeded_sample_has_mean_zero_and_variance_two_mu():
    # Arrange
    mu = 50.0
    rng = np.random.default_rng(7)

    # Act
    sample = sample_skellam(mu, N, rng)

    # Assert: the mean's standard error is sqrt(2 mu / N) = 0.022, so 0.12 is
    # more than 5 standard errors; the variance's is about 100 * sqrt(2 / N) =
    # 0.32, so 2 % (2.0) is more than 6.
    assert sample.dtype == np.int64
    assert abs(sample.mean()) < 0.12
    assert sample.var() == pytest.approx(2 * mu, rel=0.02)


def test_the_largest_parameter_keeps_its_variance():
    # At MAX_MU numpy's Poisson is still accurate: the variance of 400,000 draws
    # is right within 1 % (standard error 0.22 %); above 1e14 it is not, which is
    # why larger parameters are refused.
    sample = sample_skellam(MAX_MU, 400_000, np.random.default_rng(1))
    assert sample.dtype == np.int64
    assert sample.var() == pytest.approx(2 * MAX_MU, rel=0.01)


def test_zero_gives_zeros_and_bad_parameters_are_refused():
    assert not sample_skellam(0.0, 5, np.random.default_rng(0)).any()
    for bad in (-1.0, math.inf, math.nan, MAX_MU * 1.01):
        with pytest.raises(ValueError, match="Skellam parameter"):
            sample_skellam(bad, 5, np.random.default_rng(0))


def test_the_rdp_curve_matches_the_formula_by_hand():
    # alpha = 2, mu = 10, l2 = 2, l1 = 3:
    #   2 * 4 / 40 = 0.2, plus min((3 * 4 + 18) / 1600, 9 / 40) = 0.01875
    # alpha = 3: 3 * 4 / 40 = 0.3, plus min((5 * 4 + 18) / 1600, 0.225) = 0.02375
    rdp = skellam_rdp(10.0, l2=2.0, l1=3.0, orders=(2, 3))
    assert rdp.tolist() == pytest.approx([0.21875, 0.32375], rel=1e-12)


def test_the_second_term_takes_the_smaller_bound():
    # mu = 1, l2 = 1, l1 = 1, alpha = 100: (199 + 6) / 16 > 3 / 4
    (rdp,) = skellam_rdp(1.0, l2=1.0, l1=1.0, orders=(100,))
    assert rdp == pytest.approx(100 / 4 + 0.75)


def test_non_integer_orders_are_refused():
    with pytest.raises(ValueError, match="integer orders"):
        skellam_rdp(10.0, l2=1.0, l1=1.0, orders=(1.5,))  # type: ignore[arg-type]


def test_integer_sensitivity_adds_the_rounding_and_bounds_l1():
    l2, l1 = integer_sensitivity(100.0, 16)
    assert l2 == 104.0
    assert l1 == 4 * 104.0 <= l2**2  # sqrt(16) * l2, below l2^2
    assert integer_sensitivity(0.5, 1) == (1.5, 1.5)
    with pytest.raises(ValueError):
        integer_sensitivity(0.0, 4)


def test_the_tail_bound_holds_empirically_and_grows_with_mu():
    # With failure 1e-3 over 1000 coordinates, a sample of 1000 stays inside.
    tau = tail_bound(40.0, coordinates=1000, failure=1e-3)
    sample = sample_skellam(40.0, 1000, np.random.default_rng(3))
    assert np.abs(sample).max() < tau
    assert tail_bound(400.0, coordinates=1000, failure=1e-3) > tau
    # A much smaller tau would be crossed: the bound is not vacuous.
    assert tau < 12 * math.sqrt(80)
