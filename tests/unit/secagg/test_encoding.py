from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.secagg.encoding import CHUNK, FixedPointEncoding


@st.composite
def updates(draw):
    n = draw(st.integers(1, 30))
    size = draw(st.integers(1, 200))
    clip = draw(st.floats(1e-3, 1e3))
    max_weight = draw(st.floats(1e-2, 1e4))
    seed = draw(st.integers(0, 2**32 - 1))
    return n, size, clip, max_weight, seed


def encode_all(enc, xs, ws, rng):
    total = np.zeros(enc.words(xs[0].size), dtype=np.uint32)
    for x, w in zip(xs, ws, strict=True):
        np.add(total, enc.encode(x, w, rng), out=total)
    return total


@settings(max_examples=60, deadline=None)
@given(updates())
def test_decoded_sum_is_within_the_stated_bound(case):
    # Arrange: values up to 3x the clip range, so clipping is exercised
    n, size, clip, max_weight, seed = case
    rng = np.random.default_rng(seed)
    enc = FixedPointEncoding(clip=clip, participants=n, max_weight=max_weight)
    xs = [rng.uniform(-3 * clip, 3 * clip, size) for _ in range(n)]
    ws = rng.uniform(0, max_weight, n)
    # Act
    weighted, weight = enc.decode(encode_all(enc, xs, ws, rng))
    # Assert
    true = sum(w * np.clip(x, -clip, clip) for x, w in zip(xs, ws, strict=True))
    assert np.abs(weighted - true).max() <= enc.bound
    assert abs(weight - ws.sum()) <= enc.weight_bound


def test_extremes_at_full_headroom_do_not_overflow():
    # Every participant at the top of the range, with the largest weight
    n = 1000
    enc = FixedPointEncoding(clip=2.0, participants=n, max_weight=5.0)
    rng = np.random.default_rng(1)
    for sign in (1.0, -1.0):
        xs = [np.full(3, sign * 10.0) for _ in range(n)]
        weighted, weight = enc.decode(encode_all(enc, xs, [5.0] * n, rng))
        np.testing.assert_allclose(weighted, sign * n * 5.0 * 2.0, atol=enc.bound)
        assert abs(weight - n * 5.0) <= enc.weight_bound


def test_rounding_is_unbiased():
    enc = FixedPointEncoding(clip=1.0, participants=2**20)  # coarse: 1 unit ~ 1e-3
    rng = np.random.default_rng(2)
    value = 0.3 / enc.scale  # a third of one unit
    words = enc.encode(np.full(100_000, value), 1.0, rng)[:-1]
    assert set(np.unique(words.view(np.int32))) <= {0, 1}
    assert abs(words.view(np.int32).mean() - 0.3) < 0.01


def test_weighted_mean():
    enc = FixedPointEncoding(clip=10.0, participants=3, max_weight=100.0)
    rng = np.random.default_rng(3)
    xs = [np.array([1.0, -2.0]), np.array([3.0, 4.0]), np.array([5.0, 0.5])]
    ws = [10.0, 30.0, 60.0]
    mean = enc.decode_mean(encode_all(enc, xs, ws, rng))
    np.testing.assert_allclose(mean, [4.0, 1.3], atol=1e-5)


def test_zero_total_weight_has_no_mean():
    enc = FixedPointEncoding(clip=1.0, participants=2)
    total = encode_all(enc, [np.ones(2)] * 2, [0.0, 0.0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="no mean"):
        enc.decode_mean(total)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip": 0.0, "participants": 2}, "clip"),
        ({"clip": float("inf"), "participants": 2}, "clip"),
        ({"clip": 1.0, "participants": 0}, "participants"),
        ({"clip": 1.0, "participants": 2, "max_weight": -1.0}, "max_weight"),
    ],
)
def test_invalid_encodings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FixedPointEncoding(**kwargs)


def test_invalid_inputs_are_refused():
    enc = FixedPointEncoding(clip=1.0, participants=2, max_weight=1.0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="NaN"):
        enc.encode(np.array([np.nan]), 1.0, rng)
    with pytest.raises(ValueError, match="outside"):
        enc.encode(np.array([0.0]), 2.0, rng)
    with pytest.raises(ValueError):
        enc.decode(np.zeros(3, np.int32))  # type: ignore[arg-type]


def _reference_encode(enc, values, weight, rng):
    """The one-pass formulas of the module docstring, as first written."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    work = np.clip(flat, -enc.clip, enc.clip)
    work *= weight * enc.scale
    work += rng.random(work.size)
    np.floor(work, out=work)
    tail = np.floor(weight * enc.weight_scale + rng.random(1))
    return np.concatenate([work, tail]).astype(np.int32).view(np.uint32)


@pytest.mark.parametrize(
    "sizes",
    [(0,), (1,), (CHUNK - 1,), (CHUNK,), (CHUNK + 1,), (3, CHUNK + 5, 2 * CHUNK + 7)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spread", [0.7, 0.05])
def test_chunked_encoding_is_bit_identical_to_the_one_pass_formulas(
    sizes, dtype, spread
):
    # Arrange: values across the clip range, some beyond it (spread 0.7) or all
    # within it (0.05: no chunk needs clipping), in several tensors
    data = np.random.default_rng(sum(sizes))
    parts = [data.normal(0, spread, size).astype(dtype) for size in sizes]
    enc = FixedPointEncoding(clip=1.0, participants=7, max_weight=2.0)
    # Act
    encoded = enc.encode_parts(parts, 1.5, np.random.default_rng(3))
    reference = _reference_encode(
        enc,
        np.concatenate([p.astype(np.float64) for p in parts] or [np.zeros(0)]),
        1.5,
        np.random.default_rng(3),
    )
    # Assert
    np.testing.assert_array_equal(encoded.words, reference)
    assert encoded.clipped == sum(int((np.abs(p) > 1.0).sum()) for p in parts)


def test_a_non_finite_value_in_a_later_chunk_is_refused():
    values = np.zeros(CHUNK + 10, dtype=np.float32)
    values[CHUNK + 3] = np.inf
    enc = FixedPointEncoding(clip=1.0, participants=3)
    with pytest.raises(ValueError, match="NaN or infinity"):
        enc.encode_parts([values], 1.0, np.random.default_rng(0))


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_a_non_finite_value_among_small_ones_is_refused(bad):
    # Every other value is within the clip range: the chunk's maximum must still
    # catch it.
    values = np.full(CHUNK + 10, 0.01, dtype=np.float64)
    values[7] = bad
    enc = FixedPointEncoding(clip=1.0, participants=3)
    with pytest.raises(ValueError, match="NaN or infinity"):
        enc.encode_parts([values], 1.0, np.random.default_rng(0))
