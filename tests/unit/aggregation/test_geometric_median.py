"""Geometric median (Weiszfeld), centered clipping and FLTrust on the Gram matrix."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from accord.aggregation import CenteredClip, FLTrust, GeometricMedian, gram_matrix
from accord.aggregation.centered_clip import centered_clip
from accord.aggregation.geometric_median import geometric_median
from accord.errors import ConfigError
from accord.params import Params


def objective(z: np.ndarray, points: np.ndarray, weights: np.ndarray) -> float:
    return float(weights @ np.linalg.norm(points - z, axis=1))


@seed(10)
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(3, 8),
    dim=st.integers(1, 5),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_geometric_median_is_within_tolerance_of_the_true_minimiser(n, dim, data_seed):
    # Arrange: small cases, minimised independently by scipy (Nelder-Mead from
    # the coordinate-wise median, to 1e-12)
    rng = np.random.default_rng(data_seed)
    points = rng.standard_normal((n, dim)) * rng.uniform(0.1, 10)
    weights = rng.integers(1, 50, n).astype(np.float64)
    updates = [Params({"p": row}) for row in points]
    best = minimize(
        objective,
        np.median(points, axis=0),
        args=(points, weights),
        method="Nelder-Mead",
        options={"xatol": 1e-12, "fatol": 1e-12, "maxiter": 40_000},
    )

    # Act
    got = geometric_median(
        updates, weights.tolist(), tolerance=1e-10, max_iterations=1000
    )

    # Assert: the objective at our point is within 1e-6 (relative) of the optimum
    ours = objective(got["p"], points, weights)
    assert ours <= best.fun * (1 + 1e-6) + 1e-9


def test_geometric_median_resists_a_far_minority():
    honest = [Params({"p": np.array([x, 0.0])}) for x in (0.0, 1.0, 2.0)]
    attacker = Params({"p": np.array([1e9, 1e9])})

    # the attacker holds 40% of the weight, 1e9 away: it pulls the median by less
    # than the honest points' spread (the mean would move 4e8); the optimum, by
    # scipy from the same points, is at (1.81294, 0.32521)
    got = GeometricMedian().aggregate([*honest, attacker], [1.0, 1.0, 1.0, 2.0])

    np.testing.assert_allclose(got["p"], [1.81294, 0.32521], atol=1e-3)


def test_geometric_median_options_are_checked():
    with pytest.raises(ConfigError, match="iterations"):
        GeometricMedian(max_iterations=0)
    with pytest.raises(ConfigError, match="tolerance"):
        GeometricMedian(tolerance=0.0)


def test_centered_clipping_moves_at_most_tau_per_iteration_for_each_share():
    # Arrange: the center at 0, two updates at distance 10 in opposite ... one
    # honest near the center, one attacker far away, equal weights
    center = Params({"p": np.zeros(3)})
    honest = Params({"p": np.array([0.1, 0.0, 0.0])})
    attacker = Params({"p": np.array([0.0, 1e6, 0.0])})

    got = centered_clip(
        [honest, attacker], [1.0, 1.0], center=center, tau=1.0, iterations=1
    )

    # Assert: the attacker pulled by its share (1/2) of tau at most
    assert got["p"][1] == pytest.approx(0.5)
    assert got["p"][0] == pytest.approx(0.05)


def test_centered_clipping_without_a_fixed_radius_is_the_mean_of_close_updates():
    updates = [Params({"p": np.array([v, 2 * v])}) for v in (1.0, 1.0, 1.0)]

    got = CenteredClip().aggregate(updates, [1.0, 2.0, 3.0])

    np.testing.assert_allclose(got["p"], [1.0, 2.0])


def test_centered_clipping_checks_its_options():
    with pytest.raises(ConfigError, match="tau"):
        CenteredClip(tau=-1.0)
    with pytest.raises(ConfigError, match="iterations"):
        CenteredClip(iterations=0)


def test_fltrust_drops_opposed_updates_and_rescales_to_the_reference_norm():
    reference = Params({"p": np.array([1.0, 0.0])})
    same_way = Params({"p": np.array([100.0, 0.0])})  # scaled up: rescaled to 1
    opposed = Params({"p": np.array([-5.0, 0.0])})  # trust 0
    sideways = Params({"p": np.array([0.0, 3.0])})  # cosine 0: trust 0

    got = FLTrust(reference=reference).aggregate(
        [same_way, opposed, sideways], [1.0, 50.0, 50.0]
    )

    np.testing.assert_allclose(got["p"], [1.0, 0.0])


def test_fltrust_with_no_trusted_update_leaves_the_model_where_it_is():
    reference = Params({"p": np.array([1.0, 0.0])})
    updates = [Params({"p": np.array([-1.0, 0.0])}), Params({"p": np.zeros(2)})]

    got = FLTrust(reference=reference).aggregate(updates, [1.0, 1.0])

    np.testing.assert_array_equal(got["p"], [0.0, 0.0])


def test_fltrust_without_a_reference_says_where_one_comes_from():
    with pytest.raises(ValueError, match="root"):
        FLTrust().aggregate([Params({"p": np.ones(2)})], [1.0])


def test_centered_gram_keeps_distances_of_updates_far_from_the_origin():
    # two updates 1e-3 apart at distance 1e4 from the origin, in float32
    base = np.full(1000, 1e4 / np.sqrt(1000), np.float32)
    a, b = Params({"p": base}), Params({"p": base.copy()})
    b["p"][0] += np.float32(1e-3) * 1000  # a visible float32 step at this scale
    want = float(np.sum((a["p"].astype(np.float64) - b["p"].astype(np.float64)) ** 2))

    gram = gram_matrix([a, b])

    got = gram[0, 0] + gram[1, 1] - 2 * gram[0, 1]
    assert got == pytest.approx(want, rel=1e-9)
