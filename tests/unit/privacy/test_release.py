"""Noise for a one-off statistics release: calibrated to the epsilon it records."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from accord.privacy.noise import NoiseSource
from accord.privacy.release import StatisticNoise, analytic_gaussian_std


def delta_of(sigma: float, sensitivity: float, epsilon: float) -> float:
    """Balle and Wang's exact delta of the Gaussian mechanism."""
    phi = NormalDist().cdf
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    return phi(a - b) - math.exp(epsilon) * phi(-a - b)


@pytest.mark.parametrize(("epsilon", "delta"), [(0.1, 1e-6), (1.0, 1e-5), (8.0, 1e-9)])
def test_the_analytic_gaussian_is_the_smallest_sigma_that_holds(epsilon, delta):
    sigma = analytic_gaussian_std(1.0, epsilon, delta)

    assert delta_of(sigma, 1.0, epsilon) <= delta
    assert delta_of(sigma * 0.99, 1.0, epsilon) > delta


def test_it_needs_less_noise_than_the_classic_bound_where_that_holds():
    classic = math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5

    assert analytic_gaussian_std(1.0, 0.5, 1e-5) < classic


def test_the_sensitivity_scales_the_noise():
    one = analytic_gaussian_std(1.0, 1.0, 1e-6)

    assert analytic_gaussian_std(16.0, 1.0, 1e-6) == pytest.approx(16 * one, rel=1e-6)


def test_the_budget_is_split_evenly_over_the_queries():
    noise = StatisticNoise("laplace", 2.0, 0.0, 4, NoiseSource(0))

    assert noise.scale(1.0) == 2.0  # 1 / (2 / 4)
    assert noise.scale(16.0) == 32.0


def test_laplace_draws_have_the_laplace_spread():
    noise = StatisticNoise("laplace", 1.0, 0.0, 1, NoiseSource(3))

    drawn = noise.add(np.zeros(40_000), 1.0, 0)

    # Laplace(b) has standard deviation b * sqrt(2)
    assert drawn.std() == pytest.approx(math.sqrt(2), rel=0.03)
    assert np.array_equal(drawn, noise.add(np.zeros(40_000), 1.0, 0))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("laplace", 0.0, 0.0, 1), "epsilon"),
        (("laplace", 1.0, 0.0, 0), "query"),
        (("gaussian", 1.0, 0.0, 1), "delta"),
        (("gaussian", 1.0, 1.0, 1), "delta"),
    ],
)
def test_a_budget_out_of_range_is_refused(args, words):
    with pytest.raises(ValueError, match=words):
        StatisticNoise(*args, NoiseSource(0))


def test_the_bounds_themselves_are_accepted():
    assert StatisticNoise("laplace", 1000.0, 0.0, 1, NoiseSource(0)).scale(1) == 1e-3
    assert analytic_gaussian_std(1.0, 1000.0, 0.999) > 0
