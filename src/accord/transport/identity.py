"""Ed25519 identity certificates: whose signatures a secure-aggregation round trusts.

Secure aggregation signs every advertisement, dealt share and survivor list with
each participant's Ed25519 *identity key* (:mod:`accord.secagg`). The keys must come
from the federation's PKI, never from the coordinator, which the protocol defends
against: a coordinator that could name the keys could impersonate every site to
every other. So each participant site holds a second key pair besides its TLS one,
and the federation's CA certifies it.

The scheme, in the existing enrolment flow:

- ``accord pki request`` (:func:`~accord.transport.enrolment.request`) also creates
  the site's Ed25519 key, ``identity-key.pem`` (mode 0600; it never leaves the
  site), and puts its public key into the TLS signing request as a non-critical
  extension, with an Ed25519 signature over the site's name and the request's TLS
  key (:func:`identity_request_extension`): proof that the requester holds the
  identity key, bound to this request so that it cannot be lifted into another.
- ``accord pki sign`` checks that proof (:func:`requested_identity_key`) and issues,
  in the same step, the TLS certificate and the *identity certificate*
  (``identity-cert.pem``): subject ``CN=<site>`` like the TLS certificate, the
  Ed25519 key, key usage ``digitalSignature`` only, extended key usage
  :data:`~accord.transport.profile.IDENTITY_USAGE` (so no TLS stack accepts it for a
  handshake, and no TLS certificate passes for it), the TLS certificate's validity.
  The roster records it with the TLS certificate it came with; revoking the site
  revokes both.
- A participant presents it in its ``Hello``; the coordinator checks it
  (:func:`verify_presented`: this CA, the name its TLS certificate proved, dates,
  CRL, roster) and keeps it. A secure train task carries the certificates of the
  whole roster; the site checks each against its own copy of the CA certificate
  (:func:`roster_keys`) and takes the public keys from them, not from the task.

Both checks validate the path with ``cryptography.x509.verification``
(:mod:`~accord.transport.chain`, whose identity policy demands the identity EKU and
signing-only key usage, where the library's WebPKI defaults would demand a
subjectAltName and ``clientAuth``); accord adds the Ed25519 key type, the name, the
CRL and the roster.

A site enrolled before this scheme has no identity key: it keeps serving plain
rounds, and a secure round records it as unable to take part.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from accord.errors import AuthenticationFailed, MissingExtraError, PkiError
from accord.transport.chain import chain_problem
from accord.transport.roster import certificate_name
from accord.transport.trust import TrustStore

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

__all__ = [
    "IDENTITY_CERT",
    "IDENTITY_KEY",
    "KEY_REQUEST",
    "IdentityBook",
    "IdentityCertificate",
    "SigningIdentity",
    "identity_request_extension",
    "load_signing_identity",
    "requested_identity_key",
    "roster_keys",
    "verify_presented",
]

logger = logging.getLogger(__name__)

#: File names in a participant's identity directory.
IDENTITY_KEY = "identity-key.pem"
IDENTITY_CERT = "identity-cert.pem"

#: The signing-request extension that carries the identity key and its proof
#: (an OID under ``2.25``, derived from a UUID: no registration needed).
KEY_REQUEST = x509.ObjectIdentifier("2.25.136494675694129998463599664622445861929")
_PROOF_CONTEXT = b"accord identity key request v1\x00"
# DER of SEQUENCE { OCTET STRING (32-byte key), OCTET STRING (64-byte signature) }.
_SEQ, _KEY_HEAD, _SIG_HEAD = b"\x30\x64", b"\x04\x20", b"\x04\x40"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
_MAX_CERT_BYTES = 16 * 1024


def _raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(*_RAW)


def _proof_message(name: str, tls_public_key: CertificatePublicKeyTypes) -> bytes:
    spki = tls_public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _PROOF_CONTEXT + name.encode() + b"\x00" + spki


def identity_request_extension(
    name: str, identity: Ed25519PrivateKey, tls_public_key: CertificatePublicKeyTypes
) -> x509.UnrecognizedExtension:
    """The CSR extension asking the CA to certify ``identity`` for ``name``."""
    public = _raw_public(identity.public_key())
    signature = identity.sign(_proof_message(name, tls_public_key))
    value = _SEQ + _KEY_HEAD + public + _SIG_HEAD + signature
    return x509.UnrecognizedExtension(KEY_REQUEST, value)


def requested_identity_key(
    csr: x509.CertificateSigningRequest, name: str, *, source: str
) -> Ed25519PublicKey | None:
    """The identity key ``csr`` asks to certify, its proof checked; None if none."""
    try:
        ext = csr.extensions.get_extension_for_oid(KEY_REQUEST).value
    except x509.ExtensionNotFound:
        return None
    value = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    if (
        len(value) != 102
        or value[:2] != _SEQ
        or value[2:4] != _KEY_HEAD
        or value[36:38] != _SIG_HEAD
    ):
        raise PkiError(f"{source} holds a malformed identity-key request")
    key = Ed25519PublicKey.from_public_bytes(value[4:36])
    try:
        key.verify(value[38:], _proof_message(name, csr.public_key()))
    except InvalidSignature:
        raise PkiError(
            f"the identity key in {source} carries no valid proof that the site "
            "holds it; ask the site for a new request"
        ) from None
    return key


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """A participant's own identity key and the certificate the CA issued for it."""

    name: str
    key: Ed25519PrivateKey
    certificate: bytes  # DER

    @property
    def public_key(self) -> bytes:
        """The raw public key."""
        return _raw_public(self.key.public_key())


