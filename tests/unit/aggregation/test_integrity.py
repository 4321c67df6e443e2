"""Weight caps, the capped streaming mean, and the finite / norm checks."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.aggregation import (
    CappedMeanAccumulator,
    MeanAccumulator,
    ServerAdam,
    ServerSGD,
    cap_weights,
    check_params,
    l2_norm,
    weighted_mean,
)
from accord.aggregation.integrity import SQUARE_CHUNK, finite_sum, square_sum
from accord.errors import AggregateRejected
from accord.params import Params


def _p(values):
    return Params({"w": values})


def _shares(weights):
    total = math.fsum(weights)
    return [w / total for w in weights]


def test_an_absurd_weight_is_cut_to_exactly_the_share():
    capped = cap_weights([10, 10, 2**63 - 1], 0.5)

    assert capped[:2] == (10.0, 10.0)  # the others keep their weights exactly
    assert _shares(capped) == pytest.approx([0.25, 0.25, 0.5])


def test_weights_at_the_bound_are_left_alone_and_just_past_it_are_capped():
    at = cap_weights([1.0, 1.0, 2.0], 0.5)  # share of the largest is exactly 0.5
    past = cap_weights([1.0, 1.0, 2.000001], 0.5)

    assert at == (1.0, 1.0, 2.0)
    assert past[2] == pytest.approx(2.0) and past[2] < 2.000001
    assert max(_shares(past)) == pytest.approx(0.5)


def test_two_heavy_participants_are_both_capped():
    capped = cap_weights([100.0, 90.0, 5.0, 5.0], 0.3)

    assert _shares(capped) == pytest.approx([0.3, 0.3, 0.2, 0.2])


def test_fewer_participants_than_the_bound_allows_get_equal_weights():
    assert cap_weights([7.0], 0.5) == (1.0,)
    assert cap_weights([1.0, 5.0, 9.0], 0.25) == (1.0, 1.0, 1.0)


def test_no_cap_returns_the_weights_unchanged():
    assert cap_weights([3.0, 1.0], None) == (3.0, 1.0)
    assert cap_weights([3.0, 1.0], 1.0) == (3.0, 1.0)


@pytest.mark.parametrize("bad", [[-1.0, 2.0], [math.inf, 1.0], [math.nan]])
def test_bad_weights_are_refused(bad):
    with pytest.raises(ValueError, match="finite and >= 0"):
        cap_weights(bad, 0.5)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(1, 10**9), min_size=1, max_size=12),
    st.floats(0.05, 1.0),
)
def test_no_share_exceeds_the_cap_unless_equal_weights_are_the_closest(ws, share):
    capped = cap_weights(ws, share)
    shares = _shares(capped)

    if len(ws) * share >= 1:
        assert max(shares) <= share * (1 + 1e-9)
    else:
        assert shares == pytest.approx([1 / len(ws)] * len(ws))
    # The order of weights is kept: capping never makes a lighter site heavier.
    for i in range(len(ws)):
        for j in range(len(ws)):
            if ws[i] <= ws[j]:
                assert capped[i] <= capped[j] * (1 + 1e-12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(1, 10**6), min_size=1, max_size=9),
    st.sampled_from([0.2, 1 / 3, 0.5, 0.9]),
)
def test_the_capped_streaming_mean_is_the_mean_with_capped_weights(ws, share):
    rng = np.random.default_rng(len(ws))
    updates = [
        _p(rng.standard_normal((3, 5)).astype(np.float32)) for _ in range(len(ws))
    ]
    acc = CappedMeanAccumulator(updates[0].spec, share)
    for u, w in zip(updates, ws, strict=True):
        acc.add(u, w)

    expected = weighted_mean(updates, cap_weights(ws, share))
    np.testing.assert_allclose(acc.result()["w"], expected["w"], rtol=1e-6, atol=1e-6)


def test_the_capped_mean_holds_only_the_heaviest_copies():
    updates = [_p(np.full(4, float(i), np.float32)) for i in range(6)]
    acc = CappedMeanAccumulator(updates[0].spec, 0.5)
    for i, u in enumerate(updates):
        acc.add(u, [5, 1, 9, 2, 3, 1][i])

    assert sorted(acc._held) == [0, 2]  # the two heaviest so far
    # 9 of 21 is under half: nothing binds, so this is the plain weighted mean.
    plain = MeanAccumulator(updates[0].spec)
    for i, u in enumerate(updates):
        plain.add(u, [5, 1, 9, 2, 3, 1][i])
    np.testing.assert_allclose(acc.result()["w"], plain.result()["w"], rtol=1e-7)


def test_check_params_names_the_tensor_that_is_not_finite():
    params = _p(np.array([1.0, np.inf], np.float32))

    with pytest.raises(AggregateRejected, match="'w'") as info:
        check_params(params, what="aggregate")
    assert (info.value.check, info.value.tensor) == ("finite", "w")


def test_the_norm_bound_admits_its_value_and_refuses_just_past_it():
    params = _p(np.array([3.0, 4.0], np.float64))  # norm exactly 5

    check_params(params, what="aggregate", max_norm=5.0)
    with pytest.raises(AggregateRejected, match="above max_update_norm") as info:
        check_params(params, what="aggregate", max_norm=4.999999)
    assert info.value.check == "norm"


def test_the_norm_of_float32_values_near_the_limit_does_not_overflow():
    big = _p(np.full(4, 3e38, np.float32))

    assert l2_norm(big) == pytest.approx(6e38)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "size", [0, 1, SQUARE_CHUNK - 1, SQUARE_CHUNK, 2 * SQUARE_CHUNK + 3]
)
def test_the_chunked_square_sum_is_the_float64_sum_of_squares(dtype, size):
    x = np.random.default_rng(size).standard_normal(size).astype(dtype)

    exact = math.fsum(float(v) ** 2 for v in x.astype(np.float64))
    assert square_sum(x) == pytest.approx(exact, rel=1e-12, abs=0.0)
    assert l2_norm(_p(x)) == pytest.approx(math.sqrt(exact), rel=1e-12, abs=0.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_bad_value_in_any_chunk_makes_the_square_sum_not_finite(dtype, bad):
    x = np.ones(2 * SQUARE_CHUNK + 5, dtype)
    x[SQUARE_CHUNK + 1] = bad

    squares = square_sum(x)
    assert not math.isfinite(squares)
    assert not finite_sum(x, squares)


def test_finite_float64_values_whose_squares_overflow_are_still_finite():
    x = np.array([1e200, -1e200, 3.0])
    squares = square_sum(x)

    assert squares == math.inf  # the norm is infinite: any bound refuses it
    assert finite_sum(x, squares)  # but the values are finite: not a NaN refusal
    x[2] = np.nan
    assert not finite_sum(x, square_sum(x))


def test_the_largest_float32_values_square_to_a_finite_sum():
    x = np.full(3, np.finfo(np.float32).max, np.float32)
    squares = square_sum(x)

    assert math.isfinite(squares)
    assert finite_sum(x, squares)


def test_server_sgd_refuses_a_step_that_overflows_float32():
    glob = _p(np.full(3, 3e38, np.float32))
    delta = _p(np.full(3, 3e38, np.float32))
    opt = ServerSGD()

    with pytest.raises(AggregateRejected, match="'w'") as info:
        opt.apply(glob, delta, opt.init(glob))
    assert (info.value.what, info.value.check) == ("model", "finite")


def test_server_adam_refuses_a_second_moment_that_overflows():
    glob = _p(np.zeros(3, np.float32))
    delta = _p(np.full(3, 1e20, np.float32))  # delta² overflows float32
    opt = ServerAdam()

    with pytest.raises(AggregateRejected, match="'v/w'") as info:
        opt.apply(glob, delta, opt.init(glob))
    assert info.value.what == "optimizer state"


def test_a_large_but_safe_step_passes_unchanged():
    glob = _p(np.full(3, 1e37, np.float32))
    delta = _p(np.full(3, 1e37, np.float32))
    opt = ServerSGD()

    new, _ = opt.apply(glob, delta, opt.init(glob))

    np.testing.assert_array_equal(new["w"], np.float32(1e37) + np.float32(1e37))
