"""The fixed-bin sketch merges by addition, reads quantiles back, and suppresses."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.data.histogram import (
    BINS,
    Z_EDGES,
    bin_counts,
    estimate,
    quantiles,
    suppress,
)

finite = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, max_size=60), st.lists(finite, max_size=60))
def test_the_sketch_of_two_sites_is_the_sum_of_their_sketches(a, b):
    merged = bin_counts(np.array(a + b, dtype=np.float64))

    assert np.array_equal(
        merged, bin_counts(np.array(a, float)) + bin_counts(np.array(b, float))
    )
    assert merged.sum() == len(a) + len(b)


def test_values_fall_in_the_bins_their_edges_say():
    z = np.array([-9.0, -3.0, -2.99, 0.0, 0.49, 0.5, 3.0, np.nan])

    counts = bin_counts(z)

    assert len(counts) == BINS == len(Z_EDGES) + 1
    assert counts[0] == 1  # below -3
    assert counts[1] == 2  # [-3, -2.5)
    assert counts[7] == 2  # [0, 0.5)
    assert counts[8] == 1  # [0.5, 1)
    assert counts[-1] == 1  # 3 and above; NaN left out
    assert counts.sum() == 7


def test_quantiles_of_a_normal_sample_are_within_half_a_bin():
    z = np.random.default_rng(0).standard_normal(20_000)

    q25, q50, q75 = quantiles(bin_counts(z).astype(float), (0.25, 0.5, 0.75))

    assert q50 == pytest.approx(0.0, abs=0.05)
    assert q25 == pytest.approx(-0.674, abs=0.1)
    assert q75 == pytest.approx(0.674, abs=0.1)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=80))
def test_quantiles_are_ordered_and_within_the_edges(values):
    counts = bin_counts(np.array(values, float)).astype(float)

    qs = quantiles(counts, (0.05, 0.25, 0.5, 0.75, 0.95))

    assert all(q is not None for q in qs)
    assert qs == sorted(qs)
    assert Z_EDGES[0] <= qs[0] and qs[-1] <= Z_EDGES[-1]


def test_an_empty_sketch_has_no_quantiles():
    assert quantiles(np.zeros(BINS), (0.5,)) == [None]


def test_a_count_of_k_minus_1_is_suppressed_and_k_is_shown():
    k = 10

    below = suppress([k - 1, 50, 40], k)
    at = suppress([k, 50, 40], k)

    # k - 1 hidden, and the smallest other (40) with it: the total cannot give it
    assert below == (None, 50, None)
    assert at == (k, 50, 40)


def test_zero_is_shown_and_k_1_suppresses_nothing():
    assert suppress([0, 3, 30, 40], 1) == (0, 3, 30, 40)
    assert suppress([0, 0, 25], 10) == (0, 0, 25)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=12), st.integers(1, 20))
def test_suppression_reveals_no_small_count_alone(counts, k):
    cells = suppress(counts, k)

    hidden = [i for i, c in enumerate(cells) if c is None]
    assert all(cells[i] is None for i, c in enumerate(counts) if 0 < c < k)
    assert all(cells[i] == c for i, c in enumerate(counts) if i not in hidden)
    assert len(hidden) != 1 or len(counts) == 1


def test_estimate_shares_the_known_rest_as_the_prior_says():
    cells = (None, 60, None, 5)

    even = estimate(cells, 100.0, 10)
    shaped = estimate(cells, 100.0, 10, prior=np.array([9.0, 0.0, 1.0, 0.0]))
    unknown_total = estimate(cells, None, 10)

    assert even.tolist() == [17.5, 60.0, 17.5, 5.0]
    assert shaped.tolist() == pytest.approx([31.5, 60.0, 3.5, 5.0])
    assert unknown_total.tolist() == [4.5, 60.0, 4.5, 5.0]
