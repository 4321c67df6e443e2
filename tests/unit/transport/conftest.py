"""A federation CA per test, enrolled sites, and certificates from elsewhere.

Every certificate, CRL and check here runs against the test's own ``clock`` (taken
when the test starts, never when the module is imported), so no assertion depends on
how long the suite ran before the test.
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.transport import pki

PASS = b"correct horse battery"
PEM = serialization.Encoding.PEM


@pytest.fixture
def passphrase() -> bytes:
    return PASS


@pytest.fixture
def clock() -> datetime:
    """The test's reference time: certificates are issued at it, checks run at it."""
    return datetime.now(UTC)


@pytest.fixture
def ca(tmp_path: Path, clock: datetime) -> Path:
    directory = tmp_path / "ca"
    pki.init_ca(directory, federation="acme", passphrase=PASS, now=clock)
    return directory


@pytest.fixture
def enrol(ca: Path, clock: datetime) -> Callable[..., Path]:
    """Enrol a site with a CA (``ca=``, default the fixture's); return its folder.

    Certificates are issued at the test's ``clock`` unless ``now=`` says otherwise.
    """

    def _enrol(
        name: str, role: pki.Role = "participant", *, ca: Path = ca, **sign_kw
    ) -> Path:
        site = ca.parent / name
        hosts = ["localhost", "127.0.0.1"] if role == "coordinator" else []
        csr = pki.request(site, name, role=role, hosts=hosts)
        sign_kw.setdefault("now", clock)
        pki.sign(ca, csr, passphrase=PASS, role=role, **sign_kw)
        return site

    return _enrol


class Forge:
    """Certificates that did not come from the federation's CA."""

    def __init__(self, directory: Path, clock: datetime) -> None:
        self.directory = directory
        self.clock = clock

    def self_signed(self, name: str) -> Path:
        """A site folder whose certificate names itself a participant."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "participant"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme"),
            ]
        )
        cert = (
            _builder(subject, subject, key.public_key(), self.clock)
            .add_extension(_client_auth(), critical=False)
            .sign(key, hashes.SHA256())
        )
        site = self.directory / f"forged-{name}"
        site.mkdir()
        (site / pki.CERT).write_bytes(cert.public_bytes(PEM))
        (site / pki.KEY).write_bytes(_key_pem(key))
        return site

    def external_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """An organization's own CA, written to ``ext.pem``."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Group CA")])
        cert = (
            _builder(name, name, key.public_key(), self.clock)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        (self.directory / "ext.pem").write_bytes(cert.public_bytes(PEM))
        return cert, key

    def external_leaf(
        self, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str
    ) -> bytes:
        """A client certificate from an external CA: no role OU, as such CAs issue."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, ca.subject, key.public_key(), self.clock)
            .add_extension(_client_auth(), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(PEM)

    def external_crl(
        self,
        ca: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        revoked: Iterable[int],
    ) -> bytes:
        """A DER CRL from an external CA listing ``revoked`` serials."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(self.clock - timedelta(days=1))
            .next_update(self.clock + timedelta(days=30))
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(self.clock - timedelta(hours=1))
                .build()
            )
        signed = builder.sign(ca_key, hashes.SHA256())
        return signed.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def forge(tmp_path: Path, clock: datetime) -> Forge:
    return Forge(tmp_path, clock)


def _client_auth() -> x509.ExtendedKeyUsage:
    return x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    at: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - timedelta(days=1))
        .not_valid_after(at + timedelta(days=30))
    )
