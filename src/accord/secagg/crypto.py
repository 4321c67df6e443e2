"""The cryptographic primitives of secure aggregation, all OpenSSL's.

Nothing here is hand-rolled cryptography: every primitive is OpenSSL's, reached
through the maintained ``cryptography`` package, or ``hashlib`` for SHA-256. This
module only fixes *which* primitive serves which purpose and how keys are separated
between purposes:

* **X25519** key agreement: each participant advertises two fresh public keys per
  round, one to encrypt the shares it sends, one to derive pairwise masks, so that
  revealing the masking key of a dropped participant never exposes its shares.
* **HKDF-SHA256** turns each X25519 shared secret (and each self-mask seed) into a
  32-byte key. The ``info`` string names the purpose and binds the run, the round
  and the ordered pair of participants, so no key ever serves two purposes or two
  rounds. It is RFC 5869's two HMACs over ``hashlib``'s SHA-256 rather than
  ``cryptography``'s ``HKDF`` (the same bytes, tested; :func:`hkdf_sha256` says
  why).
* **AES-256-GCM** encrypts the shares a participant deals to each neighbour; the
  associated data binds sender, receiver, run and round, so a ciphertext replayed in
  another round or to another recipient fails authentication.
* **Ed25519** signs key advertisements, each dealt share and the set of survivors
  seen at the consistency check.

Two small helpers avoid repeating work without changing any result:
:class:`KeyAgreement` does each X25519 agreement of a round's key once (a pair of
participants meets twice: dealing and receiving shares), and :class:`Verifier`
verifies each (key, signature, payload) once per process.

:func:`frame` gives every signed payload, associated data and HKDF ``info`` one
unambiguous encoding (length-prefixed fields under a versioned protocol label), so
two different tuples of fields can never produce the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from functools import lru_cache

from accord.errors import MissingExtraError

try:
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError(
        extra="secagg", package="cryptography", feature="Secure aggregation"
    ) from exc

__all__ = [
    "KEY_BYTES",
    "PROTOCOL",
    "SEAL_OVERHEAD",
    "SIGNATURE_BYTES",
    "Ed25519PrivateKey",
    "KeyAgreement",
    "SignatureCheck",
    "Verifier",
    "X25519PrivateKey",
    "agree",
    "derive_key",
    "digest",
    "extend_frame",
    "frame",
    "generate_x25519",
    "hkdf_sha256",
    "identity_public",
    "open_sealed",
    "random_secret",
    "seal",
    "sign",
    "small_order",
    "verify",
    "x25519_public",
]

#: Versioned label that prefixes every framed byte string of the protocol.
PROTOCOL = "accord/secagg/v1"
#: Bytes of every symmetric key, X25519 key, seed and Ed25519 public key.
KEY_BYTES = 32
#: Bytes of an Ed25519 signature.
SIGNATURE_BYTES = 64
_NONCE_BYTES = 12
_P25519 = 2**255 - 19
#: The u-coordinates of every X25519 point of small order, on the curve and on its
#: twist: 0 (order 2), 1 (order 4), p - 1 (order 4, twist) and the two of order 8.
_SMALL_ORDER_U = frozenset(
    {
        0,
        1,
        _P25519 - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)
#: Bytes :func:`seal` adds to a plaintext (nonce and GCM tag).
SEAL_OVERHEAD = _NONCE_BYTES + 16
_LENGTH = struct.Struct(">I")
_PROTOCOL_FIELD = _LENGTH.pack(len(PROTOCOL)) + PROTOCOL.encode()


def frame(*parts: bytes | str | int) -> bytes:
    """Encode fields unambiguously: each as a 4-byte big-endian length then its bytes.

    Strings are UTF-8; integers are 8-byte big-endian signed. The protocol label is
    always the first field, so the encoding is also domain-separated from anything
    that is not this protocol.
    """
    return extend_frame(_PROTOCOL_FIELD, *parts)


def extend_frame(framed: bytes, *parts: bytes | str | int) -> bytes:
    """The :func:`frame` of ``framed``'s fields followed by ``parts``.

    ``frame(*a, *b) == extend_frame(frame(*a), *b)``: a caller that frames many
    strings sharing their first fields frames those once.
    """
    out = [framed]
    for part in parts:
        if type(part) is bytes:
            out.append(_LENGTH.pack(len(part)))
            out.append(part)
        elif isinstance(part, (str, int)):
            # Labels, ids and small numbers recur in every string of a round.
            out.append(_field(part))
        else:
            raw = bytes(part)
            out.append(_LENGTH.pack(len(raw)))
            out.append(raw)
    return b"".join(out)


@lru_cache(maxsize=1 << 12)
def _field(part: str | int) -> bytes:
    """One string or integer field of :func:`frame`, length prefix included."""
    if isinstance(part, str):
        raw = part.encode()
    else:
        raw = part.to_bytes(8, "big", signed=True)
    return _LENGTH.pack(len(raw)) + raw


def digest(*parts: bytes | str | int) -> bytes:
    """SHA-256 of :func:`frame` of ``parts`` (used as a commitment to a seed)."""
    return hashlib.sha256(frame(*parts)).digest()


def random_secret() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return os.urandom(KEY_BYTES)


def generate_x25519(secret: bytes | None = None) -> tuple[X25519PrivateKey, bytes]:
    """A fresh X25519 key pair as (private key, raw public key).

    ``secret`` (32 bytes) makes the key deterministic; only tests pass it.
    """
    private = X25519PrivateKey.from_private_bytes(secret or random_secret())
    return private, private.public_key().public_bytes_raw()


def x25519_public(private_raw: bytes) -> bytes:
    """The raw public key of a raw X25519 private key (checks a reconstruction)."""
    return (
        X25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()
    )


def small_order(public: bytes) -> bool:
    """True for an X25519 public key of small order, in any of its encodings.

    An agreement with such a key gives the all-zero secret whatever the private
    key (a clamped scalar is a multiple of the cofactor), so it carries no secret
    and ``cryptography`` refuses it with ValueError. Checked by arithmetic, not by
    an agreement: the coordinator checks every advertised key, each round.
    X25519 ignores the top bit and reduces modulo p, so those are undone first.
    """
    u = int.from_bytes(public, "little") & ((1 << 255) - 1)
    return u % _P25519 in _SMALL_ORDER_U


def agree(
    private: X25519PrivateKey | bytes | KeyAgreement, peer_public: bytes
) -> bytes:
    """X25519 shared secret with ``peer_public``.

    Raises ValueError for a malformed or low-order peer key (the all-zero secret).
    """
    if isinstance(private, KeyAgreement):
        return private.agree(peer_public)
    if isinstance(private, bytes):
        private = X25519PrivateKey.from_private_bytes(private)
    if len(peer_public) != KEY_BYTES:
        raise ValueError(f"an X25519 public key has {KEY_BYTES} bytes")
    return private.exchange(X25519PublicKey.from_public_bytes(peer_public))


class KeyAgreement:
    """One round's X25519 private key, which agrees once with each peer key.

    A participant's encryption key meets each neighbour's twice a round: to encrypt
    the shares it deals to it, and to decrypt the shares it receives from it. X25519
    is symmetric, so both give the same shared secret (the AES keys derived from it
    still differ: HKDF binds dealer and holder in order); the agreement is done
    once. Keep one object per key pair, that is per round, and :meth:`forget` it
    with the round's other secrets.
    """

    __slots__ = ("_private", "_secrets")

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self._secrets: dict[bytes, bytes] = {}

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._private.public_key().public_bytes_raw()

    def agree(self, peer_public: bytes) -> bytes:
        """The shared secret with ``peer_public`` (see :func:`agree`)."""
        secret = self._secrets.get(peer_public)
        if secret is None:
            secret = agree(self._private, peer_public)
            self._secrets[bytes(peer_public)] = secret
        return secret

    def forget(self) -> None:
        """Drop the shared secrets (Python cannot wipe memory; this is what it can)."""
        self._secrets.clear()


def derive_key(secret: bytes, *, purpose: str, context: bytes) -> bytes:
    """HKDF-SHA256 of ``secret`` into a 32-byte key for one ``purpose`` and context.

    ``purpose`` is one of the protocol's labels (``share-encryption``,
    ``pairwise-mask``, ``self-mask``); ``context`` binds run, round and parties.
    No salt (RFC 5869's default: 32 zero bytes); ``info`` is
    ``frame("hkdf", purpose, context)``. See :func:`hkdf_sha256` for why it is
    composed here.
    """
    return hkdf_sha256(secret, frame("hkdf", purpose, context))


# HMAC-SHA256 (RFC 2104) over hashlib: the key padded to SHA-256's 64-byte block,
# XORed with the inner and outer pads (a byte translation table each).
_BLOCK = 64
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))
# HKDF-Extract without a salt keys HMAC with 32 zero bytes: both pads are hashed
# once and copied for each derivation.
_EXTRACT_INNER = hashlib.sha256(bytes(_BLOCK).translate(_INNER_PAD))
_EXTRACT_OUTER = hashlib.sha256(bytes(_BLOCK).translate(_OUTER_PAD))


def hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256 with no salt, 32 bytes of output: ``T(1)``.

    Why not ``cryptography``'s ``HKDF``, which gives the same bytes (a test
    compares them, and RFC 5869's test case 3): each of its HMACs sets up an
    OpenSSL 3 MAC context (an algorithm fetch through the provider), which costs
    about 15 times the hashing itself, and a secure round derives about
    ``3 n * degree`` keys (1,200 a round at 20 participants: 5 % of the round's
    CPU). Composed from ``hashlib``'s SHA-256 (OpenSSL's, with the CPU's SHA
    instructions), the two HMACs of a 32-byte HKDF are four hash calls. This is
    the RFC's construction, not a new one: PRK = HMAC(0^32, IKM), OKM =
    HMAC(PRK, info || 0x01).
    """
    inner = _EXTRACT_INNER.copy()
    inner.update(ikm)
    outer = _EXTRACT_OUTER.copy()
    outer.update(inner.digest())
    prk = outer.digest().ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(prk.translate(_INNER_PAD))
    inner.update(info)
    inner.update(b"\x01")
    return hashlib.sha256(prk.translate(_OUTER_PAD) + inner.digest()).digest()


def seal(key: bytes, plaintext: bytes, *, associated_data: bytes) -> bytes:
    """AES-256-GCM encrypt; returns nonce (12 random bytes) + ciphertext + tag."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, sealed: bytes, *, associated_data: bytes) -> bytes:
    """Decrypt :func:`seal` output; raises ValueError if it fails authentication."""
    if len(sealed) < _NONCE_BYTES + 16:
        raise ValueError("ciphertext is too short to be authentic")
    try:
        return AESGCM(key).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated_data
        )
    except InvalidTag:
        raise ValueError("ciphertext failed authentication") from None


def sign(identity: Ed25519PrivateKey, payload: bytes) -> bytes:
    """Ed25519 signature of ``payload``."""
    return identity.sign(payload)


def verify(public_key: bytes, signature: bytes, payload: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``payload``."""
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def identity_public(identity: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte Ed25519 public key of ``identity``."""
    return identity.public_key().public_bytes_raw()


#: A signature check: ``(raw public key, signature, payload) -> valid``.
SignatureCheck = Callable[[bytes, bytes, bytes], bool]


class Verifier:
    """Ed25519 verification that verifies each (key, signature, payload) once.

    Verification is a deterministic function of its three inputs, so a triple that
    verified once verifies again: remembering the valid triples (compared byte for
    byte, never by a digest) is exact, not an approximation, and an invalid triple
    is never remembered. In a simulation the sites that one worker process hosts
    share one verifier, so an advertisement or a survivor signature that all of them
    check is verified once per process instead of once per site; a deployed site
    verifies what it relies on itself either way. Parsed public keys are kept too.

    ``capacity`` bounds both memories (each is emptied when full). Not thread-safe.
    """

    __slots__ = ("_capacity", "_keys", "_valid", "verifications")

    def __init__(self, capacity: int = 1 << 14) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._keys: dict[bytes, Ed25519PublicKey] = {}
        self._valid: set[tuple[bytes, bytes, bytes]] = set()
        #: How many signatures were actually verified (remembered ones excluded).
        self.verifications = 0

    def __call__(self, public_key: bytes, signature: bytes, payload: bytes) -> bool:
        """True iff ``signature`` is a valid Ed25519 signature of ``payload``."""
        triple = (bytes(public_key), bytes(signature), bytes(payload))
        if triple in self._valid:
            return True
        if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
            return False
        key = self._keys.get(triple[0])
        if key is None:
            if len(self._keys) >= self._capacity:
                self._keys.clear()
            key = self._keys[triple[0]] = Ed25519PublicKey.from_public_bytes(triple[0])
        self.verifications += 1
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            return False
        if len(self._valid) >= self._capacity:
            self._valid.clear()
        self._valid.add(triple)
        return True
