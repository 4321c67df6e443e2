"""A site's side of the PKI: its private key, its request and its identity directory.

``accord pki request NAME --dir DIR`` runs :func:`request` at the site: it creates
the site's ECDSA P-256 key in ``DIR/key.pem`` (mode 0600; it never leaves the site)
and a certificate signing request ``DIR/request.csr`` for the federation's operator.
A participant's request also creates its Ed25519 identity key,
``DIR/identity-key.pem`` (0600), and asks the CA, inside the same CSR, to certify it
(:mod:`accord.transport.identity`). The operator returns ``cert.pem``, ``ca.pem``
and, for a participant, ``identity-cert.pem``, which go next to the keys;
:func:`load_identity` then reads the TLS files as the PEM bytes gRPC's
``ssl_channel_credentials`` and ``ssl_server_credentials`` take. Why P-256 and why
the key stays at the site is explained in :mod:`accord.transport.pki`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from accord.errors import MissingExtraError, PkiError
from accord.transport.identity import IDENTITY_KEY, identity_request_extension
from accord.transport.roster import CA_CERT, ROLES, Role, validate_name

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

__all__ = ["CERT", "KEY", "REQUEST", "IdentityFiles", "load_identity", "request"]

logger = logging.getLogger(__name__)

#: File names in a site's identity directory (with ``ca.pem``).
KEY = "key.pem"
CERT = "cert.pem"
REQUEST = "request.csr"

_DNS = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class IdentityFiles(NamedTuple):
    """A site's PEM files, as gRPC's ``ssl_*_credentials`` take them."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start; never replace a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise PkiError(f"{path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` in one step, so a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) readable only by its owner."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def request(
    directory: str | os.PathLike[str],
    name: str,
    *,
    role: Role,
    hosts: Sequence[str] = (),
) -> Path:
    """At a site: create its private key and a CSR in ``directory``; return the CSR.

    ``hosts`` (DNS names or IP addresses the coordinator is reached at) are
    required for, and only allowed for, the coordinator. A participant also gets
    its Ed25519 identity key, which the CSR asks the CA to certify.
    """
    d = Path(directory)
    validate_name(name)
    san = _subject_alt_name(role, hosts)
    for existing in (KEY, IDENTITY_KEY):
        if (d / existing).exists():
            raise PkiError(f"{d / existing} already exists; use an empty directory")
    make_private_dir(d)
    key = ec.generate_private_key(ec.SECP256R1())
    identity = Ed25519PrivateKey.generate() if role == "participant" else None
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        ]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    if identity is not None:
        ext = identity_request_extension(name, identity, key.public_key())
        builder = builder.add_extension(ext, critical=False)
    csr = builder.sign(key, hashes.SHA256())
    write_new(d / KEY, _private_pem(key), 0o600)
    if identity is not None:
        write_new(d / IDENTITY_KEY, _private_pem(identity), 0o600)
    write_atomic(d / REQUEST, csr.public_bytes(serialization.Encoding.PEM))
    logger.info("created the key and request of %r (%s) in %s", name, role, d)
    return d / REQUEST


def _private_pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # read in the clear (gRPC, the site); mode 0600
    )


def _subject_alt_name(
    role: Role, hosts: Sequence[str]
) -> x509.SubjectAlternativeName | None:
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if role != "coordinator":
        if hosts:
            raise PkiError("host names belong only in a coordinator's certificate")
        return None
    if not hosts:
        raise PkiError(
            "a coordinator's certificate needs the host names or IP addresses that "
            "participants dial (--host)"
        )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not _DNS.fullmatch(host):
                msg = f"{host!r} is neither a DNS name nor an IP address"
                raise PkiError(msg) from None
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def load_identity(directory: str | os.PathLike[str]) -> IdentityFiles:
    """Read a site's key, certificate and CA certificate as PEM bytes.

    Checks that the certificate was issued for the key, and warns when other users
    can read the key file.
    """
    d = Path(directory)
    if not (d / CERT).exists() and (d / REQUEST).exists():
        raise PkiError(
            f"no {CERT} in {d} yet: send {d / REQUEST} to the federation's operator "
            f"(accord pki sign) and put the {CERT} and {CA_CERT} they return in {d}"
        )
    try:
        key_pem, cert_pem, ca_pem = ((d / f).read_bytes() for f in (KEY, CERT, CA_CERT))
    except OSError as exc:
        raise PkiError(f"incomplete identity in {d}: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
        x509.load_pem_x509_certificates(ca_pem)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"unreadable identity in {d}: {exc}") from exc
    if key.public_key() != cert.public_key():
        raise PkiError(f"{d / CERT} was not issued for {d / KEY}")
    if os.stat(d / KEY).st_mode & 0o077:
        logger.warning("%s is readable by other users; chmod 600 it", d / KEY)
    return IdentityFiles(key_pem, cert_pem, ca_pem)