def load_signing_identity(
    directory: str | os.PathLike[str], *, tls_cert_pem: bytes | None = None
) -> SigningIdentity | None:
    """The identity key and certificate in ``directory``; None if it holds neither.

    A site enrolled before identity keys existed has neither, and takes part in
    plain rounds only. Half of the pair, a pair that does not match, or (given the
    site's TLS certificate) a certificate of another name is an error.
    """
    d = Path(directory)
    key_path, cert_path = d / IDENTITY_KEY, d / IDENTITY_CERT
    if not key_path.exists() and not cert_path.exists():
        return None
    if not cert_path.exists():
        raise PkiError(
            f"no {IDENTITY_CERT} in {d} for {IDENTITY_KEY}: put the {IDENTITY_CERT} "
            "the federation's operator returned with cert.pem next to it"
        )
    if not key_path.exists():
        raise PkiError(f"{cert_path} is there but its key {key_path} is missing")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"unreadable identity key or certificate in {d}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise PkiError(f"{key_path} is not an Ed25519 key")
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey) or _raw_public(public) != _raw_public(
        key.public_key()
    ):
        raise PkiError(f"{cert_path} was not issued for {key_path}")
    name = certificate_name(cert)
    if name is None:
        raise PkiError(f"{cert_path} names no site (CN)")
    if tls_cert_pem is not None:
        tls_name = certificate_name(x509.load_pem_x509_certificate(tls_cert_pem))
        if tls_name != name:
            raise PkiError(
                f"{cert_path} names {name!r}, the TLS certificate {tls_name!r}; both "
                "must be this site's"
            )
    if os.stat(key_path).st_mode & 0o077:
        logger.warning("%s is readable by other users; chmod 600 it", key_path)
    der = cert.public_bytes(serialization.Encoding.DER)
    return SigningIdentity(name, key, der)


@dataclass(frozen=True, slots=True)
class IdentityCertificate:
    """An identity certificate that passed its checks: whose key it is, and until."""

    name: str
    der: bytes
    public_key: bytes
    not_after: datetime


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parse(der: bytes) -> x509.Certificate:
    if len(der) > _MAX_CERT_BYTES:
        raise AuthenticationFailed(
            f"an identity certificate of {len(der)} bytes is too large"
        )
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise AuthenticationFailed(
            f"an identity certificate is unreadable: {exc}"
        ) from None


def _problem(
    cert: x509.Certificate, anchors: Sequence[x509.Certificate], at: datetime
) -> str | None:
    """Why ``cert`` is no identity certificate of this CA at ``at``; None if it is.

    The path, dates and usages are the library's check
    (:func:`~accord.transport.chain.chain_problem`); the key type is accord's.
    """
    problem = chain_problem(cert, anchors, purpose="identity", at=at)
    if problem is None and not isinstance(cert.public_key(), Ed25519PublicKey):
        problem = "does not hold an Ed25519 key"
    return problem


def _accepted(cert: x509.Certificate, der: bytes, name: str) -> IdentityCertificate:
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)  # _problem saw to it
    return IdentityCertificate(name, der, _raw_public(public), cert.not_valid_after_utc)


