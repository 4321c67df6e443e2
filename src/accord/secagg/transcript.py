"""The exact bytes the protocol signs, authenticates and derives keys from.

Both state machines build these strings through the functions below, so a
participant and the coordinator cannot disagree on what a signature covers. Every
string is a :func:`~accord.secagg.crypto.frame` that starts with its purpose and
the run and round ids: a signature, ciphertext or key of one round, purpose or pair
of participants is useless in any other.

The plaintext a dealer encrypts for each holder (a "share bundle") has a fixed
layout: the share format (1 byte, :data:`~accord.secagg.shamir.SHARE_FORMAT`),
2-byte share index, the self-mask share, the masking-key share, and the dealer's
Ed25519 signature over each share separately, so that a holder can later reveal
exactly one of them with a signature the coordinator can check on its own. The
signed statement names the share format too, so a signature over a share of one
format never vouches for the same bytes read as another.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import (
    SIGNATURE_BYTES,
    KeyAgreement,
    X25519PrivateKey,
    agree,
    derive_key,
    digest,
    frame,
)
from accord.secagg.messages import ShareKind
from accord.secagg.shamir import SHARE_BYTES, SHARE_FORMAT, check_share_value

__all__ = [
    "BUNDLE_BYTES",
    "FORMAT_1_BUNDLE_BYTES",
    "ShareBundle",
    "advertisement",
    "masking_private_key",
    "pairwise_mask_key",
    "seed_commitment",
    "self_mask_key",
    "share_associated_data",
    "share_encryption_key",
    "share_statement",
    "survivor_statement",
]

#: Bytes of a packed :class:`ShareBundle` (the plaintext of each share ciphertext).
BUNDLE_BYTES = 1 + 2 + 2 * SHARE_BYTES + 2 * SIGNATURE_BYTES
#: Bytes of a bundle of share format 1 (16-byte shares, no format byte).
FORMAT_1_BUNDLE_BYTES = 2 + 2 * 16 + 2 * SIGNATURE_BYTES


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


def share_statement(
    cfg: SecAggConfig,
    kind: ShareKind,
    dealer: str,
    holder: str,
    index: int,
    value: bytes,
) -> bytes:
    """What a dealer signs for each share it deals."""
    return frame(
        "share",
        SHARE_FORMAT,
        cfg.run_id,
        cfg.round_number,
        str(kind),
        dealer,
        holder,
        index,
        value,
    )


def survivor_statement(cfg: SecAggConfig, survivors: tuple[str, ...]) -> bytes:
    """What each survivor signs at the consistency check (stage 3)."""
    return frame("survivors", cfg.run_id, cfg.round_number, *survivors)


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
    """A dealer's two shares for one holder, each with the dealer's signature."""

    index: int
    self_mask: bytes
    mask_key: bytes
    self_mask_signature: bytes
    mask_key_signature: bytes

    def pack(self) -> bytes:
        """The fixed-layout plaintext."""
        return (
            bytes([SHARE_FORMAT])
            + self.index.to_bytes(2, "big")
            + self.self_mask
            + self.mask_key
            + self.self_mask_signature
            + self.mask_key_signature
        )

    @classmethod
    def unpack(cls, raw: bytes) -> ShareBundle:
        """Parse :meth:`pack` output.

        Raises ValueError on a wrong length, another share format, or a share value
        that is not a field element.
        """
        if len(raw) == FORMAT_1_BUNDLE_BYTES:
            raise ValueError(
                "the shares are of share format 1 (an older accord); this version "
                f"reads format {SHARE_FORMAT}: run the same accord version everywhere"
            )
        if len(raw) != BUNDLE_BYTES:
            raise ValueError(f"a share bundle has {BUNDLE_BYTES} bytes, not {len(raw)}")
        if raw[0] != SHARE_FORMAT:
            raise ValueError(
                f"the shares are of share format {raw[0]}; this version reads "
                f"format {SHARE_FORMAT}: run the same accord version everywhere"
            )
        s, g = SHARE_BYTES, SIGNATURE_BYTES
        bundle = cls(
            index=int.from_bytes(raw[1:3], "big"),
            self_mask=raw[3 : 3 + s],
            mask_key=raw[3 + s : 3 + 2 * s],
            self_mask_signature=raw[3 + 2 * s : 3 + 2 * s + g],
            mask_key_signature=raw[3 + 2 * s + g :],
        )
        check_share_value(bundle.self_mask)
        check_share_value(bundle.mask_key)
        return bundle

    def share(self, kind: ShareKind) -> tuple[bytes, bytes]:
        """(value, dealer signature) of the share of ``kind``."""
        if kind is ShareKind.SELF_MASK:
            return self.self_mask, self.self_mask_signature
        return self.mask_key, self.mask_key_signature
