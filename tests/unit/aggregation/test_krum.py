"""Krum, Multi-Krum and Bulyan: the bounds on attackers, refused just past them."""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation import Bulyan, Krum, MultiKrum, make_rule
from accord.aggregation.bulyan import bulyan_attackers, closest_to_median
from accord.aggregation.gram import gram_matrix, squared_distances
from accord.aggregation.krum import krum_attackers, krum_scores
from accord.errors import ConfigError, TooFewUpdates
from accord.params import Params


def updates_of(n: int, size: int = 12, seed: int = 0) -> list[Params]:
    rng = np.random.default_rng(seed)
    return [
        Params({"w": rng.standard_normal(size).astype(np.float32)}) for _ in range(n)
    ]


@pytest.mark.parametrize("f", [0, 1, 2, 4])
def test_krum_refuses_n_equal_2f_plus_2_and_runs_at_2f_plus_3(f):
    with pytest.raises(TooFewUpdates) as refused:
        Krum(attackers=f).aggregate(updates_of(2 * f + 2), [1.0] * (2 * f + 2))

    assert refused.value.required == 2 * f + 3
    assert "n > 2f + 2" in str(refused.value)
    assert "attackers" in str(refused.value)  # says what to change
    Krum(attackers=f).aggregate(updates_of(2 * f + 3), [1.0] * (2 * f + 3))
    MultiKrum(attackers=f).aggregate(updates_of(2 * f + 3), [1.0] * (2 * f + 3))


@pytest.mark.parametrize("f", [0, 1, 2])
def test_bulyan_refuses_n_equal_4f_plus_2_and_runs_at_4f_plus_3(f):
    with pytest.raises(TooFewUpdates) as refused:
        Bulyan(attackers=f).aggregate(updates_of(4 * f + 2), [1.0] * (4 * f + 2))

    assert refused.value.required == 4 * f + 3
    assert "n >= 4f + 3" in str(refused.value)
    Bulyan(attackers=f).aggregate(updates_of(4 * f + 3), [1.0] * (4 * f + 3))


def test_default_f_is_the_largest_the_bound_allows():
    assert [krum_attackers(n, None) for n in range(3, 12)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
    ]
    assert [bulyan_attackers(n, None) for n in range(3, 12)] == [0] * 4 + [1] * 4 + [2]
    with pytest.raises(TooFewUpdates):
        krum_attackers(2, None)
    with pytest.raises(TooFewUpdates):
        bulyan_attackers(2, None)


def test_bad_attackers_and_select_options_are_config_errors():
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="attackers"):
            make_rule("krum", attackers=bad)
    with pytest.raises(ConfigError, match="select"):
        make_rule("multi_krum", select=0)


def test_krum_scores_sum_the_nearest_n_minus_f_minus_2():
    # five points on a line: 0, 1, 2, 3, 10; f = 1 -> 2 nearest others each
    points = [Params({"x": np.array([v], np.float64)}) for v in (0, 1, 2, 3, 10)]
    dist = squared_distances(gram_matrix(points))

    scores = krum_scores(dist, 1)

    np.testing.assert_allclose(scores, [1 + 4, 1 + 1, 1 + 1, 1 + 4, 49 + 64])


def test_multi_krum_never_selects_more_than_n_minus_f():
    # 7 updates, f = 2: an m of 7 is lowered to 5, leaving out the two outliers
    rng = np.random.default_rng(3)
    rows = [rng.standard_normal(4) for _ in range(5)] + [np.full(4, 1e6)] * 2
    updates = [Params({"w": r}) for r in rows]

    got = MultiKrum(attackers=2, select=7).aggregate(updates, [1.0] * 7)

    np.testing.assert_allclose(got["w"], np.mean(rows[:5], axis=0), rtol=1e-12)


def test_closest_to_median_averages_the_window_nearest_the_median():
    # one coordinate, values 0, 1, 2, 3, 100: the 3 nearest the median (2) are 1..3
    updates = [Params({"x": np.array([v], np.float32)}) for v in (100, 0, 3, 1, 2)]

    got = closest_to_median(updates, 3)

    assert got["x"][0] == pytest.approx(2.0)


def test_gram_and_bulyan_windows_over_many_chunks_match_numpy():
    rng = np.random.default_rng(9)
    rows = rng.standard_normal((7, 300_001)).astype(np.float32)
    updates = [Params({"w": r}) for r in rows]
    wide = rows.astype(np.float64)

    raw = gram_matrix(updates, centered=False, workers=2)
    dist = squared_distances(gram_matrix(updates, workers=2))
    window = closest_to_median(updates, 3, workers=2)["w"]

    np.testing.assert_allclose(raw, wide @ wide.T, rtol=1e-10)
    want = ((wide[:, None, :] - wide[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, want, rtol=1e-9)
    ordered = np.sort(rows, axis=0)
    median = ordered[3]
    starts = np.argmin(
        np.stack(
            [np.maximum(median - ordered[a], ordered[a + 2] - median) for a in range(5)]
        ),
        axis=0,
    )
    cols = np.arange(rows.shape[1])
    expect = sum(ordered[starts + k, cols] for k in range(3)) / np.float32(3)
    np.testing.assert_allclose(window, expect, rtol=1e-6, atol=1e-6)


def test_bulyan_windows_keep_small_values_next_to_a_huge_attacker():
    # float32: a sliding window sum (subtract the value leaving) would turn
    # -3e38 + 1 + 2 + 3e38 into 0 and lose the honest values
    values = [-3e38, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    updates = [Params({"x": np.array([v], np.float32)}) for v in values]

    got = closest_to_median(updates, 4)["x"][0]

    # median 3.5; the window nearest it is 2, 3, 4, 5
    assert got == pytest.approx((2.0 + 3.0 + 4.0 + 5.0) / 4)


def test_distances_stay_exact_with_an_attacker_first_and_honest_updates_far_out():
    # honest updates share an offset of 1e6 and differ by about 1; the first update
    # is an attacker at 1e30. Measured from either, their differences would round
    # away in G_ii + G_jj - 2 G_ij; measured from the median-norm update they do not.
    rng = np.random.default_rng(12)
    honest = 1e6 + rng.standard_normal((6, 500))
    rows = np.vstack([np.full((1, 500), 1e30), honest])
    updates = [Params({"w": r}) for r in rows]
    want = ((honest[:, None, :] - honest[None, :, :]) ** 2).sum(-1)

    dist = squared_distances(gram_matrix(updates))

    np.testing.assert_allclose(dist[1:, 1:], want, rtol=1e-6)
    chosen = Krum(attackers=1).aggregate(updates, [1.0] * 7)
    # Krum's n - f - 2 = 4 nearest of each honest update are honest ones
    scores = np.sort(want, axis=1)[:, 1:5].sum(axis=1)
    assert np.array_equal(chosen["w"], honest[int(np.argmin(scores))])
