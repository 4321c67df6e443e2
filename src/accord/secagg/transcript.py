"""The exact bytes the protocol signs, authenticates and derives keys from.

Both state machines build these strings through the functions below, so a
participant and the coordinator cannot disagree on what a signature covers. Every
string is a :func:`~accord.secagg.crypto.frame` that starts with its purpose and
the run and round ids: a signature, ciphertext or key of one round, purpose or pair
of participants is useless in any other.

The plaintext a dealer encrypts for each holder (a "share bundle") has a fixed
layout: the bundle format (1 byte, :data:`BUNDLE_FORMAT`), the 2-byte share index,
the self-mask share, the masking-key share, and a 16-byte random salt per share.
Each share is bound by a salted SHA-256 commitment (:func:`share_commitment`), and
the dealer signs **once** the list of all its commitments, for every holder, in
share-index order (:func:`dealing_statement`). A holder checks that signature and
its own two commitments before it relies on a share; at stage 4 it reveals exactly
one share with its salt, which the coordinator checks against the signed list on
its own. So a holder can still prove which share it was given and a forged reveal
is still attributed to the holder, with one signature per dealer instead of one
per share (bundle format 3; format 2 signed every share, 2 m signatures a dealer).
The salt makes each commitment hiding (the other holders and the coordinator see
the whole list): without it, a commitment to a share that ``t - 1`` colluders can
narrow down would be a 128-bit brute-force target at most, with it nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import (
    SIGNATURE_BYTES,
    KeyAgreement,
    X25519PrivateKey,
    agree,
    derive_key,
    digest,
    extend_frame,
    frame,
)
from accord.secagg.messages import AdvertiseKeys, ShareKind
from accord.secagg.shamir import SHARE_BYTES, SHARE_FORMAT, check_share_value

__all__ = [
    "BUNDLE_BYTES",
    "BUNDLE_FORMAT",
    "COMMITMENT_BYTES",
    "FORMAT_1_BUNDLE_BYTES",
    "FORMAT_2_BUNDLE_BYTES",
    "SALT_BYTES",
    "ShareBundle",
    "advertisement",
    "commitment_of",
    "dealing_statement",
    "directory_digest",
    "masking_private_key",
    "pairwise_mask_key",
    "seed_commitment",
    "self_mask_key",
    "share_associated_data",
    "share_commitment",
    "share_encryption_key",
    "survivor_statement",
]

#: Version of the bundle layout and of what the dealer signs: 3 is salted
#: commitments under one signature per dealer; 2 signed each share.
BUNDLE_FORMAT = 3
#: Bytes of the random salt of each share's commitment.
SALT_BYTES = 16
#: Bytes of one share's commitment (SHA-256).
COMMITMENT_BYTES = 32
#: Bytes of a packed :class:`ShareBundle` (the plaintext of each share ciphertext).
BUNDLE_BYTES = 1 + 2 + 2 * SHARE_BYTES + 2 * SALT_BYTES
#: Bytes of a bundle of format 2 (17-byte shares, a signature on each).
FORMAT_2_BUNDLE_BYTES = 1 + 2 + 2 * SHARE_BYTES + 2 * SIGNATURE_BYTES
#: Bytes of a bundle of share format 1 (16-byte shares, no format byte).
FORMAT_1_BUNDLE_BYTES = 2 + 2 * 16 + 2 * SIGNATURE_BYTES
_KINDS = (ShareKind.SELF_MASK, ShareKind.MASK_KEY)


def advertisement(
    cfg: SecAggConfig,
    sender: str,
    encryption_key: bytes,
    masking_key: bytes,
    commitment: bytes,
) -> bytes:
    """What a participant signs at stage 0."""
    return frame(
        "advertise",
        cfg.run_id,
        cfg.round_number,
        sender,
        encryption_key,
        masking_key,
        commitment,
    )


def seed_commitment(cfg: SecAggConfig, owner: str, seed: bytes) -> bytes:
    """SHA-256 commitment to a self-mask seed (hiding: the seed has 128 random bits)."""
    return digest("seed-commitment", cfg.run_id, cfg.round_number, owner, seed)


def masking_private_key(cfg: SecAggConfig, owner: str, secret: bytes) -> bytes:
    """The raw X25519 masking private key derived from ``owner``'s shared secret.

    The 128-bit secret is what is Shamir-shared (one field element); HKDF bound
    to the run, round and owner expands it into the 32-byte key, so rebuilding the
    secret of a participant that dropped out rebuilds its key.
    """
    return derive_key(
        secret,
        purpose="masking-key",
        context=frame("masking-key", cfg.run_id, cfg.round_number, owner),
    )


def share_commitment(
    cfg: SecAggConfig,
    kind: ShareKind,
    dealer: str,
    holder: str,
    index: int,
    value: bytes,
    salt: bytes,
) -> bytes:
    """The salted SHA-256 commitment to one dealt share.

    ``digest("share-commitment", BUNDLE_FORMAT, SHARE_FORMAT, run, round, kind,
    dealer, holder, index, value, salt)``; the fields every commitment of a dealer
    shares are framed once.
    """
    head = _commitment_head(cfg.run_id, cfg.round_number, str(kind), dealer)
    return hashlib.sha256(extend_frame(head, holder, index, value, salt)).digest()


@lru_cache(maxsize=1024)
def _commitment_head(run_id: str, round_number: int, kind: str, dealer: str) -> bytes:
    return frame(
        "share-commitment",
        BUNDLE_FORMAT,
        SHARE_FORMAT,
        run_id,
        round_number,
        kind,
        dealer,
    )


def dealing_statement(
    cfg: SecAggConfig, dealer: str, holders: Sequence[str], commitments: bytes
) -> bytes:
    """What a dealer signs at stage 1: its holders and every share's commitment.

    ``holders`` are in share-index order (holder ``i`` holds the shares of index
    ``i + 1``); ``commitments`` holds, per holder in that order, the commitment to
    its self-mask share then to its masking-key share.
    """
    return _dealing_statement(
        cfg.run_id, cfg.round_number, dealer, tuple(holders), bytes(commitments)
    )


@lru_cache(maxsize=1024)
def _dealing_statement(
    run_id: str,
    round_number: int,
    dealer: str,
    holders: tuple[str, ...],
    commitments: bytes,
) -> bytes:
    # Remembered (a pure function of its arguments): every holder of a dealer, and
    # the coordinator, check the same statement; a simulation process hosts many.
    return frame(
        "dealing",
        BUNDLE_FORMAT,
        SHARE_FORMAT,
        run_id,
        round_number,
        dealer,
        len(holders),
        *holders,
        commitments,
    )


def commitment_of(commitments: bytes, index: int, kind: ShareKind) -> bytes:
    """The commitment to the share of ``kind`` and ``index`` in a dealer's list.

    Raises ValueError if the list holds no such entry.
    """
    start = (2 * (index - 1) + _KINDS.index(kind)) * COMMITMENT_BYTES
    if index < 1 or start + COMMITMENT_BYTES > len(commitments):
        raise ValueError(f"the dealer's commitments have no entry for index {index}")
    return commitments[start : start + COMMITMENT_BYTES]


def directory_digest(cfg: SecAggConfig, adverts: Sequence[AdvertiseKeys]) -> bytes:
    """The digest of the key directory one sum's participants were sent (U1).

    Every key is fresh per sum, so it names the sum itself: a survivor's
    signature over it (:func:`survivor_statement`) cannot be relayed into another
    sum that the coordinator runs under the same run and round (a fairness or
    statistics sum beside a training round's), and participants shown different
    directories do not vouch for one another.
    """
    fields: list[bytes | str | int] = ["key-directory", cfg.run_id, cfg.round_number]
    for a in adverts:
        fields += [a.sender, a.encryption_key, a.masking_key, a.seed_commitment]
    return digest(*fields)


def survivor_statement(
    cfg: SecAggConfig, survivors: tuple[str, ...], directory: bytes
) -> bytes:
    """What each survivor signs at the consistency check (stage 3).

    ``directory`` is :func:`directory_digest` of the sum's key directory.
    """
    return frame("survivors", cfg.run_id, cfg.round_number, directory, *survivors)


def share_associated_data(cfg: SecAggConfig, dealer: str, holder: str) -> bytes:
    """AES-GCM associated data of the shares ``dealer`` encrypts for ``holder``."""
    return frame("share-ciphertext", cfg.run_id, cfg.round_number, dealer, holder)


def share_encryption_key(
    cfg: SecAggConfig,
    private: X25519PrivateKey | bytes | KeyAgreement,
    peer_public: bytes,
    dealer: str,
    holder: str,
) -> bytes:
    """AES-256-GCM key for shares from ``dealer`` to ``holder`` (one direction)."""
    secret = agree(private, peer_public)
    context = frame(cfg.run_id, cfg.round_number, dealer, holder)
    return derive_key(secret, purpose="share-encryption", context=context)


def pairwise_mask_key(
    cfg: SecAggConfig,
    private: X25519PrivateKey | bytes,
    peer_public: bytes,
    first: str,
    second: str,
) -> bytes:
    """AES-256-CTR key of the mask shared by ``first`` and ``second`` (in order)."""
    secret = agree(private, peer_public)
    context = frame(cfg.run_id, cfg.round_number, first, second)
    return derive_key(secret, purpose="pairwise-mask", context=context)


def self_mask_key(cfg: SecAggConfig, owner: str, seed: bytes) -> bytes:
    """AES-256-CTR key of ``owner``'s self-mask, from its 32-byte seed."""
    context = frame(cfg.run_id, cfg.round_number, owner)
    return derive_key(seed, purpose="self-mask", context=context)


@dataclass(frozen=True, slots=True)
class ShareBundle:
    """A dealer's two shares for one holder, each with its commitment's salt."""

    index: int
    self_mask: bytes
    mask_key: bytes
    self_mask_salt: bytes
    mask_key_salt: bytes

    def pack(self) -> bytes:
        """The fixed-layout plaintext."""
        return (
            bytes([BUNDLE_FORMAT])
            + self.index.to_bytes(2, "big")
            + self.self_mask
            + self.mask_key
            + self.self_mask_salt
            + self.mask_key_salt
        )

    @classmethod
    def unpack(cls, raw: bytes) -> ShareBundle:
        """Parse :meth:`pack` output.

        Raises ValueError on a wrong length, another format, or a share value that
        is not a field element.
        """
        older = {FORMAT_1_BUNDLE_BYTES: 1, FORMAT_2_BUNDLE_BYTES: 2}
        if len(raw) in older:
            raise ValueError(
                f"the shares are of bundle format {older[len(raw)]} (an older "
                f"accord); this version reads format {BUNDLE_FORMAT}: run the same "
                "accord version everywhere"
            )
        if len(raw) != BUNDLE_BYTES:
            raise ValueError(f"a share bundle has {BUNDLE_BYTES} bytes, not {len(raw)}")
        if raw[0] != BUNDLE_FORMAT:
            raise ValueError(
                f"the shares are of bundle format {raw[0]}; this version reads "
                f"format {BUNDLE_FORMAT}: run the same accord version everywhere"
            )
        s, g = SHARE_BYTES, SALT_BYTES
        bundle = cls(
            index=int.from_bytes(raw[1:3], "big"),
            self_mask=raw[3 : 3 + s],
            mask_key=raw[3 + s : 3 + 2 * s],
            self_mask_salt=raw[3 + 2 * s : 3 + 2 * s + g],
            mask_key_salt=raw[3 + 2 * s + g :],
        )
        check_share_value(bundle.self_mask)
        check_share_value(bundle.mask_key)
        return bundle

    def share(self, kind: ShareKind) -> tuple[bytes, bytes]:
        """(value, salt) of the share of ``kind``."""
        if kind is ShareKind.SELF_MASK:
            return self.self_mask, self.self_mask_salt
        return self.mask_key, self.mask_key_salt
