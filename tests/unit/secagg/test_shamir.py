from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.secagg.shamir import Share, combine_shares, split_secret


@st.composite
def sharing(draw):
    holders = draw(st.integers(2, 12))
    threshold = draw(st.integers(2, holders))
    secret = draw(st.binary(min_size=16, max_size=16))
    order = draw(st.permutations(range(holders)))
    return secret, threshold, holders, order


@settings(max_examples=40, deadline=None)
@given(sharing())
def test_any_t_shares_reconstruct(case):
    # Arrange
    secret, t, n, order = case
    shares = split_secret(secret, threshold=t, holders=n)
    # Act: an arbitrary subset of exactly t shares, in arbitrary order
    chosen = [shares[i] for i in order[:t]]
    # Assert
    assert combine_shares(chosen, threshold=t) == secret


@settings(max_examples=40, deadline=None)
@given(sharing())
def test_fewer_than_t_shares_do_not_reconstruct(case):
    secret, t, n, order = case
    shares = split_secret(secret, threshold=t, holders=n)
    fewer = [shares[i] for i in order[: t - 1]]
    # The API refuses outright...
    with pytest.raises(ValueError, match="cannot rebuild"):
        combine_shares(fewer, threshold=t)
    # ...and interpolating t - 1 points gives some other value.
    if t - 1 >= 2:
        assert combine_shares(fewer, threshold=t - 1) != secret


def test_shares_are_numbered_one_to_n_and_16_bytes():
    shares = split_secret(b"k" * 16, threshold=3, holders=5)
    assert [s.index for s in shares] == [1, 2, 3, 4, 5]
    assert all(len(s.value) == 16 for s in shares)


def test_altered_share_changes_the_result():
    secret = bytes(range(16))
    shares = split_secret(secret, threshold=3, holders=4)
    bad = Share(shares[0].index, bytes(16))
    assert combine_shares([bad, *shares[1:3]], threshold=3) != secret


@pytest.mark.parametrize(
    ("secret", "t", "n", "match"),
    [
        (b"x" * 32, 2, 3, "16 bytes"),
        (b"x" * 16, 1, 3, "too low"),
        (b"x" * 16, 4, 3, "exceeds"),
        (b"x" * 16, 2, 70_000, "at most"),
    ],
)
def test_split_validates_its_inputs(secret, t, n, match):
    with pytest.raises(ValueError, match=match):
        split_secret(secret, threshold=t, holders=n)


def test_combine_validates_its_inputs():
    shares = split_secret(b"y" * 16, threshold=2, holders=3)
    with pytest.raises(ValueError, match="same index"):
        combine_shares([shares[0], shares[0]], threshold=2)
    with pytest.raises(ValueError):
        combine_shares(shares, threshold=1)
    with pytest.raises(ValueError):
        Share(0, b"z" * 16)
    with pytest.raises(ValueError):
        Share(1, b"z" * 15)
