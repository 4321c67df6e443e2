from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.aggregation import coordinate_median
from accord.aggregation.order_statistics import NETWORK_MAX_INPUTS
from accord.errors import UpdateRejected
from accord.params import Params

shapes = st.lists(
    st.lists(st.integers(0, 9), max_size=3).map(tuple), min_size=1, max_size=3
)
pools = st.lists(st.floats(width=32, allow_nan=False), max_size=6)


def reference(updates: list[Params]) -> dict[str, np.ndarray]:
    # numpy's median overflows to inf near the dtype's maximum, with a warning
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            name: np.median(np.stack([u[name] for u in updates]), axis=0)
            for name in updates[0]
        }


def assert_identical(result: Params, expected: dict[str, np.ndarray]) -> None:
    assert list(result) == list(expected)
    for name, want in expected.items():
        got = result[name]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want, strict=True)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 25),
    shape_list=shapes,
    seed=st.integers(0, 2**32 - 1),
    pool=pools,
)
def test_equals_numpy_median_exactly(make_updates, n, shape_list, seed, pool):
    # Arrange
    updates = make_updates(n, shape_list, seed=seed, pool=pool)
    # Act
    result = coordinate_median(updates)
    # Assert
    assert_identical(result, reference(updates))


@pytest.mark.parametrize("n", [2, 3, 4, 9, 10, 11, 16, 25])
def test_chunk_boundaries_and_threads(make_updates, n):
    # sizes that are no multiple of any chunk size; 300_007 triggers the thread pool
    updates = make_updates(n, [(70_001,), (3, 100_003), (1,)], seed=n)
    expected = reference(updates)

    threaded = coordinate_median(updates, workers=2)
    serial = coordinate_median(updates, workers=1)

    assert_identical(threaded, expected)
    assert_identical(serial, expected)


@pytest.mark.parametrize("n", [NETWORK_MAX_INPUTS, NETWORK_MAX_INPUTS + 1, 60])
def test_large_federations_use_partition_exactly(make_updates, n):
    updates = make_updates(n, [(5_001,), (7, 3)], seed=n, pool=[0.0, -1.5, 2.0])

    assert_identical(coordinate_median(updates), reference(updates))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("n", [4, 7, 50])
def test_other_dtypes_match_numpy(make_updates, dtype, n):
    updates = make_updates(n, [(3_001,)], seed=1, dtype=dtype, pool=[0.5, 0.25])

    assert_identical(coordinate_median(updates), reference(updates))


@pytest.mark.parametrize("n", [3, 4, 10, 60])
def test_nan_propagates_like_numpy(make_updates, n):
    updates = make_updates(n, [(1_000,)], seed=2)
    poisoned = updates[1]["layer0.weight"].copy()
    poisoned[[5, 17]] = np.nan
    updates[1] = Params({"layer0.weight": poisoned})

    result = coordinate_median(updates)["layer0.weight"]

    assert np.isnan(result[[5, 17]]).all()
    assert np.isfinite(np.delete(result, [5, 17])).all()
    assert_identical(coordinate_median(updates), reference(updates))


def test_inputs_are_not_modified(make_updates):
    updates = make_updates(5, [(10_000,)], seed=3)
    before = [u.digest() for u in updates]

    coordinate_median(updates)

    assert [u.digest() for u in updates] == before


def test_robust_to_a_minority_of_huge_values(make_updates):
    honest = make_updates(7, [(500,)], seed=4)
    attackers = [Params({"layer0.weight": np.full(500, 1e30, np.float32)})] * 3

    result = coordinate_median(honest + attackers)["layer0.weight"]

    stacked = np.stack([u["layer0.weight"] for u in honest])
    assert (result >= stacked.min(axis=0)).all()
    assert (result <= stacked.max(axis=0)).all()


def test_rejects_no_updates_and_mismatched_structure(make_updates):
    a, b = make_updates(2, [(4,)])
    other = Params({"layer0.weight": np.zeros(5, np.float32)})

    with pytest.raises(ValueError, match="no updates"):
        coordinate_median([])
    with pytest.raises(UpdateRejected, match="shape"):
        coordinate_median([a, b, other])
