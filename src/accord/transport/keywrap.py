"""The CA key at rest: wrapped under the operator's passphrase with scrypt and AES-GCM.

Why not PKCS#8 alone. ``cryptography``'s ``BestAvailableEncryption`` writes PKCS#8
with PBES2 but derives the key with PBKDF2 at only 2,048 iterations, and its
``encryption_builder()`` (which sets the KDF's work factor) serves OpenSSH and
PKCS#12 files only, not PKCS#8 (cryptography 51). A stolen ``ca.key`` must resist
an offline guess at the passphrase, so accord wraps the key itself, from the
library's primitives: scrypt (memory-hard, so GPUs and ASICs gain little) derives a
256-bit key from the passphrase and a random 16-byte salt; AES-256-GCM encrypts the
key's unencrypted PKCS#8 DER under it with a random 96-bit nonce. The parameters
travel in the file as JSON and are the GCM's associated data, so lowering the work
factor in the file makes the passphrase fail instead of making guessing cheaper.

Parameters: ``N = 2**15, r = 8, p = 3`` (32 MiB, about 0.2 s on one core), one of
the equivalent scrypt settings OWASP's Password Storage Cheat Sheet recommends
(alongside ``N = 2**17, r = 8, p = 1`` at 128 MiB). Files state their own
parameters, so a later accord can raise them without breaking older files.

Old files. A CA created by an earlier accord holds a PKCS#8 PEM
(``-----BEGIN ENCRYPTED PRIVATE KEY-----``); :func:`unwrap` still opens it and
reports it as :attr:`Unwrapped.legacy`; :func:`accord.transport.pki.sign` and
``revoke`` then re-wrap it in this format at once (``accord pki rewrap`` does it
on its own).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from accord.errors import MissingExtraError, PkiError
from accord.jsontext import parse_json

try:
    from cryptography.exceptions import InvalidTag
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = [
    "FORMAT",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "KdfParameters",
    "Unwrapped",
    "kdf_parameters",
    "unwrap",
    "wrap",
]

#: The ``format`` field of a wrapped key.
FORMAT = "accord-wrapped-key-v1"
#: scrypt's cost (CPU and memory), block size and parallelism for new files.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 3
# Refused when reading: below OWASP's floor (too weak) or above 1 GiB (a file that
# would make the operator's machine swap or die before the passphrase is checked).
_MIN_WORK, _MAX_MEMORY = 2**15 * 8 * 3, 2**30
_SALT_BYTES, _NONCE_BYTES = 16, 12
_LEGACY = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class KdfParameters:
    """How a wrapped key's encryption key is derived from the passphrase."""

    name: str
    n: int
    r: int
    p: int
    salt: bytes

    def header(self) -> dict[str, Any]:
        """The JSON form, as stored in the file."""
        return {
            "name": self.name,
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": base64.b64encode(self.salt).decode(),
        }


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """An opened key, and whether its file uses the old PKCS#8 (PBKDF2) wrapping."""

    key: PrivateKeyTypes
    legacy: bool


def _derive(passphrase: bytes, kdf: KdfParameters) -> bytes:
    return Scrypt(salt=kdf.salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(
        passphrase
    )


def _aad(kdf: KdfParameters, nonce: bytes) -> bytes:
    header = {"format": FORMAT, "kdf": kdf.header(), "cipher": "AES-256-GCM"}
    header["nonce"] = base64.b64encode(nonce).decode()
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def wrap(key: PrivateKeyTypes, passphrase: bytes) -> bytes:
    """``key`` encrypted under ``passphrase``, as the bytes of a ``ca.key`` file."""
    kdf = KdfParameters("scrypt", SCRYPT_N, SCRYPT_R, SCRYPT_P, os.urandom(_SALT_BYTES))
    nonce = os.urandom(_NONCE_BYTES)
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = AESGCM(_derive(passphrase, kdf)).encrypt(nonce, plain, _aad(kdf, nonce))
    document = {
        "format": FORMAT,
        "kdf": kdf.header(),
        "cipher": "AES-256-GCM",
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _b64(value: object, what: str, source: str) -> bytes:
    if not isinstance(value, str):
        raise PkiError(f"{source}: {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise PkiError(f"{source}: {what} is not base64") from None


def _document(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = parse_json(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PkiError(
            f"{source} is not a CA key accord can read (neither {FORMAT} nor PKCS#8)"
        )
    return doc


def kdf_parameters(data: bytes, *, source: str = "the CA key") -> KdfParameters:
    """The KDF parameters a wrapped key states; PkiError if they are unusable."""
    doc = _document(data, source)
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise PkiError(f"{source}: only scrypt is supported as the KDF")
    numbers = [
        v
        for v in (kdf.get(k) for k in ("n", "r", "p"))
        if isinstance(v, int) and not isinstance(v, bool)
    ]
    if len(numbers) != 3:
        raise PkiError(f"{source}: scrypt's n, r and p must be integers")
    n, r, p = numbers
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or n * r * p < _MIN_WORK:
        raise PkiError(
            f"{source}: scrypt parameters n={n}, r={r}, p={p} are too weak; "
            "re-create the key with this accord"
        )
    if 128 * n * r > _MAX_MEMORY:
        raise PkiError(f"{source}: scrypt parameters n={n}, r={r} need over 1 GiB")
    salt = _b64(kdf.get("salt"), "the salt", source)
    return KdfParameters("scrypt", n, r, p, salt)


def unwrap(data: bytes, passphrase: bytes, *, source: str = "the CA key") -> Unwrapped:
    """Open a ``ca.key`` file's bytes (either format); PkiError if it will not open."""
    wrong = f"the passphrase does not open {source}; check it and try again"
    if data.lstrip().startswith(_LEGACY):
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError):
            raise PkiError(wrong) from None
        return Unwrapped(key, legacy=True)
    kdf = kdf_parameters(data, source=source)
    doc = _document(data, source)
    if doc.get("cipher") != "AES-256-GCM":
        raise PkiError(f"{source}: only AES-256-GCM is supported as the cipher")
    nonce = _b64(doc.get("nonce"), "the nonce", source)
    sealed = _b64(doc.get("ciphertext"), "the ciphertext", source)
    if len(nonce) != _NONCE_BYTES:
        raise PkiError(f"{source}: the nonce must be {_NONCE_BYTES} bytes")
    try:
        aead = AESGCM(_derive(passphrase, kdf))
        plain = aead.decrypt(nonce, sealed, _aad(kdf, nonce))
    except InvalidTag:
        raise PkiError(wrong) from None
    try:
        key = serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{source} holds no readable private key: {exc}") from exc
    return Unwrapped(key, legacy=False)
