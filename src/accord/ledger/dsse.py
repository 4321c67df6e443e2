"""DSSE envelopes: the signed wrapper around every ledger entry and receipt.

A Dead Simple Signing Envelope (https://github.com/secure-systems-lab/dsse, v1.0)
carries a payload, its type and any number of signatures, each over the
*pre-authentication encoding* (PAE) of type and payload, so that a signature can
never be replayed under another type. JSON form::

    {"payload": "<base64>", "payloadType": "application/vnd.in-toto+json",
     "signatures": [{"keyid": "<hex>", "sig": "<base64>"}]}

Why written here and not taken from a library: ``securesystemslib`` (``dsse.py``)
is the maintained implementation, but it is a 3 MB package (vendored GnuPG code and
cloud-KMS signers) around the same ``cryptography`` calls this module makes, and
its PAE counts the type's characters where the specification counts bytes; the
encoding itself is one line of the specification, checked against its test vector
in the tests. ``in-toto`` and ``sigstore`` depend on it and are larger still.

Keys: Ed25519 (participants' identity keys, the simulation key) and ECDSA P-256
with SHA-256 (the coordinator's certificate key: the federation's PKI issues the
coordinator no Ed25519 key). Parsing is strict and bounded: an envelope read from
an export is untrusted input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from accord.errors import LedgerError

__all__ = [
    "IN_TOTO",
    "MAX_ENVELOPE_BYTES",
    "Envelope",
    "KeySigner",
    "PrivateKey",
    "PublicKey",
    "Signature",
    "Signer",
    "canonical_json",
    "key_id",
    "pae",
    "verify_signature",
]

#: The payload type of an in-toto Statement in DSSE.
IN_TOTO = "application/vnd.in-toto+json"
#: The largest envelope accepted when reading (one line of an export).
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
_MAX_SIGNATURES = 16

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what every signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def canonical_json(value: Mapping[str, object]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same value always gives the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def key_id(public_key: PublicKey) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo, hex: a bare key's id.

    A key with a certificate is named by the certificate's fingerprint instead.
    """
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _sign(key: PrivateKey, message: bytes) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        return key.sign(message)
    if not isinstance(key.curve, ec.SECP256R1):
        raise LedgerError(f"cannot sign with an ECDSA key on {key.curve.name}")
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def verify_signature(public_key: object, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``message`` is ``public_key``'s (Ed25519 or P-256)."""
    try:
        if isinstance(public_key, Ed25519PublicKey):
            public_key.verify(signature, message)
            return True
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
            public_key.curve, ec.SECP256R1
        ):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


class Signer(Protocol):
    """Whoever signs entries: a key and the id verifiers find it under."""

    @property
    def keyid(self) -> str:
        """The id written with each signature."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The signature over ``message``."""
        ...


@dataclass(frozen=True, slots=True)
class KeySigner:
    """A :class:`Signer` over a private key held in memory."""

    key: PrivateKey
    keyid: str

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (Ed25519, or ECDSA P-256 with SHA-256)."""
        return _sign(self.key, message)


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature of an envelope."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope: ``payload`` of ``payload_type``, and its signatures."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    @classmethod
    def signed(cls, payload_type: str, payload: bytes, signer: Signer) -> Envelope:
        """A new envelope over ``payload`` with ``signer``'s signature."""
        sig = signer.sign(pae(payload_type, payload))
        return cls(payload_type, payload, (Signature(signer.keyid, sig),))

    def pae(self) -> bytes:
        """The bytes its signatures cover."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> str:
        """The envelope's JSON form, canonical (one line)."""
        return canonical_json(
            {
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "payloadType": self.payload_type,
                "signatures": [
                    {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                    for s in self.signatures
                ],
            }
        ).decode("utf-8")

    def digest(self) -> str:
        """SHA-256 of :meth:`to_json`: what the next entry of a chain names."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        """Parse an envelope; :class:`LedgerError` saying what is wrong with it."""
        if len(text) > MAX_ENVELOPE_BYTES:
            raise LedgerError(
                f"an envelope of {len(text)} bytes is larger than {MAX_ENVELOPE_BYTES}"
            )
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise LedgerError(f"an envelope is not JSON: {exc}") from None
        if not isinstance(data, dict) or set(data) != {
            "payload",
            "payloadType",
            "signatures",
        }:
            raise LedgerError(
                "an envelope must be an object with exactly payload, payloadType "
                "and signatures"
            )
        kind, payload, sigs = data["payloadType"], data["payload"], data["signatures"]
        if not isinstance(kind, str) or not isinstance(payload, str):
            raise LedgerError("an envelope's payload and payloadType must be strings")
        if not isinstance(sigs, list) or not 0 < len(sigs) <= _MAX_SIGNATURES:
            raise LedgerError(
                f"an envelope needs 1 to {_MAX_SIGNATURES} signatures in a list"
            )
        signatures = []
        for s in sigs:
            if (
                not isinstance(s, dict)
                or not isinstance(s.get("keyid"), str)
                or not isinstance(s.get("sig"), str)
            ):
                raise LedgerError("a signature must be an object with keyid and sig")
            signatures.append(Signature(s["keyid"], _b64(s["sig"], "sig")))
        return cls(kind, _b64(payload, "payload"), tuple(signatures))


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerError(f"an envelope's {what} is not base64") from None
