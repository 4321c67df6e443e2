"""Weight-aware median and trimmed mean against their definitions."""

from __future__ import annotations

import math

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
from accord.aggregation.weighted_order import (
    CHUNK,
    _argsort_rows,
    _clipped_rows,
    _half_reachable,
    key_network,
)
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


def _sequential_reference(
    rows: np.ndarray, weights: list[float], mode: str, beta: float
) -> np.ndarray:
    """The weighted rules' float arithmetic, written plainly (one column a row).

    Keys are float64 widenings with the update's index in the low mantissa bits,
    ordered by a stable argsort; cumulative weights, the median's pick and the
    trimmed mean's kept weights and sum are computed position by position, in the
    order the kernel uses. The fast path must equal this bit for bit.
    """
    n = rows.shape[1]
    keys = rows.astype(np.float64)
    keys.view(np.int64)[...] |= np.arange(n, dtype=np.int64)
    order = np.argsort(keys, axis=1, kind="stable")
    values = np.take_along_axis(rows, order, axis=1).astype(np.float64)
    table = np.asarray(weights, dtype=np.float64)
    cum = table[order]
    for k in range(1, n):
        cum[:, k] = cum[:, k - 1] + cum[:, k]
    total = math.fsum(weights)
    if mode == "median":
        half = total / 2
        last = n - 1
        low = np.minimum((cum < half).sum(axis=1), last)
        high = np.minimum((cum <= half).sum(axis=1), last)
        r = np.arange(len(rows))
        lower = values[r, low].astype(np.float32)
        upper = values[r, high].astype(np.float32)
        exact = (cum == half).any(axis=1)
        out = np.where(exact, (lower + upper) * np.float32(0.5), lower)
        return out.astype(np.float32)
    lo, hi = beta * total, (1 - beta) * total
    clipped = np.clip(cum, lo, hi)
    kept = np.empty_like(clipped)
    kept[:, 0] = clipped[:, 0] - lo
    kept[:, 1:] = clipped[:, 1:] - clipped[:, :-1]
    acc = kept[:, 0] * values[:, 0]
    for k in range(1, n):
        acc = acc + kept[:, k] * values[:, k]
    return (acc / (hi - lo)).astype(np.float32)


def _tied_rows(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """float32 columns with exact ties, signed zeros, subnormals and near ties."""
    rows = rng.standard_normal((size, n)).astype(np.float32)
    pool = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 1e-40, -1e-40], np.float32)
    tie = rng.random(rows.shape) < 0.4
    rows[tie] = rng.choice(pool, rows.shape)[tie]
    near = rng.random(rows.shape) < 0.05  # one ulp from the value beside it
    shifted = np.nextafter(np.roll(rows, 1, axis=1), np.float32(np.inf))
    rows[near] = shifted[near]
    return rows


WEIGHTINGS = {
    "unequal": lambda rng, n: [float(w) for w in rng.integers(50, 5000, n)],
    "equal": lambda rng, n: [3.0] * n,
    "zeros": lambda rng, n: [float(w) for w in rng.integers(0, 3, n) * 7] or [1.0],
    "fractional": lambda rng, n: [float(w) for w in rng.random(n) * 10 + 1e-3],
    "halving": lambda rng, n: [1.0, 2.0, 3.0, 2.0][:n] + [0.5] * max(0, n - 4),
}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 10, 11, 16])
@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
def test_fast_path_equals_the_sequential_arithmetic_bit_for_bit(n, weighting):
    # Arrange: odd and even counts, ties, zero weights, one site, 10 (Waksman's net)
    rng = np.random.default_rng([n, len(weighting)])
    rows = _tied_rows(rng, n, 3 * CHUNK // 2 + 7)  # two chunks, the last partial
    weights = WEIGHTINGS[weighting](rng, n)
    if math.fsum(weights) == 0:
        weights[0] = 1.0
    updates = [Params({"w": np.ascontiguousarray(rows[:, i])}) for i in range(n)]

    # Act
    median = weighted_median(updates, weights, workers=1)["w"]
    trimmed = {b: weighted_trimmed_mean(updates, weights, b)["w"] for b in (0.1, 0.25)}

    # Assert
    np.testing.assert_array_equal(
        median, _sequential_reference(rows, weights, "median", 0.0), strict=True
    )
    for beta, got in trimmed.items():
        want = _sequential_reference(rows, weights, "trimmed", beta)
        np.testing.assert_array_equal(got, want, strict=True)


@pytest.mark.parametrize("n", range(1, 17))
def test_the_weighted_rules_sorting_networks_sort_every_zero_one_input(n):
    # the 0-1 principle: a comparator network sorts everything iff it sorts 0-1 inputs
    rows = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    for i, j in key_network(n):
        lo, hi = np.minimum(rows[:, i], rows[:, j]), np.maximum(rows[:, i], rows[:, j])
        rows[:, i], rows[:, j] = lo, hi
    assert (np.diff(rows, axis=1) >= 0).all()
    if n == 10:
        assert len(key_network(n)) == 29


def test_the_upper_median_is_computed_only_where_half_the_weight_can_be_met():
    assert _half_reachable([1.0] * 10)  # equal weights, even count
    assert _half_reachable([1.0, 2.0, 3.0])  # 1 + 2 == 3 == 6 / 2
    assert not _half_reachable([1.0] * 9)
    assert not _half_reachable([2252.0, 2713.0, 2612.0, 1749.0, 4733.0])
    assert _half_reachable([1.0] * 17)  # too many to enumerate: assumed


@pytest.mark.parametrize("seed_", range(5))
def test_only_the_rows_declared_clippable_leave_the_kept_range(seed_):
    rng = np.random.default_rng(seed_)
    n = int(rng.integers(2, 13))
    weights = [float(w) for w in rng.integers(0, 100, n)] + [1.0]
    total = math.fsum(weights)
    beta = float(rng.choice([0.05, 0.1, 0.3]))
    lo, hi = beta * total, (1 - beta) * total
    low, high = _clipped_rows(weights, lo, hi)

    for _ in range(200):  # random orders of the weights
        cum = np.cumsum(rng.permutation(weights))
        outside = (cum < lo) | (cum > hi)
        assert not outside[low:high].any()
