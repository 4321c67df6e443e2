"""t-of-n Shamir sharing of 16-byte secrets over the prime field F_p, p = 2^130 - 5.

The protocol's shared secrets are 128 bits (a self-mask seed and a masking secret,
from which HKDF derives the keys, :mod:`accord.secagg.transcript`), and every secret
a participant deals goes to the same holders at the same evaluation points
``1..m``. So dealing is one matrix product (the random polynomials of all of a
dealer's secrets times the Vandermonde matrix of the points) and rebuilding is one
dot product per secret with Lagrange coefficients that depend only on *which*
indices were combined, computed once per index set and reused for every dealer
that revealed the same set.

Why hand-written, and why this field: the previous implementation used
pycryptodome's ``Shamir`` in GF(2^128), whose field multiplication is a bit loop in
pure Python (~12 us each); it took 40 % of a secure round. The maintained
vectorized finite-field library, ``galois``, needs numba and LLVM (and a JIT
compile at first use), far too heavy for a few hundred field operations a round;
gmpy2 is not needed because Python's own integers multiply 130-bit numbers in tens
of nanoseconds. Arithmetic in a prime field is then a multiplication and a ``%``,
which is all Shamir's scheme needs, with nothing to get subtly wrong. The prime
2^130 - 5 (Bernstein's Poly1305 prime, well established) is the smallest
convenient prime above 2^128, so every 128-bit secret is a field element as is, and
a share is one element encoded on :data:`SHARE_BYTES` = 17 big-endian bytes.

Security is Shamir's, unconditionally: the ``t - 1`` random coefficients of each
polynomial are drawn uniformly from F_p with :func:`secrets.randbelow` (the OS
CSPRNG, no modulo bias), so any ``t - 1`` shares are uniformly distributed and
independent of the secret (for each value of the secret there is exactly one
polynomial through them). :func:`combine_shares` refuses fewer than ``t`` shares,
duplicate indices, and values that are not canonical field elements.

Share format 2 (this one) replaced format 1 (GF(2^128), 16-byte shares): the
lengths differ, so a share of format 1 is refused by its length with a message
that names the format, never misread. Whether a reconstruction is *right* is
checked by the caller against a commitment (:mod:`accord.secagg.recovery`),
because interpolation returns some value for any set of shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from secrets import randbelow as _csprng_below

__all__ = [
    "MAX_HOLDERS",
    "PRIME",
    "SECRET_BYTES",
    "SHARE_BYTES",
    "SHARE_FORMAT",
    "Share",
    "check_share_value",
    "combine_batch",
    "combine_shares",
    "split_secret",
    "split_secrets",
]

#: The field's modulus: 2^130 - 5, a prime just above the 128-bit secrets.
PRIME = (1 << 130) - 5
#: Bytes of a secret: 128 bits, the security level of X25519.
SECRET_BYTES = 16
#: Bytes of a share's value: one element of F_p, big-endian.
SHARE_BYTES = 17
#: Version of the share encoding; format 1 was GF(2^128) with 16-byte shares.
SHARE_FORMAT = 2
#: Largest number of shares of one secret (indices are encoded on 2 bytes).
MAX_HOLDERS = 0xFFFF

_FORMAT_1_BYTES = 16


@dataclass(frozen=True, slots=True)
class Share:
    """One share: its evaluation point ``index`` (1-based) and its 17-byte value."""

    index: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_HOLDERS:
            raise ValueError(f"a share index is in 1..{MAX_HOLDERS}, not {self.index}")
        check_share_value(self.value)

    @property
    def element(self) -> int:
        """The value as a field element."""
        return int.from_bytes(self.value, "big")


def check_share_value(value: bytes) -> None:
    """Raise ValueError unless ``value`` encodes a share of this format."""
    if len(value) == _FORMAT_1_BYTES:
        raise ValueError(
            f"a {_FORMAT_1_BYTES}-byte share is of share format 1 (GF(2^128), older "
            f"accord); this version reads format {SHARE_FORMAT} ({SHARE_BYTES} "
            "bytes): run the same accord version on every site and the coordinator"
        )
    if len(value) != SHARE_BYTES:
        raise ValueError(f"a share has {SHARE_BYTES} bytes, this one has {len(value)}")
    if int.from_bytes(value, "big") >= PRIME:
        raise ValueError("a share's value is not a field element (not below 2^130-5)")


def _check_threshold(threshold: int, holders: int) -> None:
    if holders > MAX_HOLDERS:
        raise ValueError(f"at most {MAX_HOLDERS} holders can share one secret")
    if threshold < 2:
        raise ValueError(
            f"threshold {threshold} is too low: with t = 1 every share is the secret "
            "itself; use t >= 2 (the protocol requires t > holders / 2)"
        )
    if threshold > holders:
        raise ValueError(
            f"threshold {threshold} exceeds the {holders} holders: the secret could "
            "never be reconstructed"
        )


def split_secrets(
    values: Sequence[bytes],
    *,
    threshold: int,
    holders: int,
    randbelow: Callable[[int], int] = _csprng_below,
) -> list[list[Share]]:
    """Share every 16-byte secret among ``holders``; any ``threshold`` rebuild each.

    Returns one list per secret; its share ``i`` (1-based) goes to the ``i``-th
    holder. ``randbelow`` draws the coefficients (the OS CSPRNG; tests may seed it).
    """
    for secret in values:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"a secret has {SECRET_BYTES} bytes, got {len(secret)}")
    _check_threshold(threshold, holders)
    p = PRIME
    # Row k: the coefficients a_1..a_{t-1} of secret k's polynomial (a_0 = secret).
    rows = [
        (int.from_bytes(s, "big"), [randbelow(p) for _ in range(threshold - 1)])
        for s in values
    ]
    out: list[list[Share]] = [[] for _ in values]
    for x, powers in enumerate(_powers(threshold, holders), start=1):
        for k, (constant, coefficients) in enumerate(rows):
            y = (constant + sum(map(int.__mul__, coefficients, powers))) % p
            out[k].append(Share(x, y.to_bytes(SHARE_BYTES, "big")))
    return out


def split_secret(secret: bytes, *, threshold: int, holders: int) -> list[Share]:
    """Share one 16-byte ``secret`` among ``holders`` (see :func:`split_secrets`)."""
    return split_secrets([secret], threshold=threshold, holders=holders)[0]


def combine_shares(shares: Sequence[Share], *, threshold: int) -> bytes:
    """Rebuild a secret from the first ``threshold`` of ``shares``.

    Raises ValueError if there are fewer than ``threshold`` shares, two of them
    share an index, or the result is no 128-bit secret (the shares are of
    different secrets, or altered). An altered share otherwise gives a different
    secret: check it against a commitment.
    """
    return combine_batch([shares], threshold=threshold)[0]


def combine_batch(groups: Sequence[Sequence[Share]], *, threshold: int) -> list[bytes]:
    """Rebuild one secret per group of shares, as :func:`combine_shares` would.

    Groups whose first ``threshold`` shares have the same indices share one set of
    Lagrange coefficients. Raises ValueError naming the first bad group.
    """
    if threshold < 2:
        raise ValueError(f"threshold must be at least 2, not {threshold}")
    p = PRIME
    out: list[bytes] = []
    for number, shares in enumerate(groups):
        if len(shares) < threshold:
            raise ValueError(
                f"{len(shares)} share(s) cannot rebuild a secret with threshold "
                f"{threshold}" + (f" (group {number})" if len(groups) > 1 else "")
            )
        chosen = shares[:threshold]
        indices = tuple(s.index for s in chosen)
        if len(set(indices)) != len(indices):
            raise ValueError("two shares have the same index")
        weights = _lagrange_at_zero(indices)
        value = sum(map(int.__mul__, weights, (s.element for s in chosen))) % p
        if value >> (8 * SECRET_BYTES):
            raise ValueError(
                "the shares do not interpolate to a 128-bit secret: they are of "
                "different secrets or were altered"
            )
        out.append(value.to_bytes(SECRET_BYTES, "big"))
    return out


@lru_cache(maxsize=64)
def _powers(threshold: int, holders: int) -> tuple[tuple[int, ...], ...]:
    """Row ``x - 1``: ``x^1 .. x^(t-1) mod p`` for each point ``x = 1..holders``."""
    rows = []
    for x in range(1, holders + 1):
        row, power = [], 1
        for _ in range(threshold - 1):
            power = power * x % PRIME
            row.append(power)
        rows.append(tuple(row))
    return tuple(rows)


@lru_cache(maxsize=256)
def _lagrange_at_zero(indices: tuple[int, ...]) -> tuple[int, ...]:
    """The weights ``l_i(0)`` with ``f(0) = sum l_i(0) f(x_i)`` for distinct ``x_i``."""
    p = PRIME
    weights = []
    for i, xi in enumerate(indices):
        numerator, denominator = 1, 1
        for j, xj in enumerate(indices):
            if i != j:
                numerator = numerator * xj % p
                denominator = denominator * (xj - xi) % p
        weights.append(numerator * pow(denominator, -1, p) % p)
    return tuple(weights)
