"""The exact encoding: a ring sum decodes to the exactly rounded sum, at any scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.secagg.exact import LIMBS, MAX_PARTICIPANTS, ExactEncoding

finite = st.floats(allow_nan=False, allow_infinity=False)


def ring_sum(encoding: ExactEncoding, inputs) -> np.ndarray:
    total = np.zeros(encoding.words, dtype=np.uint32)
    for values in inputs:
        np.add(total, encoding.encode(values), out=total)  # wraps, as masks do
    return total


def fsum(column) -> float:
    try:
        return math.fsum(column)
    except OverflowError:  # finite inputs whose exact sum is past float64
        return math.copysign(math.inf, sum(math.copysign(1, x) for x in column))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda size: st.lists(
            st.lists(finite, min_size=size, max_size=size), min_size=1, max_size=8
        )
    )
)
def test_the_decoded_sum_is_fsum_bit_for_bit(inputs):
    # Arrange: any finite values (subnormals, 0.0, -0.0, the largest double)
    encoding = ExactEncoding(len(inputs[0]))

    # Act
    decoded = encoding.decode(ring_sum(encoding, inputs), len(inputs))

    # Assert: what the plain fit adds with math.fsum, to the last bit
    for j in range(encoding.values):
        exact = fsum([row[j] for row in inputs])
        if math.isinf(exact):
            assert math.isinf(decoded[j])
        else:
            assert decoded[j] == exact


def test_the_extremes_of_float64_sum_exactly():
    tiny, big = 5e-324, 2.0**1023
    inputs = [[tiny, big, -big, 0.1], [tiny, -big, big, 0.2], [-tiny, 1.0, 0.0, 0.3]]
    encoding = ExactEncoding(4)

    decoded = encoding.decode(ring_sum(encoding, inputs), 3)

    assert decoded.tolist() == [tiny, 1.0, 0.0, math.fsum([0.1, 0.2, 0.3])]
    assert decoded[3] != 0.1 + 0.2 + 0.3  # the naive sum rounds twice


def test_no_limb_wraps_at_the_most_participants_and_one_more_would():
    # The largest limb any value holds (0xFFFF), summed by every participant.
    words = ExactEncoding(2).encode([-(2.0**-1074), 2.0**1000])
    assert int(words.max()) == 2**16 - 1
    widest = words.astype(np.uint64) * MAX_PARTICIPANTS
    assert int(widest.max()) <= 2**32 - 1
    assert int((words.astype(np.uint64) * (MAX_PARTICIPANTS + 1)).max()) > 2**32 - 1

    decoded = ExactEncoding(2).decode(widest.astype(np.uint32), MAX_PARTICIPANTS)

    assert decoded[1] == MAX_PARTICIPANTS * 2.0**1000
    assert decoded[0] == -MAX_PARTICIPANTS * 2.0**-1074


@pytest.mark.parametrize("contributors", [0, MAX_PARTICIPANTS + 1])
def test_more_contributors_than_the_limbs_can_carry_are_refused(contributors):
    encoding = ExactEncoding(1)
    with pytest.raises(ValueError, match=f"1 to {MAX_PARTICIPANTS}"):
        encoding.decode(np.zeros(LIMBS, dtype=np.uint32), contributors)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_value_that_is_not_finite_is_not_encoded(bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        ExactEncoding(2).encode([1.0, bad])


def test_another_number_of_values_is_refused():
    with pytest.raises(ValueError, match="expected 3 values, got 2"):
        ExactEncoding(3).encode([1.0, 2.0])
    with pytest.raises(ValueError, match=f"{3 * LIMBS} uint32 words"):
        ExactEncoding(3).decode(np.zeros(LIMBS, dtype=np.uint32), 1)


def test_a_sum_no_finite_inputs_give_is_refused():
    # A forged input: every limb at its largest, as no encoded value is.
    forged = np.full(LIMBS, 2**32 - 1, dtype=np.uint32)
    with pytest.raises(ValueError, match="not an exact encoding"):
        ExactEncoding(1).decode(forged, 1)


def test_each_value_takes_its_limbs():
    assert ExactEncoding(7).words == 7 * LIMBS == 924
    with pytest.raises(ValueError, match="at least one value"):
        ExactEncoding(0)
