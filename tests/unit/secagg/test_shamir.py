"""Shamir sharing over F_p, p = 2^130 - 5: correctness, secrecy, refusals."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.secagg.shamir import (
    MAX_HOLDERS,
    PRIME,
    SECRET_BYTES,
    SHARE_BYTES,
    Share,
    combine_batch,
    combine_shares,
    split_secret,
    split_secrets,
)


@st.composite
def sharing(draw):
    holders = draw(st.integers(2, 24))
    threshold = draw(st.integers(2, holders))
    secret = draw(st.binary(min_size=16, max_size=16))
    order = draw(st.permutations(range(holders)))
    return secret, threshold, holders, order


def _is_probable_prime(n: int) -> bool:
    """Miller-Rabin with the first 20 primes as bases (an error is below 4^-20)."""
    bases = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61]
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def test_the_modulus_is_a_prime_above_every_secret():
    assert PRIME == 2**130 - 5
    assert _is_probable_prime(PRIME)
    assert not _is_probable_prime(PRIME + 2)  # the test itself can say no
    assert 2 ** (8 * SECRET_BYTES) < PRIME < 2 ** (8 * SHARE_BYTES)


@settings(max_examples=60, deadline=None)
@given(sharing())
def test_any_t_shares_reconstruct(case):
    # Arrange
    secret, t, n, order = case
    shares = split_secret(secret, threshold=t, holders=n)
    # Act: an arbitrary subset of at least t shares, in arbitrary order
    chosen = [shares[i] for i in order]
    # Assert
    assert combine_shares(chosen[:t], threshold=t) == secret
    assert combine_shares(chosen, threshold=t) == secret


@settings(max_examples=40, deadline=None)
@given(sharing(), st.integers(0, 2**32))
def test_shares_are_the_polynomial_evaluated_at_1_to_n(case, seed):
    # An independent reference: record the coefficients drawn, evaluate naively.
    secret, t, n, _ = case
    drawn: list[int] = []
    rng = random.Random(seed)

    def randbelow(bound: int) -> int:
        drawn.append(rng.randrange(bound))
        return drawn[-1]

    shares = split_secrets([secret], threshold=t, holders=n, randbelow=randbelow)[0]
    coefficients = [int.from_bytes(secret, "big"), *drawn]
    assert len(drawn) == t - 1
    for x, share in enumerate(shares, start=1):
        expected = sum(c * pow(x, k, PRIME) for k, c in enumerate(coefficients))
        assert share.index == x
        assert share.element == expected % PRIME


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=5),
    st.integers(2, 12),
    st.integers(0, 2**32),
)
def test_batched_dealing_and_rebuilding_equal_one_secret_at_a_time(
    secrets, holders, seed
):
    # Arrange: the same coefficient stream for both ways
    t = max(2, holders // 2 + 1)
    batched = split_secrets(
        secrets,
        threshold=t,
        holders=holders,
        randbelow=random.Random(seed).randrange,
    )
    stream = random.Random(seed).randrange
    single = [
        split_secrets([s], threshold=t, holders=holders, randbelow=stream)[0]
        for s in secrets
    ]
    # Act
    rebuilt = combine_batch([shares[-t:] for shares in batched], threshold=t)
    # Assert
    assert batched == single
    assert rebuilt == [combine_shares(s[-t:], threshold=t) for s in batched]
    assert rebuilt == secrets


@settings(max_examples=40, deadline=None)
@given(sharing())
def test_fewer_than_t_shares_are_refused(case):
    secret, t, n, order = case
    shares = split_secret(secret, threshold=t, holders=n)
    fewer = [shares[i] for i in order[: t - 1]]
    with pytest.raises(ValueError, match="cannot rebuild"):
        combine_shares(fewer, threshold=t)


def test_t_minus_1_shares_are_uniform_whatever_the_secret():
    # Secrecy, measured: with t = 3, any 2 shares of a secret are uniform in F_p^2
    # and independent of it. Bucket each share into 8 ranges of F_p and compare the
    # 64 joint buckets of the shares at x = 1 and x = 2 for two very different
    # secrets with a chi-square test. Coefficients drawn below 2^128 (or 2^129)
    # instead of below p leave the high buckets of x = 1 empty: chi2 > 2000.
    rng = random.Random(7)
    draws = 4000

    def histogram(secret: bytes) -> list[int]:
        counts = [0] * 64
        for _ in range(draws):
            shares = split_secrets(
                [secret], threshold=3, holders=5, randbelow=rng.randrange
            )[0]
            a, b = (shares[i].element * 8 // PRIME for i in (0, 1))
            counts[8 * a + b] += 1
        return counts

    expected = draws / 64
    for secret in (bytes(16), b"\xff" * 16):
        chi2 = sum((c - expected) ** 2 / expected for c in histogram(secret))
        # 63 degrees of freedom: the 0.999 quantile is 103.4
        assert chi2 < 103.4, chi2


def test_shares_are_numbered_one_to_n_and_17_bytes():
    shares = split_secret(b"k" * 16, threshold=3, holders=5)
    assert [s.index for s in shares] == [1, 2, 3, 4, 5]
    assert all(len(s.value) == SHARE_BYTES for s in shares)


def test_an_altered_share_gives_another_secret_or_an_error():
    secret = bytes(range(16))
    shares = split_secret(secret, threshold=3, holders=4)
    bad = Share(shares[0].index, bytes(SHARE_BYTES))
    try:
        assert combine_shares([bad, *shares[1:3]], threshold=3) != secret
    except ValueError as exc:
        assert "128-bit" in str(exc)


def test_shares_at_the_wrong_indices_do_not_rebuild_the_secret():
    secret = bytes(range(16))
    a, b, c = split_secret(secret, threshold=3, holders=3)
    swapped = [Share(1, b.value), Share(2, a.value), c]
    try:
        assert combine_shares(swapped, threshold=3) != secret
    except ValueError as exc:
        assert "128-bit" in str(exc)


def test_shares_that_interpolate_past_128_bits_are_refused():
    # f(x) = (2^128) + 0x: every share is 2^128, the "secret" is no 16-byte value
    top = (1 << 128).to_bytes(SHARE_BYTES, "big")
    with pytest.raises(ValueError, match="128-bit secret"):
        combine_shares([Share(1, top), Share(2, top)], threshold=2)


@pytest.mark.parametrize(
    ("secret", "t", "n", "match"),
    [
        (b"x" * 17, 2, 3, "16 bytes"),
        (b"x" * 15, 2, 3, "16 bytes"),
        (b"x" * 16, 1, 3, "too low"),
        (b"x" * 16, 4, 3, "exceeds"),
        (b"x" * 16, 2, MAX_HOLDERS + 1, "at most"),
    ],
)
def test_split_validates_its_inputs(secret, t, n, match):
    with pytest.raises(ValueError, match=match):
        split_secret(secret, threshold=t, holders=n)


def test_split_accepts_the_bounds():
    assert len(split_secret(b"x" * 16, threshold=2, holders=2)) == 2
    assert len(split_secret(b"x" * 16, threshold=3, holders=3)) == 3


def test_combine_refuses_duplicate_indices_and_a_threshold_below_2():
    shares = split_secret(b"y" * 16, threshold=2, holders=3)
    with pytest.raises(ValueError, match="same index"):
        combine_shares([shares[0], shares[0]], threshold=2)
    with pytest.raises(ValueError, match="at least 2"):
        combine_shares(shares, threshold=1)


@pytest.mark.parametrize(
    ("index", "value", "match"),
    [
        (0, bytes(SHARE_BYTES), "index"),
        (MAX_HOLDERS + 1, bytes(SHARE_BYTES), "index"),
        (1, bytes(16), "share format 1"),
        (1, bytes(18), "17 bytes"),
        (1, PRIME.to_bytes(SHARE_BYTES, "big"), "not a field element"),
    ],
)
def test_a_share_must_be_canonical(index, value, match):
    with pytest.raises(ValueError, match=match):
        Share(index, value)


def test_the_largest_index_and_value_are_shares():
    share = Share(MAX_HOLDERS, (PRIME - 1).to_bytes(SHARE_BYTES, "big"))
    assert share.element == PRIME - 1
