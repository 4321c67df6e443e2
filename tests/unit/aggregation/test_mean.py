from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.aggregation import MeanAccumulator, weighted_mean
from accord.aggregation.mean import CHUNK
from accord.errors import UpdateRejected
from accord.params import Params

shapes = st.lists(
    st.lists(st.integers(0, 9), max_size=3).map(tuple), min_size=1, max_size=3
)
seeds = st.integers(0, 2**32 - 1)
# example-count-like weights: zero or at least 1e-3 (subnormal weights underflow
# w * x in any reference)
weight_values = st.one_of(st.just(0.0), st.floats(1e-3, 1e4))


def stream(updates: list[Params], weights: list[float]) -> Params:
    acc = MeanAccumulator(updates[0].spec)
    for update, weight in zip(updates, weights, strict=True):
        acc.add(update, weight)
    return acc.result()


def assert_identical(a: Params, b: Params) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], strict=True)
        # bit for bit, including the sign of zeros
        assert a[name].tobytes() == b[name].tobytes()


@settings(max_examples=150, deadline=None)
@given(
    shape_list=shapes,
    seed=seeds,
    weights=st.lists(weight_values, min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_equals_numpy_average(make_updates, shape_list, seed, weights):
    # Arrange
    updates = make_updates(len(weights), shape_list, seed=seed)
    # Act
    result = weighted_mean(updates, weights)
    # Assert
    for name in updates[0]:
        stacked = np.stack([u[name] for u in updates]).astype(np.float64)
        expected = np.average(stacked, axis=0, weights=weights)
        got = result[name]
        assert got.dtype == np.float32 and got.shape == expected.shape
        spread = np.abs(stacked).max(axis=0, initial=0.0)
        bound = 2e-7 * np.abs(expected) + 1e-12 * spread + 1e-44
        assert (np.abs(got - expected) <= bound).all()


@settings(max_examples=100, deadline=None)
@given(
    shape_list=shapes,
    seed=seeds,
    weights=st.lists(weight_values, min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_float32_precision_is_close_to_numpy_average(
    make_updates, shape_list, seed, weights
):
    updates = make_updates(len(weights), shape_list, seed=seed)

    result = weighted_mean(updates, weights, precision="float32")

    for name in updates[0]:
        stacked = np.stack([u[name] for u in updates]).astype(np.float64)
        expected = np.average(stacked, axis=0, weights=weights)
        got = result[name]
        assert got.dtype == np.float32
        spread = np.abs(stacked).max(axis=0, initial=0.0)
        eps = float(np.finfo(np.float32).eps)
        bound = (len(weights) + 2) * eps * spread + 1e-37
        assert (np.abs(got - expected) <= bound).all()


def test_float32_precision_keeps_float64_tensors_exactish(make_updates):
    updates = make_updates(4, [(1_000,)], dtype=np.float64, seed=9)
    weights = [1.0, 3.0, 2.0, 5.0]

    fast = weighted_mean(updates, weights, precision="float32")["layer0.weight"]

    exact = weighted_mean(updates, weights)["layer0.weight"]
    assert fast.dtype == np.float64
    np.testing.assert_allclose(
        fast, exact, rtol=1e-13, atol=1e-13 * np.abs(exact).max()
    )
    with pytest.raises(ValueError, match="precision"):
        weighted_mean(updates, weights, precision="float16")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    shape_list=shapes,
    seed=seeds,
    weights=st.lists(weight_values, min_size=1, max_size=8).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_streaming_equals_batch_bit_for_bit(make_updates, shape_list, seed, weights):
    updates = make_updates(len(weights), shape_list, seed=seed)

    assert_identical(stream(updates, weights), weighted_mean(updates, weights))


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 8),
    size=st.integers(0, 300),
)
def test_arrival_order_irrelevant_for_integer_weights(data, n, size):
    # values are multiples of 2^-10 below 2^5 and weights below 2^10, so every
    # partial sum is exact in float64: the documented condition for bit-identity
    rng = np.random.default_rng(data.draw(seeds))
    updates = [
        Params({"w": (rng.integers(-(2**15), 2**15, size) / 1024).astype(np.float32)})
        for _ in range(n)
    ]
    weights = data.draw(st.lists(st.integers(1, 1023), min_size=n, max_size=n))
    order = data.draw(st.permutations(range(n)))

    forward = stream(updates, weights)
    permuted = stream([updates[i] for i in order], [weights[i] for i in order])

    assert_identical(forward, permuted)
    assert_identical(
        forward, weighted_mean([updates[i] for i in order], [weights[i] for i in order])
    )


def test_arrival_order_irrelevant_for_realistic_updates(make_updates):
    updates = make_updates(9, [(20_000,), (64, 33)], seed=11)
    counts = [120, 4_000, 77, 1_500, 9_999, 310, 42, 2_048, 600]
    rng = np.random.default_rng(0)
    results = []
    for _ in range(4):
        order = rng.permutation(len(updates))
        results.append(stream([updates[i] for i in order], [counts[i] for i in order]))

    for other in results[1:]:
        assert_identical(results[0], other)


@pytest.mark.parametrize("size", [CHUNK - 1, CHUNK + 1, 3 * CHUNK + 17, 300_007])
def test_chunking_and_threads_do_not_change_bits(make_updates, size):
    updates = make_updates(5, [(size,), (3,)], seed=size)
    weights = [3.0, 1.0, 0.5, 7.25, 2.0]

    threaded = weighted_mean(updates, weights, workers=2)
    serial = weighted_mean(updates, weights, workers=1)

    assert_identical(threaded, serial)
    assert_identical(threaded, stream(updates, weights))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_keeps_each_tensor_dtype(make_updates, dtype):
    updates = make_updates(3, [(100,)], dtype=dtype)

    result = weighted_mean(updates, [1, 2, 3])

    assert result["layer0.weight"].dtype == dtype
    expected = np.average(
        np.stack([u["layer0.weight"] for u in updates]), axis=0, weights=[1, 2, 3]
    )
    np.testing.assert_allclose(
        result["layer0.weight"], expected, rtol=np.finfo(dtype).eps
    )


def test_accumulator_reports_count_and_total_weight(make_updates):
    updates = make_updates(3, [(10,)])
    acc = MeanAccumulator(updates[0].spec)

    for update, weight in zip(updates, [0.1, 0.2, 0.3], strict=True):
        acc.add(update, weight)

    assert acc.count == 3
    assert acc.total_weight == 0.6  # math.fsum: exact, unlike 0.1 + 0.2 + 0.3


def test_result_can_be_read_repeatedly_and_in_another_dtype(make_updates):
    updates = make_updates(2, [(50,)])
    acc = MeanAccumulator(updates[0].spec)
    acc.add(updates[0], 2)
    acc.add(updates[1], 1)

    first, again = acc.result(), acc.result()
    wide = acc.result(np.float64)

    assert_identical(first, again)
    assert wide["layer0.weight"].dtype == np.float64
    np.testing.assert_allclose(wide["layer0.weight"], first["layer0.weight"], rtol=1e-7)
    with pytest.raises(ValueError, match="float"):
        acc.result(np.int32)


def test_zero_total_weight_is_an_error(make_updates):
    updates = make_updates(2, [(4,)])
    acc = MeanAccumulator(updates[0].spec)
    acc.add(updates[0], 0)

    with pytest.raises(ValueError, match="total weight"):
        acc.result()
    with pytest.raises(ValueError, match="total weight"):
        weighted_mean(updates, [0, 0])
    with pytest.raises(ValueError, match="no update"):
        MeanAccumulator(updates[0].spec).result()


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_invalid_weight_is_rejected_and_leaves_state_unchanged(make_updates, weight):
    updates = make_updates(2, [(4,)])
    acc = MeanAccumulator(updates[0].spec)
    acc.add(updates[0], 1)
    before = acc.result()

    with pytest.raises(UpdateRejected, match="weight"):
        acc.add(updates[1], weight)

    assert acc.count == 1
    assert_identical(acc.result(), before)


def test_mismatched_structure_is_rejected(make_updates):
    (update,) = make_updates(1, [(4,)])
    acc = MeanAccumulator(update.spec)
    wrong = Params({"layer0.weight": np.zeros(4, np.float64)})

    with pytest.raises(UpdateRejected, match="dtype"):
        acc.add(wrong, 1)
    with pytest.raises(UpdateRejected):
        weighted_mean([update, wrong], [1, 1])
    with pytest.raises(ValueError, match="weights"):
        weighted_mean([update], [1, 2])
    with pytest.raises(ValueError, match="no updates"):
        weighted_mean([], [])


@settings(max_examples=100, deadline=None)
@given(
    shape_list=shapes,
    seed=seeds,
    weights=st.lists(weight_values, min_size=2, max_size=8).filter(
        lambda ws: sum(ws) > 0
    ),
    split=st.integers(0, 8),
)
def test_add_many_is_each_add_in_turn_bit_for_bit(
    make_updates, shape_list, seed, weights, split
):
    # The first ``split`` updates one by one (none: add_many starts the sums),
    # the rest in one call.
    updates = make_updates(len(weights), shape_list, seed=seed)
    k = min(split, len(weights))
    acc = MeanAccumulator(updates[0].spec)
    for update, weight in zip(updates[:k], weights[:k], strict=True):
        acc.add(update, weight)
    acc.add_many(updates[k:], weights[k:])

    assert acc.count == len(weights)
    assert_identical(acc.result(), stream(updates, weights))


@pytest.mark.parametrize("size", [CHUNK - 1, CHUNK + 1, 3 * CHUNK + 17])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_add_many_over_chunks_and_threads_is_each_add(make_updates, size, dtype):
    updates = make_updates(4, [(size,), (3, 5)], seed=size, dtype=dtype)
    weights = [1.0, 3.0, 0.25, 1.0]  # 1.0: the plain widening copy, first and later
    for workers in (1, 2):
        acc = MeanAccumulator(updates[0].spec, workers=workers)
        acc.add_many(updates, weights)
        assert_identical(acc.result(), stream(updates, weights))


def test_add_many_refuses_before_folding_anything(make_updates):
    updates = make_updates(3, [(6,)])
    acc = MeanAccumulator(updates[0].spec)
    acc.add(updates[0], 2)
    before = acc.result()
    wrong = Params({"layer0.weight": np.zeros(6, np.float64)})

    with pytest.raises(UpdateRejected, match="weight"):
        acc.add_many(updates[1:], [1.0, float("nan")])
    with pytest.raises(UpdateRejected, match="dtype"):
        acc.add_many([updates[1], wrong], [1.0, 1.0])
    with pytest.raises(ValueError, match="2 updates but 1 weights"):
        acc.add_many(updates[1:], [1.0])
    acc.add_many([], [])

    assert acc.count == 1
    assert_identical(acc.result(), before)
