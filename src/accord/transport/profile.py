"""What goes into accord's certificates: the X.509 profile of the CA and the sites.

The CA certificate has ``BasicConstraints(CA, pathlen=0)``, key usage
``keyCertSign, cRLSign`` and a subject key identifier. A site's certificate has
``BasicConstraints(not CA)``, key usage ``digitalSignature`` (ECDHE key exchange
needs nothing more), extended key usage ``clientAuth`` (participant, admin) or
``serverAuth, clientAuth`` (coordinator), the CA's key identifier and, for the
coordinator, the host names and addresses from its request. The CA builds the
subject itself, ``CN=<name>, OU=<role>, O=<federation>``, rather than copying the
request's. These are the extensions OpenSSL's strict mode and BoringSSL (gRPC) expect.

A participant's identity certificate (:mod:`accord.transport.identity`) has the same
subject and validity as its TLS certificate, an Ed25519 key, key usage
``digitalSignature`` only and extended key usage :data:`IDENTITY_USAGE` alone, so
that it authenticates secure-aggregation signatures and nothing else.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from accord.errors import MissingExtraError, PkiError
from accord.transport.roster import ROLES, Role, validate_name

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "IDENTITY_USAGE",
    "SKEW",
    "ca_certificate",
    "identity_certificate",
    "leaf_certificate",
    "read_csr",
]

logger = logging.getLogger(__name__)

#: How far back ``not_before`` is dated, so that a peer whose clock is slow accepts
#: a certificate issued moments ago.
SKEW = timedelta(minutes=5)
#: Extended key usage of identity certificates: "signs secure-aggregation messages
#: of accord" (an OID under ``2.25``, derived from a UUID: no registration needed).
IDENTITY_USAGE = x509.ObjectIdentifier("2.25.281226358730915626543468790622462333314")
_OU = NameOID.ORGANIZATIONAL_UNIT_NAME
_USAGES: dict[Role, list[x509.ObjectIdentifier]] = {
    "participant": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "admin": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "auditor": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "coordinator": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


def ca_certificate(
    key: ec.EllipticCurvePrivateKey,
    federation: str,
    federation_id: str,
    *,
    now: datetime,
    days: int,
) -> x509.Certificate:
    """The CA's self-signed certificate; it may sign end-entity certificates only."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{federation} federation CA"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, federation_id),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def leaf_certificate(
    csr: x509.CertificateSigningRequest,
    name: str,
    role: Role,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    *,
    at: datetime,
    days: int,
) -> x509.Certificate:
    """A site's certificate: its name, its role and, for a coordinator, its hosts."""
    not_after = at + timedelta(days=days)
    if not_after > ca.not_valid_after_utc:
        logger.warning("the certificate of %r will end with the CA's", name)
        not_after = ca.not_valid_after_utc
    federation = ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    subject = [
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(_OU, role),
        *(x509.NameAttribute(a.oid, str(a.value)) for a in federation),
    ]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(_USAGES[role]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    san = _csr_san(csr) if role == "coordinator" else None
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def identity_certificate(
    public_key: Ed25519PublicKey,
    tls: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
) -> x509.Certificate:
    """A participant's identity certificate, issued with its TLS certificate ``tls``.

    Same subject and validity as ``tls``; the Ed25519 key, for signatures only.
    """
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(tls.subject)
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(tls.not_valid_before_utc)
        .not_valid_after(tls.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([IDENTITY_USAGE]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def read_csr(path: Path, role: Role) -> tuple[x509.CertificateSigningRequest, str]:
    """Load a CSR, check that it fits ``role``; return it and the name it asks for."""
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    try:
        data = path.read_bytes()
        csr = (
            x509.load_pem_x509_csr(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_csr(data)
        )
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read a CSR from {path}: {exc}") from exc
    if not csr.is_signature_valid:
        raise PkiError(f"the signature of {path} does not verify; ask for a new one")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise PkiError(f"{path} must name exactly one site (CN)")
    name = validate_name(str(names[0].value))
    units = {str(a.value) for a in csr.subject.get_attributes_for_oid(_OU)}
    claimed = units & set(ROLES)
    if claimed and claimed != {role}:
        raise PkiError(
            f"{path} asks for role {', '.join(sorted(claimed))}, not {role!r}; sign "
            "it with the role it asks for, or ask the site for a new request"
        )
    _check_public_key(csr.public_key(), path)
    if role == "coordinator" and _csr_san(csr) is None:
        raise PkiError(
            f"{path} names no hosts, which a coordinator's certificate needs; "
            "ask for a new request made with --host"
        )
    return csr, name


def _check_public_key(key: object, path: Path) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in ("secp256r1", "secp384r1"):
            return
    elif isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return
    raise PkiError(f"{path} has a key that TLS peers may refuse; use ECDSA P-256")


def _csr_san(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    kept = [n for n in san if isinstance(n, (x509.DNSName, x509.IPAddress))]
    return x509.SubjectAlternativeName(kept) if kept else None


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
