"""Weight-aware median and trimmed mean against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from accord.aggregation import (
    coordinate_median,
    coordinate_trimmed_mean,
    make_rule,
    weighted_median,
    weighted_trimmed_mean,
)
from accord.aggregation.order_statistics import NETWORK_MAX_INPUTS
from accord.aggregation.weighted_order import CHUNK, _argsort_rows
from accord.params import Params

pools = st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=5)


def repeated(updates: list[Params], counts: list[int]) -> list[Params]:
    """Each update ``count`` times: the unweighted rules then define the weighted."""
    return [u for u, c in zip(updates, counts, strict=True) for _ in range(c)]


@seed(10)
@settings(max_examples=120, deadline=None)
@given(
    counts=st.lists(st.integers(0, 6), min_size=1, max_size=12).filter(any),
    size=st.integers(1, 300),
    pool=pools,
    data_seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float16, np.float64]),
)
def test_integer_weights_mean_repeated_values(counts, size, pool, data_seed, dtype):
    # Arrange: values with ties, zeros and extremes from a pool
    rng = np.random.default_rng(data_seed)
    rows = rng.standard_normal((len(counts), size)) * rng.choice([1e-3, 1.0, 1e3])
    if pool:
        mask = rng.random(rows.shape) < 0.3
        rows = np.where(mask, rng.choice(np.asarray(pool), rows.shape), rows)
    with np.errstate(over="ignore"):  # float16 overflows to inf: tested too
        rows = rows.astype(dtype)
    updates = [Params({"w": r}) for r in rows]
    weights = [float(c) for c in counts]
    copies = repeated(updates, counts)
    total = sum(counts)
    beta = 0.25 if total % 4 == 0 else 0.0  # a cut on whole weights

    # Act
    median = weighted_median(updates, weights)["w"]
    trimmed = weighted_trimmed_mean(updates, weights, beta)["w"]

    # Assert: the median exactly; the trimmed mean to the rounding of a mean
    with np.errstate(over="ignore", invalid="ignore"):
        want_median = coordinate_median(copies)["w"]
        want_trimmed = coordinate_trimmed_mean(copies, beta)["w"]
    np.testing.assert_array_equal(median, want_median, strict=True)
    assert trimmed.dtype == want_trimmed.dtype
    finite = np.isfinite(want_trimmed)
    wide = rows.astype(np.float64)
    scale = np.where(np.isfinite(wide), np.abs(wide), 0.0).max(axis=0)[finite]
    np.testing.assert_allclose(
        trimmed[finite].astype(np.float64),
        want_trimmed[finite].astype(np.float64),
        atol=float(np.finfo(dtype).eps) * 4 * float(scale.max(initial=0.0)) + 1e-30,
    )


@pytest.mark.parametrize("rule", ["weighted_median", "weighted_trimmed_mean"])
def test_nan_gives_nan_and_infinities_are_ordered(rule):
    # coordinate 0: a NaN; coordinate 1: +inf and -inf at the extremes
    values = [[np.nan, np.inf], [1.0, -np.inf], [2.0, 1.0], [3.0, 2.0], [4.0, 3.0]]
    updates = [Params({"w": np.array(v, np.float32)}) for v in values]

    got = make_rule(rule).aggregate(updates, [1.0, 1.0, 1.0, 1.0, 1.0])["w"]

    assert np.isnan(got[0])
    if rule == "weighted_median":
        assert got[1] == 2.0
    else:  # beta 0.1 of weight 5 cuts half of each infinity's weight: still inf
        assert np.isnan(got[1]) or np.isinf(got[1])


def test_an_infinity_cut_entirely_leaves_a_finite_trimmed_mean():
    values = [[np.inf], [1.0], [2.0], [3.0], [-np.inf]]
    updates = [Params({"w": np.array(v, np.float32)}) for v in values]

    got = weighted_trimmed_mean(updates, [1.0] * 5, 0.2)["w"]

    assert got[0] == pytest.approx(2.0)


def test_more_updates_than_a_network_takes_the_reference_path():
    rng = np.random.default_rng(5)
    n = NETWORK_MAX_INPUTS + 3
    updates = [
        Params({"w": rng.standard_normal(7).astype(np.float32)}) for _ in range(n)
    ]

    got = weighted_median(updates, [1.0] * n)["w"]

    np.testing.assert_array_equal(got, coordinate_median(updates)["w"])


def test_zero_weights_count_for_nothing():
    updates = [Params({"w": np.array([v], np.float32)}) for v in (1.0, 2.0, 1e9)]

    got = weighted_median(updates, [1.0, 1.0, 0.0])["w"]

    assert got[0] == 1.5


def test_bad_weights_are_refused_with_the_fix():
    updates = [Params({"w": np.ones(2, np.float32)}) for _ in range(2)]

    for bad in ([0.0, 0.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="example count"):
            weighted_median(updates, bad)
    with pytest.raises(ValueError, match="weights"):
        weighted_trimmed_mean(updates, [1.0])


def test_a_heavy_site_counts_more_but_a_capped_one_cannot_decide_alone():
    # a hospital (40,000 examples) and four clinics (400 each) disagree
    updates = [Params({"w": np.array([v], np.float32)}) for v in (10.0, 0, 1, 2, 3)]
    raw = [40_000.0, 400.0, 400.0, 400.0, 400.0]
    capped = [1600.0, 400.0, 400.0, 400.0, 400.0]  # max_weight_share 0.5

    assert weighted_median(updates, raw)["w"][0] == 10.0  # uncapped: it decides
    assert weighted_median(updates, capped)["w"][0] == pytest.approx(6.5)
    assert coordinate_median(updates)["w"][0] == 2.0  # unweighted: it is ignored


@pytest.mark.parametrize("mode", ["median", "trimmed"])
def test_many_chunks_on_threads_match_the_reference_definition(mode):
    # tensors longer than a chunk and a block, with ties, on two threads
    rng = np.random.default_rng(8)
    sizes = (CHUNK * 3 + 17, 300_001, 5)
    updates = [
        Params(
            {
                f"t{i}": np.round(rng.standard_normal(size), 1).astype(np.float32)
                for i, size in enumerate(sizes)
            }
        )
        for _ in range(7)
    ]
    weights = [float(w) for w in rng.integers(1, 1000, 7)]

    if mode == "median":
        got = weighted_median(updates, weights, workers=2)
    else:
        got = weighted_trimmed_mean(updates, weights, 0.2, workers=2)

    want = _argsort_rows(updates, weights, mode, 0.2)
    for name in want:
        if mode == "median":
            np.testing.assert_array_equal(got[name], want[name])
        else:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-7)
