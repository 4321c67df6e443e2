"""Who the federation's CA issued certificates to, and how a certificate names them.

The built-in CA keeps every certificate it issues in ``roster.json`` (name, role,
serial, SHA-256 fingerprint, expiry, revocation time, the certificate itself as PEM,
and the serial and fingerprint of the identity certificate issued with it, if any:
see :mod:`accord.transport.identity`); :class:`Roster` reads and writes it. The
coordinator admits only certificates whose fingerprint the roster lists as
unrevoked, so an operator can see, and an auditor can check, exactly who may join.
The helpers here read a certificate's name (subject CN) and role (subject OU) and
check names, which become file names and log fields, so they are restricted to a
safe alphabet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from accord.errors import MissingExtraError, PkiError
from accord.jsontext import parse_json

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

__all__ = [
    "CA_CERT",
    "CRL",
    "ROLES",
    "ROSTER",
    "Role",
    "Roster",
    "RosterEntry",
    "certificate_name",
    "certificate_role",
    "fingerprint",
    "validate_name",
]

#: ``auditor`` reads (the dashboard) and changes nothing; ``admin`` also operates.
Role = Literal["participant", "admin", "coordinator", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)

#: File names in a CA directory (and in a copy of it that a coordinator trusts).
CA_CERT = "ca.pem"
CRL = "crl.pem"
ROSTER = "roster.json"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_OU = NameOID.ORGANIZATIONAL_UNIT_NAME


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a site: 1-64 of ``A-Z a-z 0-9 . _ -``."""
    if not _NAME.fullmatch(name):
        raise PkiError(
            f"invalid name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, as 64 hex digits."""
    return cert.fingerprint(hashes.SHA256()).hex()


def certificate_name(cert: x509.Certificate) -> str | None:
    """The subject's common name, or None when it has none."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def certificate_role(cert: x509.Certificate) -> Role | None:
    """The role the subject's OU claims; participant if none, None if several."""
    units = {str(a.value) for a in cert.subject.get_attributes_for_oid(_OU)}
    roles = [role for role in ROLES if role in units]
    if len(roles) > 1:
        return None
    return roles[0] if roles else "participant"


@dataclass(frozen=True)
class RosterEntry:
    """One certificate the federation's CA issued."""

    name: str
    role: Role
    serial: int
    fingerprint: str
    issued_at: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    identity_serial: int | None = None
    identity_fingerprint: str | None = None
    #: The certificate itself (PEM), so that a coordinator's TLS handshake can trust
    #: exactly the active ones; absent from older rosters (the handshake then trusts
    #: the CA, and a revoked certificate is refused at its first call instead).
    certificate: str | None = None

    def status(
        self, now: datetime | None = None
    ) -> Literal["active", "expired", "revoked"]:
        """Whether the certificate is active, expired or revoked at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if (now or datetime.now(UTC)) >= self.not_after else "active"

    def to_json(self) -> dict[str, str | None]:
        """The entry as JSON values; the serial as hex (it exceeds 64 bits)."""
        out = {
            "name": self.name,
            "role": self.role,
            "serial": f"{self.serial:x}",
            "fingerprint": self.fingerprint,
            "issued_at": self.issued_at.isoformat(),
            "not_after": self.not_after.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
        if self.identity_serial is not None:
            out["identity_serial"] = f"{self.identity_serial:x}"
            out["identity_fingerprint"] = self.identity_fingerprint
        if self.certificate is not None:
            out["certificate"] = self.certificate
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RosterEntry:
        """Parse what :meth:`to_json` wrote."""
        role = str(data["role"])
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        revoked = data.get("revoked_at")
        identity = data.get("identity_serial")
        certificate = data.get("certificate")
        return cls(
            name=str(data["name"]),
            role=role,
            serial=int(str(data["serial"]), 16),
            fingerprint=str(data["fingerprint"]),
            issued_at=datetime.fromisoformat(str(data["issued_at"])),
            not_after=datetime.fromisoformat(str(data["not_after"])),
            revoked_at=datetime.fromisoformat(str(revoked)) if revoked else None,
            identity_serial=int(str(identity), 16) if identity else None,
            identity_fingerprint=(
                str(data["identity_fingerprint"]) if identity else None
            ),
            certificate=str(certificate) if certificate else None,
        )


@dataclass(frozen=True)
class Roster:
    """Every certificate the built-in CA issued, in ``roster.json``."""

    federation: str
    federation_id: str
    entries: tuple[RosterEntry, ...] = ()

    def by_fingerprint(self, value: str) -> RosterEntry | None:
        """The entry of the certificate with this fingerprint, if any."""
        return next((e for e in self.entries if e.fingerprint == value), None)

    def by_identity(self, value: str) -> RosterEntry | None:
        """The entry whose identity certificate has this fingerprint, if any."""
        return next((e for e in self.entries if e.identity_fingerprint == value), None)

    def current(self, name: str, now: datetime | None = None) -> RosterEntry | None:
        """The active (issued, unexpired, unrevoked) certificate of ``name``."""
        return next(
            (e for e in self.entries if e.name == name and e.status(now) == "active"),
            None,
        )

    def to_bytes(self) -> bytes:
        """The roster as indented JSON."""
        doc = {
            "federation": self.federation,
            "federation_id": self.federation_id,
            "certificates": [e.to_json() for e in self.entries],
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "roster") -> Roster:
        """Parse a ``roster.json``; raise PkiError naming ``source`` if malformed."""
        try:
            doc = parse_json(data)
            entries = tuple(RosterEntry.from_json(e) for e in doc["certificates"])
            return cls(str(doc["federation"]), str(doc["federation_id"]), entries)
        except (ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"{source} is not a valid roster: {exc}") from exc
