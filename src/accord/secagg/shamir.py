"""t-of-n Shamir sharing of 16-byte secrets, on top of pycryptodome's ``Shamir``.

pycryptodome shares 16-byte secrets in GF(2^128) (``Crypto.Protocol.SecretSharing``,
a maintained, reviewed implementation). The protocol's shared secrets are exactly
that size: a 128-bit self-mask seed and a 128-bit masking secret, from which the
mask key and the X25519 masking key are derived with HKDF
(:mod:`accord.secagg.transcript`). 128 bits is the security level of X25519 itself,
so nothing is lost, and each secret is one polynomial instead of two: the field
arithmetic is pure Python and dominates a round's cost (an earlier version shared
32-byte secrets as two halves, at twice the cost).

This module only adds what the protocol needs around the library: input
validation with readable errors and a :class:`Share` type with a fixed encoding.
Whether a reconstruction is *right* is checked by the caller against a commitment
(see :mod:`accord.secagg.server`), because Shamir itself returns some value for any
set of shares, right or wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.errors import MissingExtraError

try:
    from Crypto.Protocol.SecretSharing import Shamir
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError(
        extra="secagg", package="pycryptodome", feature="Secure aggregation"
    ) from exc

__all__ = ["MAX_HOLDERS", "SECRET_BYTES", "Share", "combine_shares", "split_secret"]

#: Bytes of a secret (and of a share): one element of GF(2^128).
SECRET_BYTES = 16
#: Largest number of shares of one secret (indices are encoded on 2 bytes).
MAX_HOLDERS = 0xFFFF


@dataclass(frozen=True, slots=True)
class Share:
    """One share: its evaluation point ``index`` (1-based) and its 16-byte value."""

    index: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_HOLDERS:
            raise ValueError(f"a share index is in 1..{MAX_HOLDERS}, not {self.index}")
        if len(self.value) != SECRET_BYTES:
            raise ValueError(
                f"a share has {SECRET_BYTES} bytes, this one has {len(self.value)}"
            )


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


def split_secret(secret: bytes, *, threshold: int, holders: int) -> list[Share]:
    """Share a 16-byte ``secret`` among ``holders``; any ``threshold`` rebuild it.

    Share ``i`` (1-based) goes to the ``i``-th holder. Randomness comes from
    pycryptodome's CSPRNG.
    """
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a secret has {SECRET_BYTES} bytes, got {len(secret)}")
    _check_threshold(threshold, holders)
    # pycryptodome numbers the shares 1..holders, in order.
    return [Share(i, value) for i, value in Shamir.split(threshold, holders, secret)]


def combine_shares(shares: Sequence[Share], *, threshold: int) -> bytes:
    """Rebuild a secret from the first ``threshold`` of ``shares``.

    Raises ValueError if there are fewer than ``threshold`` shares or two share one
    index. With shares of a different secret, or altered ones, the result is simply
    a different 16-byte value: check it against a commitment.
    """
    if threshold < 2:
        raise ValueError(f"threshold must be at least 2, not {threshold}")
    if len(shares) < threshold:
        raise ValueError(
            f"{len(shares)} share(s) cannot rebuild a secret with threshold {threshold}"
        )
    # pycryptodome wants exactly t points: extra ones only cost time.
    chosen = list(shares[:threshold])
    if len({s.index for s in chosen}) != len(chosen):
        raise ValueError("two shares have the same index")
    return Shamir.combine([(s.index, s.value) for s in chosen])
