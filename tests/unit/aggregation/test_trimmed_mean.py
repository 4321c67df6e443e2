from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.aggregation import coordinate_trimmed_mean
from accord.aggregation.order_statistics import NETWORK_MAX_INPUTS
from accord.errors import ConfigError
from accord.params import Params

shapes = st.lists(
    st.lists(st.integers(0, 9), max_size=3).map(tuple), min_size=1, max_size=3
)
# bounded so that no order of summation overflows float32
pools = st.lists(
    st.floats(width=32, min_value=-(2.0**100), max_value=2.0**100, allow_nan=False),
    max_size=6,
)
betas = st.floats(0.0, 0.499)


def reference(
    updates: list[Params], beta: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sort each coordinate, drop floor(beta n) from each end, average the rest.

    Also returns, per coordinate, the largest magnitude among the kept values, which
    bounds the rounding error of summing them in float32.
    """
    n = len(updates)
    k = int(beta * n)
    out = {}
    for name in updates[0]:
        stacked = np.sort(np.stack([u[name] for u in updates]).astype(np.float64), 0)
        kept = stacked[k : n - k]
        out[name] = (kept.mean(axis=0), np.abs(kept).max(axis=0))
    return out


def assert_close(result: Params, expected, dtype) -> None:
    eps = float(np.finfo(dtype).eps)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    for name, (want, magnitude) in expected.items():
        got = result[name]
        assert got.dtype == dtype and got.shape == want.shape
        bound = 30 * eps * magnitude + eps * np.abs(want) + 4 * tiny
        assert (np.abs(got - want) <= bound).all()


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 25),
    beta=betas,
    shape_list=shapes,
    seed=st.integers(0, 2**32 - 1),
    pool=pools,
)
def test_matches_sort_then_average(make_updates, n, beta, shape_list, seed, pool):
    # Arrange
    updates = make_updates(n, shape_list, seed=seed, pool=pool)
    # Act
    result = coordinate_trimmed_mean(updates, beta)
    # Assert
    assert_close(result, reference(updates, beta), np.float32)


@settings(max_examples=100, deadline=None)
@given(
    n_honest=st.integers(1, 15),
    beta=st.floats(0.05, 0.45),
    seed=st.integers(0, 2**32 - 1),
    outlier=st.sampled_from([1e30, -1e30, 3.0e38, -3.0e38, 1e6]),
    mixed_sign=st.booleans(),
)
def test_stays_within_honest_range(n_honest, beta, seed, outlier, mixed_sign):
    # Arrange: f outliers among n values with f <= floor(beta * n)
    n = n_honest
    while int(beta * (n + 1)) >= n + 1 - n_honest:
        n += 1
    rng = np.random.default_rng(seed)
    honest = [
        Params({"w": rng.uniform(-1, 1, 257).astype(np.float32)})
        for _ in range(n_honest)
    ]
    f = n - n_honest
    assert f <= int(beta * n)
    bad = [
        Params(
            {
                "w": np.full(
                    257, -outlier if mixed_sign and i % 2 else outlier, np.float32
                )
            }
        )
        for i in range(f)
    ]
    # Act
    result = coordinate_trimmed_mean(honest + bad, beta)["w"]
    # Assert
    stacked = np.stack([u["w"] for u in honest])
    slack = 4 * np.finfo(np.float32).eps
    assert (result >= stacked.min(axis=0) - slack).all()
    assert (result <= stacked.max(axis=0) + slack).all()


@pytest.mark.parametrize(
    ("n", "beta"), [(10, 0.1), (11, 0.2), (20, 0.1), (25, 0.3), (9, 0.45)]
)
def test_chunk_boundaries_and_threads(make_updates, n, beta):
    updates = make_updates(n, [(70_001,), (3, 100_003)], seed=n)
    expected = reference(updates, beta)

    threaded = coordinate_trimmed_mean(updates, beta, workers=2)
    serial = coordinate_trimmed_mean(updates, beta, workers=1)

    assert_close(threaded, expected, np.float32)
    for name in expected:
        np.testing.assert_array_equal(threaded[name], serial[name], strict=True)


@pytest.mark.parametrize("n", [NETWORK_MAX_INPUTS + 1, 64])
def test_large_federations(make_updates, n):
    updates = make_updates(n, [(4_001,)], seed=n, pool=[0.0, 1e20, -1e20])

    assert_close(
        coordinate_trimmed_mean(updates, 0.2), reference(updates, 0.2), np.float32
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_keeps_dtype(make_updates, dtype):
    updates = make_updates(6, [(2_000,)], seed=5, dtype=dtype)

    result = coordinate_trimmed_mean(updates, 0.2)

    assert_close(result, reference(updates, 0.2), dtype)


def test_beta_zero_is_the_plain_mean(make_updates):
    updates = make_updates(7, [(1_000,)], seed=6)

    result = coordinate_trimmed_mean(updates, 0.0)["layer0.weight"]

    expected = np.mean(
        np.stack([u["layer0.weight"] for u in updates]), axis=0, dtype=np.float64
    )
    np.testing.assert_allclose(
        result, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max()
    )


@pytest.mark.parametrize("n", [5, 60])
def test_nan_is_never_trimmed_away(make_updates, n):
    updates = make_updates(n, [(100,)], seed=7)
    poisoned = updates[0]["layer0.weight"].copy()
    poisoned[3] = np.nan
    updates[0] = Params({"layer0.weight": poisoned})

    result = coordinate_trimmed_mean(updates, 0.2)["layer0.weight"]

    assert np.isnan(result[3])
    assert np.isfinite(np.delete(result, 3)).all()


@pytest.mark.parametrize("beta", [-0.1, 0.5, 0.7, float("nan")])
def test_rejects_invalid_beta(make_updates, beta):
    updates = make_updates(4, [(3,)])

    with pytest.raises(ConfigError, match="beta"):
        coordinate_trimmed_mean(updates, beta)