def verify_presented(
    der: bytes, trust: TrustStore, *, name: str, now: datetime | None = None
) -> IdentityCertificate:
    """At the coordinator: the identity certificate a participant presented.

    ``name`` is the one its TLS certificate proved. Checks: issued by a trusted CA,
    within its dates, an Ed25519 identity certificate, of ``name``, not revoked
    (CRL), and on the roster (or allow-list). Raises AuthenticationFailed with the
    first problem, PkiError when the CRL or roster on disk is unreadable.
    """
    cert = _parse(der)
    claimed = certificate_name(cert)
    at = now or datetime.now(UTC)
    problem = _problem(cert, trust.anchors, at)
    if problem is None and claimed != name:
        problem = f"names {claimed!r}, but the TLS certificate proved {name!r}"
    if problem is None and (revoked := trust.revoked_at(cert)) is not None:
        problem = f"was revoked on {_when(revoked)}"
    if problem is None:
        problem = trust.identity_problem(cert, name)
    if problem is not None:
        logger.info("refused the identity certificate of %r: %s", name, problem)
        raise AuthenticationFailed(
            f"the identity certificate of {name!r} {problem}", name=name
        )
    return _accepted(cert, der, name)


class IdentityBook:
    """At the coordinator: the identity certificates its participants presented.

    Each is kept with a ``recheck`` that verifies it again (revocation and expiry
    take effect at the next secure round, not at the next connection). Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[
            str, tuple[IdentityCertificate, Callable[[], IdentityCertificate]]
        ] = {}

    def present(
        self,
        name: str,
        certificate: IdentityCertificate | None,
        recheck: Callable[[], IdentityCertificate] | None = None,
    ) -> None:
        """Keep what ``name`` presented on connecting (None: nothing)."""
        with self._lock:
            if certificate is None:
                self._held.pop(name, None)
            else:
                self._held[name] = (certificate, recheck or (lambda: certificate))
        if certificate is None:
            logger.info(
                "%s presented no identity certificate: it can take part in plain "
                "rounds only",
                name,
            )

    def keys(self, names: Sequence[str]) -> dict[str, bytes]:
        """The raw public keys of those of ``names`` whose certificate still holds."""
        with self._lock:
            held = {n: self._held[n] for n in names if n in self._held}
        keys: dict[str, bytes] = {}
        for name in names:
            if name not in held:
                logger.warning(
                    "%s cannot take part in secure rounds: it presented no identity "
                    "certificate (enrolled before identity keys, or connected with "
                    "--insecure); issue it a new certificate",
                    name,
                )
                continue
            try:
                keys[name] = held[name][1]().public_key
            except (AuthenticationFailed, PkiError) as exc:
                logger.warning("%s cannot take part in secure rounds: %s", name, exc)
        return keys

    def certificates(self, names: Sequence[str]) -> tuple[bytes, ...]:
        """The DER certificates of those of ``names`` that presented one."""
        with self._lock:
            return tuple(self._held[n][0].der for n in names if n in self._held)


def roster_keys(
    certificates: Sequence[bytes],
    *,
    roster: Sequence[str],
    ca_pem: bytes,
    own: SigningIdentity,
    now: datetime | None = None,
) -> dict[str, bytes]:
    """At a site: the roster's identity keys, from certificates it checks itself.

    Every certificate must be issued by the CA in ``ca_pem`` (the site's own copy,
    not the coordinator's), be valid now, hold an Ed25519 identity key and name a
    member of ``roster``, once; every member needs one, and this site's must hold
    its own key. Raises AuthenticationFailed naming the first problem.
    """
    try:
        anchors = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise PkiError(f"the site's CA certificate is unreadable: {exc}") from exc
    at = now or datetime.now(UTC)
    members = set(roster)
    if own.name not in members:
        raise AuthenticationFailed(
            f"this site ({own.name!r}) is not on the round's roster", name=own.name
        )
    if len(certificates) > len(members):
        raise AuthenticationFailed(
            f"{len(certificates)} identity certificates for a roster of {len(members)}"
        )
    keys: dict[str, bytes] = {}
    for der in certificates:
        cert = _parse(der)
        name = certificate_name(cert)
        who = f"the identity certificate of {name!r}"
        problem = _problem(cert, anchors, at)
        if problem is None and name not in members:
            problem = "names no member of the round's roster"
        if problem is None and name in keys:
            problem = "came twice"
        if problem is not None:
            raise AuthenticationFailed(f"{who} {problem}", name=name)
        assert name is not None
        keys[name] = _accepted(cert, der, name).public_key
    missing = [p for p in roster if p not in keys]
    if missing:
        raise AuthenticationFailed(
            f"no identity certificate for {', '.join(missing)}: this site cannot "
            "check their signatures"
        )
    if keys.get(own.name) != own.public_key:
        raise AuthenticationFailed(
            f"the identity certificate of this site ({own.name!r}) in the task holds "
            "another key than this site's",
            name=own.name,
        )
    return keys
