"""Deciding whether a peer's certificate belongs to this federation.

A :class:`TrustStore` holds what a verifier needs: the CA certificate(s) it trusts,
the CA's certificate revocation list (CRL) and who may join (the built-in CA's
``roster.json`` or, with an external CA, an allow-list of names).
:func:`verify_peer` checks one certificate against it and returns the peer's
:class:`Identity`, or raises :class:`~accord.errors.AuthenticationFailed` with a
reason an operator can act on.

The path (chain, dates, basic constraints, key usages) is checked by
``cryptography.x509.verification`` (:mod:`~accord.transport.chain`); this module
keeps what the library cannot know: the CRL, the roster or allow-list, the role.

The TLS handshake (BoringSSL in gRPC) checks the chain, the dates and the key usage,
but gRPC's Python API has no CRL option. So a coordinator's handshake trusts not the
CA but :meth:`TrustStore.handshake_roots`: the roster's active participant and admin
certificates themselves (``accord pki sign`` keeps each in the roster), which shuts
out a revoked or replaced certificate at the handshake. A server also calls
:func:`verify_peer` on the certificate the handshake authenticated before it serves
a peer: that catches a revocation on a connection already open, covers an external
CA's allow-list (where no certificates are pinned), gives readable reasons and keeps
the function sound where no handshake came first; repeating the checks costs
microseconds. The CRL and the roster are read again whenever their file changes on
disk (each call compares mtime, size and inode), so a revocation takes effect at the
next handshake and on the next call of an open connection, without restarting the
coordinator.
A file that disappears or stops parsing fails closed: every verification raises
:class:`~accord.errors.PkiError` until it is fixed.

Roles travel in the subject's organizational unit (``OU=participant``, ``admin`` or
``coordinator``); the CA's signature is what makes that claim trustworthy. A
certificate without a role OU counts as a participant, the least privileged role:
with an external CA, only certificates it issues with ``OU=admin`` (or
``coordinator``) get those roles, so such a CA must not issue them to anyone else.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Literal, TypeVar

from accord.errors import AuthenticationFailed, MissingExtraError, PkiError
from accord.transport.chain import chain_problem
from accord.transport.pinning import HandshakeRoots, pinned_roots
from accord.transport.roster import (
    CA_CERT,
    CRL,
    ROSTER,
    Role,
    Roster,
    certificate_name,
    certificate_role,
    fingerprint,
    validate_name,
)

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = ["HandshakeRoots", "Identity", "TrustStore", "Usage", "verify_peer"]

logger = logging.getLogger(__name__)

#: Which side of a TLS connection the peer is: ``client`` for participants and
#: admins dialling in, ``server`` for the coordinator a participant dials.
Usage = Literal["client", "server"]

T = TypeVar("T")
E = TypeVar("E", bound=x509.ExtensionType)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Identity:
    """Who a verified peer is: the name and role its certificate carries."""

    name: str
    role: Role
    serial: int
    fingerprint: str


@dataclass(frozen=True)
class _Crl:
    issuer: x509.Name
    revoked: Mapping[int, datetime]
    der: bytes


class _Watched(Generic[T]):
    """A file parsed on first use and again whenever it changes on disk."""

    def __init__(self, path: Path, parse: Callable[[bytes], T]) -> None:
        self.path = path
        self._parse = parse
        self._loaded: tuple[tuple[int, int, int], T] | None = None
        self.get()  # a broken file fails at startup, not at the first peer

    def get(self) -> T:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise PkiError(f"cannot read {self.path}: {exc.strerror}") from exc
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._loaded is None or self._loaded[0] != key:
            if self._loaded is not None:
                logger.info("%s changed on disk; reloading it", self.path)
            try:
                self._loaded = (key, self._parse(self.path.read_bytes()))
            except PkiError as exc:
                raise PkiError(f"{self.path}: {exc}") from exc
        return self._loaded[1]


def _load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    try:
        certs = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot load CA certificate(s) from {path}: {exc}") from exc
    for cert in certs:
        constraints = _extension(cert, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise PkiError(f"{path} holds a certificate that is not a CA's")
    return certs


def _extension(cert: x509.Certificate, kind: type[E]) -> E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _parse_names(data: bytes) -> frozenset[str]:
    lines = (line.split("#", 1)[0].strip() for line in data.decode().splitlines())
    return frozenset(line for line in lines if line)


class TrustStore:
    """CA certificate(s), CRL and roster or allow-list a verifier trusts.

    Build one with :meth:`load` (a directory laid out by the built-in CA) or
    :meth:`from_files` (any CA, including an external one). It is safe to share
    between threads.
    """

    def __init__(
        self,
        ca_cert: Path,
        *,
        crl: Path | None,
        members: Path | Iterable[str] | None,
    ) -> None:
        self.ca_path = ca_cert
        self.anchors = _load_certificates(ca_cert)
        self._lock = threading.Lock()
        self._crl = _Watched(crl, self._parse_crl) if crl else None
        self._roster: _Watched[Roster] | None = None
        self._names: _Watched[frozenset[str]] | frozenset[str] | None = None
        # The files' parsed objects the roots were made from (held, so ``is`` is
        # exact), and the roots.
        self._roots: tuple[Roster | None, _Crl | None, HandshakeRoots] | None = None
        if isinstance(members, Path) and members.suffix == ".json":
            self._roster = _Watched(members, self._parse_roster)
        elif isinstance(members, Path):
            self._names = _Watched(members, _parse_names)
        elif members is not None:
            self._names = frozenset(validate_name(n) for n in members)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TrustStore:
        """Trust what the built-in CA in ``directory`` (or a copy of it) says.

        Reads ``ca.pem``, ``crl.pem`` and ``roster.json``; the CA key is not needed.
        """
        d = Path(directory)
        return cls(d / CA_CERT, crl=d / CRL, members=d / ROSTER)

    @classmethod
    def from_files(
        cls,
        *,
        ca_cert: str | os.PathLike[str],
        crl: str | os.PathLike[str] | None = None,
        allowed_names: str | os.PathLike[str] | Iterable[str] | None = None,
    ) -> TrustStore:
        """Trust an explicit CA bundle, e.g. an organization's own CA.

        ``ca_cert`` is a PEM file of one or more CA certificates; each directly
        issues peer certificates (put intermediates here, not only the root).
        ``crl`` is an optional PEM or DER CRL signed by one of them. ``allowed_names``
        is a text file (one name a line, ``#`` comments), a ``roster.json``, or a
        list of names; without it, any certificate the CA issued is accepted.
        Files are re-read when they change.
        """
        members: Path | Iterable[str] | None
        if isinstance(allowed_names, (str, os.PathLike)):
            members = Path(allowed_names)
        else:
            members = allowed_names
        return cls(Path(ca_cert), crl=Path(crl) if crl else None, members=members)

    @property
    def ca_pem(self) -> bytes:
        """The trusted CA certificate(s) as PEM, e.g. gRPC's ``root_certificates``."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in self.anchors
        )

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The trusted CA whose signature ``cert`` carries, if any."""
        for ca in self.anchors:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def revoked_at(self, cert: x509.Certificate) -> datetime | None:
        """When the CRL says ``cert`` was revoked; None if it does not list it."""
        if self._crl is None:
            return None
        with self._lock:
            crl = self._crl.get()
        if crl.issuer != cert.issuer:
            return None
        return crl.revoked.get(cert.serial_number)

    def crl_der(self) -> bytes:
        """The CRL as DER, as a coordinator sends it to its sites; empty if none."""
        if self._crl is None:
            return b""
        with self._lock:
            return self._crl.get().der

    def membership_problem(
        self, cert: x509.Certificate, name: str, role: Role
    ) -> str | None:
        """Why ``cert`` may not join per the roster or allow-list; None if it may."""
        with self._lock:
            roster = self._roster.get() if self._roster else None
            names = (
                self._names.get() if isinstance(self._names, _Watched) else self._names
            )
        if names is not None and name not in names:
            return "is not on the federation's allow-list"
        if roster is None:
            return None
        entry = roster.by_fingerprint(fingerprint(cert))
        if entry is None or entry.name != name:
            current = roster.current(name)
            if current is not None:
                return f"is not the one on the roster (serial {current.serial:x} is)"
            return "is not on the roster; the federation's operator must sign it"
        if entry.revoked_at is not None:
            return f"was revoked on {_when(entry.revoked_at)}"
        if entry.role != role:
            return f"claims role {role!r} but the roster lists {entry.role!r}"
        return None

    def handshake_roots(self, now: datetime | None = None) -> HandshakeRoots:
        """What a server's TLS handshake should trust for callers, as of ``now``.

        With a roster whose entries carry their certificates (``accord pki sign``
        writes them), exactly the certificates that may dial in now: participants'
        and admins' that are active on the roster and not on the CRL, each checked
        against its fingerprint and the CA's signature. A revoked, expired or
        replaced certificate then fails the handshake itself. Otherwise (an
        allow-list, no roster, or a roster written before it carried certificates)
        the CA: the handshake checks chain and dates, and :func:`verify_peer`
        refuses the rest at the first call. Cached until a file changes or one of
        the pinned certificates expires.
        """
        at = now or datetime.now(UTC)
        with self._lock:
            roster = self._roster.get() if self._roster else None
            crl = self._crl.get() if self._crl else None
            cached = self._roots
            if (
                cached is not None
                and cached[0] is roster
                and cached[1] is crl
                and (cached[2].until is None or at < cached[2].until)
            ):
                return cached[2]
            roots = pinned_roots(
                roster,
                crl.revoked if crl is not None else {},
                self.ca_pem,
                lambda cert: self.issuer_of(cert) is not None,
                at,
            )
            self._roots = (roster, crl, roots)
            return roots

    def identity_problem(self, cert: x509.Certificate, name: str) -> str | None:
        """Why the identity certificate ``cert`` may not speak for ``name``, or None.

        Per the roster or allow-list; the caller checks the CA's signature and dates.
        """
        with self._lock:
            roster = self._roster.get() if self._roster else None
            names = (
                self._names.get() if isinstance(self._names, _Watched) else self._names
            )
        if names is not None and name not in names:
            return "is not on the federation's allow-list"
        if roster is None:
            return None
        entry = roster.by_identity(fingerprint(cert))
        if entry is None or entry.name != name:
            return "is not on the roster; the federation's operator must sign it"
        if entry.revoked_at is not None:
            return f"was revoked on {_when(entry.revoked_at)}"
        return None

    def _parse_crl(self, data: bytes) -> _Crl:
        try:
            crl = (
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
        except ValueError as exc:
            raise PkiError(f"the CRL is not readable: {exc}") from exc
        for ca in self.anchors:
            key = ca.public_key()
            if crl.issuer == ca.subject and _signed_by(crl, key):
                revoked = {r.serial_number: r.revocation_date_utc for r in crl}
                der = crl.public_bytes(serialization.Encoding.DER)
                return _Crl(crl.issuer, revoked, der)
        raise PkiError(
            "the CRL is not signed by the trusted CA; copy crl.pem from the CA's "
            "directory again"
        )

    def _parse_roster(self, data: bytes) -> Roster:
        roster = Roster.from_bytes(data)
        ids = {
            str(a.value)
            for ca in self.anchors
            for a in ca.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        }
        if roster.federation_id not in ids:
            raise PkiError(
                f"the roster belongs to federation {roster.federation_id}, not to the "
                f"CA in {self.ca_path}"
            )
        return roster


def _signed_by(crl: x509.CertificateRevocationList, key: object) -> bool:
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        return False
    return crl.is_signature_valid(key)


def verify_peer(
    cert_pem: bytes,
    trust: TrustStore,
    *,
    usage: Usage = "client",
    roles: Collection[Role] | None = None,
    now: datetime | None = None,
) -> Identity:
    """Check a peer's certificate against ``trust`` and return who it is.

    Checks, in order: the path (:func:`~accord.transport.chain.chain_problem`:
    issued by a trusted CA, within its validity dates and the CA within its own,
    not a CA certificate, key usage and extended key usage for ``usage``), not
    revoked (CRL and roster), on the roster or allow-list, and, when
    ``roles`` is given, holding one of them. Raises AuthenticationFailed naming the
    first check that failed, or PkiError when the CRL or roster on disk has become
    unreadable (fail closed: nobody is accepted until it is fixed).
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise AuthenticationFailed(
            f"the peer's certificate is unreadable: {exc}"
        ) from exc
    name, role = certificate_name(cert), certificate_role(cert)
    who = f"certificate of {name!r}" if name else f"certificate {cert.serial_number:x}"
    at = now or datetime.now(UTC)
    problem = (
        _chain_problem(cert, trust, usage, at)
        or _revocation_problem(cert, trust)
        or _subject_problem(name, role)
    )
    if problem is None:
        assert name is not None and role is not None  # _subject_problem saw to it
        problem = trust.membership_problem(cert, name, role)
        if problem is None and roles is not None and role not in roles:
            wanted = " or ".join(repr(r) for r in roles)
            problem = f"has role {role!r}, but this needs {wanted}"
        if problem is None:
            return Identity(name, role, cert.serial_number, fingerprint(cert))
    logger.info("refused %s: %s", who, problem)
    raise AuthenticationFailed(f"{who} {problem}", name=name)


def _chain_problem(
    cert: x509.Certificate, trust: TrustStore, usage: Usage, at: datetime
) -> str | None:
    problem = chain_problem(cert, trust.anchors, purpose=usage, at=at)
    if problem is not None and problem.startswith("expired on"):
        problem += (
            "; the site needs a new certificate (accord pki request, then accord "
            "pki sign)"
        )
    return problem


def _revocation_problem(cert: x509.Certificate, trust: TrustStore) -> str | None:
    revoked = trust.revoked_at(cert)
    return None if revoked is None else f"was revoked on {_when(revoked)}"


def _subject_problem(name: str | None, role: Role | None) -> str | None:
    if name is None:
        return "has no common name (CN) to identify the site"
    if role is None:
        return "claims several roles in its OU"
    return None
