import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.errors import DatasetError
from accord.trees.fixed import (
    FRACTION_BITS,
    decode_limbs,
    dequantise,
    encode_limbs,
    quantise,
)

_values = st.lists(st.integers(-(2**58), 2**58), min_size=1, max_size=8)


@given(
    st.lists(_values, min_size=1, max_size=6).filter(
        lambda parts: len({len(p) for p in parts}) == 1
    )
)
def test_the_ring_sum_of_limbs_decodes_to_the_exact_sum(parts: list[list[int]]) -> None:
    arrays = [np.array(p, dtype=np.int64) for p in parts]
    ring = np.zeros(arrays[0].size * 4, dtype=np.uint32)
    for a in arrays:
        ring += encode_limbs(a)  # uint32 addition wraps mod 2^32, as the ring does

    total = decode_limbs(ring, len(arrays))

    np.testing.assert_array_equal(
        total, np.sum([np.array(p, dtype=object) for p in parts], axis=0)
    )


def test_quantised_floats_sum_within_half_a_unit_per_part() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.normal(scale=100.0, size=50) for _ in range(5)]

    total = dequantise(np.sum([quantise(p) for p in parts], axis=0))

    np.testing.assert_allclose(
        total, np.sum(parts, axis=0), rtol=0, atol=5 * 2.0**-FRACTION_BITS
    )


def test_values_that_could_overflow_are_refused() -> None:
    with pytest.raises(DatasetError, match="too large"):
        quantise(np.array([2.0**40]))
    with pytest.raises(DatasetError, match="finite"):
        quantise(np.array([np.inf]))
