"""A site's trust in its coordinator: a pinned certificate and the newest CRL it saw.

Why. A site used to trust any certificate the federation's CA issued with the
coordinator's host name, and could not check revocation (gRPC's Python API has no
CRL option and no hook into the handshake). So a coordinator certificate that was
revoked (its key stolen, its host retired) kept impersonating the coordinator
until it expired, and so did any other certificate the CA issued for that name.

What. Enrolment (``accord pki sign`` for a participant) writes, next to the site's
``cert.pem``, the coordinator's current certificate as ``coordinator.pem`` (the
*pin*) and the CA's ``crl.pem``. The site's TLS handshake then trusts the pinned
certificate(s) instead of the CA (BoringSSL accepts a trusted certificate as its
own anchor; the host name is still checked): another certificate of the same CA,
even for the same name, fails the handshake. Before every dial the site drops
pinned certificates that its CRL lists or that have expired, and refuses to dial
when none is left (:meth:`CoordinatorPin.roots`). The coordinator sends the CA's
CRL with every task (:meth:`CoordinatorPin.observe`): the site checks it against
its own CA certificate (issuer, signature, a CRL number, not issued in the
future), keeps it in ``crl.pem`` when it is newer than the one it holds, refuses
an older or forged one (its own stays in force), and drops the connection when the
new CRL revokes a pinned certificate.

Renewal. ``coordinator.pem`` may hold several certificates: to renew the
coordinator's certificate without an outage, the CA's operator issues the new one,
each site adds it (``accord pki pin DIR --certificate new.pem --add``), the
coordinator switches, and the operator revokes the old one, which every site then
drops at the next CRL it receives. Every pinned certificate is checked when it is
pinned and when it is loaded: issued by the site's CA for a TLS server, role
``coordinator``, not on the site's CRL (:func:`pin_coordinator`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from accord.errors import AuthenticationFailed, MissingExtraError, PkiError
from accord.transport.chain import chain_problem
from accord.transport.enrolment import IdentityFiles, write_atomic
from accord.transport.roster import CA_CERT, certificate_role, fingerprint

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from accord.transport.profile import SKEW

__all__ = [
    "PIN",
    "SITE_CRL",
    "CoordinatorPin",
    "CrlVerdict",
    "pin_coordinator",
    "pinned_identity",
]

logger = logging.getLogger(__name__)

#: The pinned coordinator certificate(s), in a site's identity folder.
PIN = "coordinator.pem"
#: The newest CA revocation list the site has seen, in its identity folder.
SITE_CRL = "crl.pem"
_PEM = serialization.Encoding.PEM


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CrlVerdict:
    """What a site made of a CRL it received.

    ``outcome``: ``updated`` (newer: kept), ``unchanged`` (the one it holds) or
    ``refused`` (``reason`` says why; the site's own CRL stays in force).
    ``revoked_pins``: fingerprints of pinned certificates the kept CRL lists.
    """

    outcome: Literal["updated", "unchanged", "refused"]
    number: int | None
    reason: str = ""
    revoked_pins: tuple[str, ...] = ()


def _load_pem_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read {what} {path}: {exc}") from exc


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _crl_problem(
    crl: x509.CertificateRevocationList,
    anchors: list[x509.Certificate],
    at: datetime,
) -> str | None:
    """Why ``crl`` is not this CA's valid revocation list at ``at``; None if it is."""
    signed = False
    for ca in anchors:
        key = ca.public_key()
        if crl.issuer != ca.subject:
            continue
        if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            signed = crl.is_signature_valid(key)
        if signed:
            break
    if not signed:
        return "is not signed by this site's CA"
    if _crl_number(crl) is None:
        return "carries no CRL number, so its age cannot be told"
    if crl.last_update_utc > at + SKEW:
        return f"claims to be issued in the future ({crl.last_update_utc:%Y-%m-%d})"
    if crl.next_update_utc is not None and crl.next_update_utc < at:
        return f"expired on {crl.next_update_utc:%Y-%m-%d} (its nextUpdate)"
    return None


def _pin_problem(
    cert: x509.Certificate, anchors: list[x509.Certificate], at: datetime
) -> str | None:
    problem = chain_problem(cert, anchors, purpose="server", at=at)
    if problem is None and certificate_role(cert) != "coordinator":
        problem = "is not a coordinator's certificate (OU=coordinator)"
    return problem


class CoordinatorPin:
    """The coordinator certificate(s) a site trusts, and the newest CRL it holds.

    Read from the site's identity folder (``ca.pem``, ``coordinator.pem`` and, if
    present, ``crl.pem``); a newer CRL received from the coordinator replaces
    ``crl.pem``. ``now`` is the clock (tests pass their own). Not thread-safe: one
    participant runtime owns it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.directory = Path(directory)
        self._now = now
        self._anchors = _load_pem_certificates(self.directory / CA_CERT, "the CA")
        self._pins = _load_pem_certificates(self.directory / PIN, "the pin")
        self._crl: x509.CertificateRevocationList | None = None
        self._number: int | None = None
        at = now()
        if (self.directory / SITE_CRL).exists():
            crl = self._parse(self.directory / SITE_CRL)
            problem = _crl_problem(crl, self._anchors, at)
            if problem is not None:
                raise PkiError(
                    f"{self.directory / SITE_CRL} {problem}; copy crl.pem from the "
                    "CA's operator again"
                )
            self._crl, self._number = crl, _crl_number(crl)
        for cert in self._pins:
            problem = _pin_problem(cert, self._anchors, at)
            if problem is not None and not problem.startswith("expired on"):
                raise PkiError(
                    f"the pinned certificate {fingerprint(cert)[:16]} in "
                    f"{self.directory / PIN} {problem}; pin the coordinator's "
                    "certificate again (accord pki pin)"
                )

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, now: Callable[[], datetime] = _utcnow
    ) -> CoordinatorPin | None:
        """The pin in ``directory``; None if it holds no ``coordinator.pem``."""
        if not (Path(directory) / PIN).exists():
            return None
        return cls(directory, now=now)

    @property
    def crl_number(self) -> int | None:
        """The number of the CRL the site holds (None: it holds none)."""
        return self._number

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The pinned certificates' SHA-256 fingerprints."""
        return tuple(fingerprint(c) for c in self._pins)

    def _revoked(self, cert: x509.Certificate) -> bool:
        crl = self._crl
        return crl is not None and (
            crl.issuer == cert.issuer
            and crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            is not None
        )

    def roots(self) -> bytes:
        """The PEM the handshake trusts: pinned certificates usable now.

        Raises AuthenticationFailed when every pinned certificate is revoked (per
        the site's CRL) or expired: dialling would only reach an impostor or fail.
        """
        at = self._now()
        usable, why = [], []
        for cert in self._pins:
            if self._revoked(cert):
                why.append(f"{fingerprint(cert)[:16]} is revoked (CRL {self._number})")
            elif (problem := _pin_problem(cert, self._anchors, at)) is not None:
                why.append(f"{fingerprint(cert)[:16]} {problem}")
            else:
                usable.append(cert.public_bytes(_PEM))
        if not usable:
            raise AuthenticationFailed(
                f"this site trusts no coordinator certificate: {'; '.join(why)}. "
                "If the coordinator's certificate was renewed, pin the new one "
                f"(accord pki pin {self.directory} --certificate FILE)"
            )
        return b"".join(usable)

    def observe(self, der: bytes) -> CrlVerdict:
        """Take a CRL the coordinator sent: keep it if newer, refuse it if bad."""
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError as exc:
            return self._refuse(None, f"the CRL is unreadable: {exc}")
        number = _crl_number(crl)
        problem = _crl_problem(crl, self._anchors, self._now())
        if problem is not None:
            return self._refuse(number, f"the CRL {problem}")
        assert number is not None  # _crl_problem saw to it
        if self._number is not None and number < self._number:
            return self._refuse(
                number,
                f"the CRL is number {number}, older than number {self._number} this "
                "site holds (a stale or replayed list)",
            )
        if self._number is not None and number == self._number:
            return CrlVerdict("unchanged", number)
        write_atomic(self.directory / SITE_CRL, crl.public_bytes(_PEM))
        self._crl, self._number = crl, number
        revoked = tuple(fingerprint(c) for c in self._pins if self._revoked(c))
        logger.info("keeping CRL number %d (%d revoked)", number, len(crl))
        if revoked:
            logger.error(
                "CRL %d revokes the pinned coordinator certificate(s) %s",
                number,
                ", ".join(f[:16] for f in revoked),
            )
        return CrlVerdict("updated", number, revoked_pins=revoked)

    def _refuse(self, number: int | None, reason: str) -> CrlVerdict:
        logger.warning("refused a CRL from the coordinator: %s", reason)
        return CrlVerdict("refused", number, reason)

    def _parse(self, path: Path) -> x509.CertificateRevocationList:
        data = path.read_bytes()
        try:
            return x509.load_pem_x509_crl(data)
        except ValueError as exc:
            raise PkiError(f"{path} is not a readable CRL: {exc}") from exc


def pinned_identity(files: IdentityFiles, pin: CoordinatorPin) -> IdentityFiles:
    """The site's TLS files with the pinned certificates as the roots it trusts."""
    return files._replace(ca_pem=pin.roots())


def pin_coordinator(
    directory: str | os.PathLike[str],
    certificate_pem: bytes,
    *,
    add: bool = False,
    crl_pem: bytes | None = None,
    now: datetime | None = None,
) -> tuple[str, ...]:
    """Pin the coordinator certificate(s) in ``certificate_pem`` for the site.

    Each must be issued by the site's CA (``ca.pem`` in ``directory``) for a TLS
    server with role ``coordinator``, be valid now and not be on the site's CRL
    (``crl_pem``, when given and newer, replaces it first). ``add`` keeps the
    certificates already pinned (for a renewal); otherwise they are replaced.
    Returns the fingerprints now pinned.
    """
    d = Path(directory)
    at = (now or _utcnow()).astimezone(UTC)
    anchors = _load_pem_certificates(d / CA_CERT, "the CA")
    try:
        new = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc
    if crl_pem is not None:
        _take_crl(d, crl_pem, anchors, at)
    kept = (
        _load_pem_certificates(d / PIN, "the pin") if add and (d / PIN).exists() else []
    )
    crl = _load_crl(d)
    for cert in new:
        problem = _pin_problem(cert, anchors, at)
        if (
            problem is None
            and crl is not None
            and crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        ):
            problem = "is revoked (the site's CRL lists it)"
        if problem is not None:
            raise PkiError(
                f"not pinning certificate {fingerprint(cert)[:16]}: it {problem}"
            )
    pinned: dict[str, x509.Certificate] = {fingerprint(c): c for c in (*kept, *new)}
    write_atomic(d / PIN, b"".join(c.public_bytes(_PEM) for c in pinned.values()))
    logger.info("pinned coordinator certificate(s) %s in %s", ", ".join(pinned), d)
    return tuple(pinned)


def _load_crl(d: Path) -> x509.CertificateRevocationList | None:
    if not (d / SITE_CRL).exists():
        return None
    try:
        return x509.load_pem_x509_crl((d / SITE_CRL).read_bytes())
    except ValueError as exc:
        raise PkiError(f"{d / SITE_CRL} is not a readable CRL: {exc}") from exc


def _take_crl(
    d: Path, pem: bytes, anchors: list[x509.Certificate], at: datetime
) -> None:
    try:
        crl = x509.load_pem_x509_crl(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM CRL: {exc}") from exc
    problem = _crl_problem(crl, anchors, at)
    if problem is not None:
        raise PkiError(f"the CRL {problem}")
    held = _load_crl(d)
    held_number = _crl_number(held) if held is not None else None
    number = _crl_number(crl)
    assert number is not None
    if held_number is not None and number < held_number:
        raise PkiError(
            f"the CRL is number {number}, older than number {held_number} the site "
            "holds"
        )
    write_atomic(d / SITE_CRL, crl.public_bytes(_PEM))
