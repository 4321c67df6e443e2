"""The federation's certificate authority, and a site's enrolment with it.

Files. A CA directory (:func:`init_ca`, ``accord pki init DIR``) holds ``ca.key``,
the CA's private key encrypted with the operator's passphrase (mode 0600);
``ca.pem``, the CA certificate every site trusts; ``crl.pem``, the revocation list,
signed again on every revocation; ``roster.json``, every certificate issued (see
:mod:`accord.transport.roster`); and ``issued/<serial>.pem``, a copy of each. A
coordinator needs ``ca.pem``, ``crl.pem`` and ``roster.json`` but never ``ca.key``.
A site's identity directory (:func:`request`, ``accord pki request NAME --dir DIR``)
holds ``key.pem``, the site's private key (0600); ``request.csr``, sent to the CA's
operator; then ``cert.pem`` and ``ca.pem``, which :func:`sign` writes and the site
puts next to its key, with, for a participant, ``coordinator.pem`` (the
coordinator's certificate it pins) and ``crl.pem``
(:mod:`~accord.transport.coordinator_pin`). :func:`load_identity` reads them for
gRPC's credentials. A participant's folder also holds ``identity-key.pem``, its
Ed25519 key for secure aggregation, and ``identity-cert.pem``, which :func:`sign`
issues in the same step (:mod:`~accord.transport.identity` explains the scheme).

Threat model. An attacker on the network between sites and the coordinator may
read, change or inject traffic; outsiders may present self-signed certificates or
ones from another federation's CA; a former member may keep a revoked or expired
certificate; a member may claim another site's name or the admin role. Mutual TLS
with certificates from this CA, checked against the CRL and the roster
(:func:`accord.transport.trust.verify_peer`), refuses all of them, on the next
connection after a revocation. A stolen copy of the CA directory does not let the
thief issue certificates without the passphrase. Out of scope: a malicious CA
operator, a compromised host while its key is in use (revoke it), denial of service.

Choices. ECDSA P-256 with SHA-256 because BoringSSL (gRPC), OpenSSL and every other
TLS stack accept it, and its keys are small and fast. A site creates its key where it
runs and sends only a CSR, so no one else (the CA operator included) ever holds it.
The CA key is encrypted at rest because the CA directory gets copied and backed up:
scrypt (memory-hard) and AES-256-GCM (:mod:`~accord.transport.keywrap`, which says
why not PKCS#8's PBKDF2); the passphrase must still be long: at least 12 characters
are required, several random words are better. A key wrapped by an earlier accord
(PKCS#8, PBKDF2 at 2,048 iterations) still opens, and is re-wrapped the next time
:func:`sign` or :func:`revoke` opens it. The CA has
``pathlen=0``: it signs only end-entity certificates, never another CA. The CRL is
a plain file: copying ``crl.pem`` to the coordinator is the distribution, and the
coordinator passes it on to the sites with every task (they check it against their
CA and keep the newest), so it carries a long ``nextUpdate``.

External CA. A federation with its own CA skips :func:`init_ca` and :func:`sign`:
its CA issues the sites' certificates (ECDSA P-256 or RSA of 2048 bits or more;
``clientAuth``; ``OU=admin`` for operators; ``serverAuth`` and the host names for
the coordinator) and the coordinator trusts it through
``TrustStore.from_files(ca_cert=..., crl=..., allowed_names=...)``.

This module is the PKI's API. It re-exports the site's side
(:mod:`~accord.transport.enrolment`) and verification
(:mod:`~accord.transport.trust`); :mod:`~accord.transport.profile` says what goes
into each certificate and :mod:`~accord.transport.roster` what the CA records.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from accord.errors import MissingExtraError, PkiError
from accord.transport.coordinator_pin import PIN, SITE_CRL
from accord.transport.enrolment import (
    CERT,
    KEY,
    REQUEST,
    IdentityFiles,
    load_identity,
    make_private_dir,
    request,
    write_atomic,
    write_new,
)
from accord.transport.identity import (
    IDENTITY_CERT,
    IDENTITY_KEY,
    requested_identity_key,
)
from accord.transport.keywrap import unwrap, wrap
from accord.transport.profile import (
    SKEW,
    ca_certificate,
    identity_certificate,
    leaf_certificate,
    read_csr,
)
from accord.transport.roster import (
    CA_CERT,
    CRL,
    ROLES,
    ROSTER,
    Role,
    Roster,
    RosterEntry,
    fingerprint,
)
from accord.transport.trust import Identity, TrustStore, Usage, verify_peer

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CERT",
    "CRL",
    "IDENTITY_CERT",
    "IDENTITY_KEY",
    "KEY",
    "REQUEST",
    "ROLES",
    "ROSTER",
    "CaInfo",
    "Identity",
    "IdentityFiles",
    "Role",
    "Roster",
    "RosterEntry",
    "TrustStore",
    "Usage",
    "ca_info",
    "init_ca",
    "load_identity",
    "read_roster",
    "request",
    "revoke",
    "sign",
    "verify_peer",
]

logger = logging.getLogger(__name__)

#: The CA's encrypted private key, in the CA directory.
CA_KEY = "ca.key"
_ISSUED = "issued"


@dataclasses.dataclass(frozen=True)
class CaInfo:
    """What ``accord pki init`` created: the federation and its CA certificate."""

    directory: Path
    federation: str
    federation_id: str
    fingerprint: str
    not_after: datetime


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def _validate_federation(federation: str) -> str:
    if not 0 < len(federation) <= 64 or not federation.isprintable():
        raise PkiError(
            f"invalid federation name {federation!r}: use 1 to 64 printable characters"
        )
    return federation


def init_ca(
    directory: str | os.PathLike[str],
    *,
    federation: str,
    passphrase: bytes,
    days: int = 3650,
    now: datetime | None = None,
) -> CaInfo:
    """Create the federation's CA in ``directory``; refuse to replace one.

    ``now`` is the time of issue (default the wall clock; tests pass their own).
    """
    d = Path(directory)
    _validate_federation(federation)
    _check_days(days)
    if len(passphrase) < 12:
        raise PkiError(
            "the CA passphrase must be at least 12 characters long; several random "
            "words make a good one"
        )
    if any((d / f).exists() for f in (CA_KEY, CA_CERT, ROSTER, CRL)):
        raise PkiError(f"{d} already holds a CA; use another directory")
    make_private_dir(d)
    key = ec.generate_private_key(ec.SECP256R1())
    fed_id = secrets.token_hex(8)
    at = _now(now)
    cert = ca_certificate(key, federation, fed_id, now=at, days=days)
    write_new(d / CA_KEY, wrap(key, passphrase), 0o600)
    write_new(d / CA_CERT, _pem(cert), 0o644)
    write_atomic(d / ROSTER, Roster(federation, fed_id).to_bytes())
    _write_crl(d, key, cert, [], at)
    logger.info("created the CA of federation %r (%s) in %s", federation, fed_id, d)
    return ca_info(d)


def ca_info(directory: str | os.PathLike[str]) -> CaInfo:
    """Describe the CA in ``directory`` (reads only its certificate)."""
    d = Path(directory)
    cert = _read_ca_cert(d)
    attrs = cert.subject.get_attributes_for_oid
    fed = attrs(NameOID.ORGANIZATION_NAME)
    fed_id = attrs(NameOID.SERIAL_NUMBER)
    return CaInfo(
        directory=d,
        federation=str(fed[0].value) if fed else "",
        federation_id=str(fed_id[0].value) if fed_id else "",
        fingerprint=fingerprint(cert),
        not_after=cert.not_valid_after_utc,
    )


def read_roster(ca_dir: str | os.PathLike[str]) -> Roster:
    """The roster of the CA in ``ca_dir``."""
    path = Path(ca_dir) / ROSTER
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"no CA roster at {path} ({exc.strerror})") from exc
    return Roster.from_bytes(data, source=str(path))


def _read_ca_cert(d: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate((d / CA_CERT).read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"no CA in {d}: cannot read {CA_CERT} ({exc})") from exc


def _load_ca(
    d: Path, passphrase: bytes
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert = _read_ca_cert(d)
    try:
        data = (d / CA_KEY).read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read the CA key {d / CA_KEY}: {exc.strerror}") from exc
    opened = unwrap(data, passphrase, source=f"the CA key in {d}")
    key = opened.key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (
        key.public_key() != cert.public_key()
    ):
        raise PkiError(f"{d / CA_KEY} is not the key of {d / CA_CERT}")
    if opened.legacy:
        # Only now that the key matched the CA certificate: never replace a key
        # file with the wrapping of some other key.
        write_atomic(d / CA_KEY, wrap(key, passphrase), 0o600)
        logger.warning(
            "re-wrapped the CA key in %s with scrypt and AES-256-GCM (it used "
            "PKCS#8 with PBKDF2 at 2,048 iterations); delete any backup of the old "
            "ca.key, which the old wrapping protects less well",
            d,
        )
    return key, cert


def _write_crl(
    d: Path,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    revoked: Iterable[RosterEntry],
    now: datetime,
) -> None:
    number = 1
    if (d / CRL).exists():
        old = x509.load_pem_x509_crl((d / CRL).read_bytes())
        last = old.extensions.get_extension_for_class(x509.CRLNumber).value
        number = last.crl_number + 1
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - SKEW)
        .next_update(ca.not_valid_after_utc)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
    )
    for entry in revoked:
        assert entry.revoked_at is not None
        serials = [entry.serial]
        if entry.identity_serial is not None:
            serials.append(entry.identity_serial)
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(entry.revoked_at)
                .build()
            )
    write_atomic(d / CRL, _pem(builder.sign(key, hashes.SHA256())))


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"a certificate must be valid for at least one day, not {days}")


def sign(
    ca_dir: str | os.PathLike[str],
    csr_path: str | os.PathLike[str],
    *,
    passphrase: bytes,
    role: Role,
    days: int = 365,
    out: str | os.PathLike[str] | None = None,
    replace: bool = False,
    now: datetime | None = None,
) -> Path:
    """Issue a certificate for the CSR at ``csr_path``; return the certificate's path.

    The certificate goes to ``out`` (default: ``cert.pem`` beside the CSR; its folder
    is created), with the CA certificate copied beside it as ``ca.pem``, and onto the
    roster. A participant's request that carries an identity key also gets its
    identity certificate, as ``identity-cert.pem`` beside the certificate. A name
    that already holds an active certificate is refused unless ``replace``, which
    revokes that one. ``now`` moves the time of issue (tests use it to make expired
    ones).
    """
    d, csr_file = Path(ca_dir), Path(csr_path)
    _check_days(days)
    csr, name = read_csr(csr_file, role)
    identity_key = requested_identity_key(csr, name, source=str(csr_file))
    if identity_key is not None and role != "participant":
        raise PkiError(f"{csr_file} asks for an identity key, which only sites hold")
    key, ca = _load_ca(d, passphrase)
    at = _now(now)
    roster = read_roster(d)
    target = Path(out) if out is not None else csr_file.parent / CERT
    written = [target] + ([target.parent / IDENTITY_CERT] if identity_key else [])
    _check_free(roster, name, written, ca, replace=replace, at=at)
    # Before the roster records the certificate: a missing --out folder must not
    # leave a name on the roster whose certificate was never written.
    target.parent.mkdir(parents=True, exist_ok=True)
    cert = leaf_certificate(csr, name, role, key, ca, at=at, days=days)
    issued = [cert]
    if identity_key is not None:
        issued.append(identity_certificate(identity_key, cert, key, ca))
    entry = RosterEntry(
        name,
        role,
        cert.serial_number,
        fingerprint(cert),
        at,
        cert.not_valid_after_utc,
        certificate=_pem(cert).decode(),
    )
    if identity_key is not None:
        entry = dataclasses.replace(
            entry,
            identity_serial=issued[1].serial_number,
            identity_fingerprint=fingerprint(issued[1]),
        )
    replaced = [e for e in roster.entries if e.name == name and e.revoked_at is None]
    updated = _with_revoked(roster, replaced if replace else [], at)
    updated = dataclasses.replace(updated, entries=(*updated.entries, entry))
    (d / _ISSUED).mkdir(mode=0o700, exist_ok=True)
    for c in issued:
        write_new(d / _ISSUED / f"{c.serial_number:x}.pem", _pem(c), 0o644)
    if replace and replaced:
        _write_crl(d, key, ca, [e for e in updated.entries if e.revoked_at], at)
    write_atomic(d / ROSTER, updated.to_bytes())
    for path, c in zip(written, issued, strict=True):
        write_atomic(path, _pem(c))
    if not (target.parent / CA_CERT).exists():
        write_atomic(target.parent / CA_CERT, _pem(ca))
    if role == "participant":
        _write_site_trust(d, target.parent, updated, at)
    logger.info("issued %s certificate %x to %r", role, cert.serial_number, name)
    return target


def _write_site_trust(d: Path, out: Path, roster: Roster, at: datetime) -> None:
    """Pin the coordinator's active certificate(s) for a site, with the CRL.

    :mod:`~accord.transport.coordinator_pin` says why. No coordinator on the roster
    yet: the site pins it later (``accord pki pin``).
    """
    certificates = [
        e.certificate
        for e in roster.entries
        if e.role == "coordinator" and e.status(at) == "active" and e.certificate
    ]
    write_atomic(out / SITE_CRL, (d / CRL).read_bytes())
    if not certificates:
        logger.warning(
            "no coordinator on the roster yet: %s gets no %s; once the coordinator "
            "is enrolled, the site pins it (accord pki pin %s --certificate FILE)",
            out,
            PIN,
            out,
        )
        return
    write_atomic(out / PIN, "".join(certificates).encode())


def _check_free(
    roster: Roster,
    name: str,
    targets: list[Path],
    ca: x509.Certificate,
    *,
    replace: bool,
    at: datetime,
) -> None:
    current = roster.current(name, at)
    if current is not None and not replace:
        raise PkiError(
            f"{name!r} already holds an active certificate (serial "
            f"{current.serial:x}); pass --replace to revoke it and issue this one"
        )
    for target in targets:
        if target.exists() and not replace:
            raise PkiError(f"{target} already exists; choose another --out")
    ca_copy = targets[0].parent / CA_CERT
    if ca_copy.exists() and ca_copy.read_bytes() != _pem(ca):
        raise PkiError(
            f"{ca_copy} is another CA's certificate; choose an --out folder without it"
        )


def _with_revoked(
    roster: Roster, entries: Iterable[RosterEntry], at: datetime
) -> Roster:
    gone = {e.fingerprint for e in entries}
    return dataclasses.replace(
        roster,
        entries=tuple(
            dataclasses.replace(e, revoked_at=at) if e.fingerprint in gone else e
            for e in roster.entries
        ),
    )


def revoke(
    ca_dir: str | os.PathLike[str],
    name: str,
    *,
    passphrase: bytes,
    now: datetime | None = None,
) -> list[RosterEntry]:
    """Revoke every unrevoked certificate of ``name``; return them, as revoked.

    Writes a new ``crl.pem`` and ``roster.json``; a coordinator that trusts this
    directory (or a copy of both files) refuses the certificates at their next TLS
    handshake (it trusts only the roster's active certificates), and on a connection
    already open at its next call, with ``UNAUTHENTICATED``.
    """
    d = Path(ca_dir)
    key, ca = _load_ca(d, passphrase)
    at = _now(now)
    roster = read_roster(d)
    targets = [e for e in roster.entries if e.name == name and e.revoked_at is None]
    if not targets:
        raise PkiError(
            f"{name!r} holds no unrevoked certificate; `accord pki list` shows who does"
        )
    updated = _with_revoked(roster, targets, at)
    _write_crl(d, key, ca, [e for e in updated.entries if e.revoked_at], at)
    write_atomic(d / ROSTER, updated.to_bytes())
    for entry in targets:
        logger.info("revoked certificate %x of %r", entry.serial, name)
    return [dataclasses.replace(e, revoked_at=at) for e in targets]
