"""Ed25519 identity certificates: issued at enrolment, checked by coordinator, site."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import ExtendedKeyUsageOID

from accord.errors import AuthenticationFailed, PkiError
from accord.transport import keywrap, pki
from accord.transport.identity import (
    KEY_REQUEST,
    IdentityBook,
    identity_request_extension,
    load_signing_identity,
    requested_identity_key,
    roster_keys,
    verify_presented,
)
from accord.transport.profile import IDENTITY_USAGE
from accord.transport.trust import TrustStore

DER = serialization.Encoding.DER


def identity_der(site) -> bytes:
    return load_signing_identity(site).certificate


def ca_pem(ca) -> bytes:
    return (ca / pki.CA_CERT).read_bytes()


def test_a_participant_is_enrolled_with_an_identity_key_and_certificate(ca, enrol):
    site = enrol("site-1")

    signing = load_signing_identity(site)
    cert = x509.load_der_x509_certificate(signing.certificate)
    tls = x509.load_pem_x509_certificate((site / pki.CERT).read_bytes())

    assert (site / pki.IDENTITY_KEY).stat().st_mode & 0o777 == 0o600
    assert signing.name == "site-1" and len(signing.public_key) == 32
    assert isinstance(cert.public_key(), Ed25519PublicKey)
    assert cert.subject == tls.subject
    assert cert.not_valid_after_utc == tls.not_valid_after_utc
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_agreement
    assert not usage.key_cert_sign and not usage.content_commitment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [IDENTITY_USAGE]
    entry = pki.read_roster(ca).current("site-1")
    assert entry.identity_serial == cert.serial_number


@pytest.mark.parametrize("role", ["admin", "coordinator"])
def test_only_participants_get_an_identity_key(ca, enrol, role):
    site = enrol(f"the-{role}", role)

    assert not (site / pki.IDENTITY_KEY).exists()
    assert not (site / pki.IDENTITY_CERT).exists()
    assert load_signing_identity(site) is None


def test_the_coordinator_accepts_a_valid_identity_certificate(ca, enrol):
    site = enrol("site-1")

    accepted = verify_presented(identity_der(site), TrustStore.load(ca), name="site-1")

    assert accepted.name == "site-1"
    assert accepted.public_key == load_signing_identity(site).public_key


def test_an_identity_certificate_of_another_name_is_refused(ca, enrol):
    site = enrol("site-1")
    enrol("site-2")

    with pytest.raises(AuthenticationFailed, match="TLS certificate proved 'site-2'"):
        verify_presented(identity_der(site), TrustStore.load(ca), name="site-2")


def test_an_identity_certificate_of_another_ca_is_refused(
    ca, enrol, tmp_path, passphrase
):
    other = tmp_path / "elsewhere" / "ca"
    pki.init_ca(other, federation="other", passphrase=passphrase)
    site = enrol("site-1", ca=other)

    with pytest.raises(AuthenticationFailed, match="not issued by this federation"):
        verify_presented(identity_der(site), TrustStore.load(ca), name="site-1")


def test_a_revoked_identity_certificate_is_refused_by_crl_and_roster(
    ca, enrol, passphrase
):
    site = enrol("site-1")
    der = identity_der(site)
    pki.revoke(ca, "site-1", passphrase=passphrase)
    crl = x509.load_pem_x509_crl((ca / pki.CRL).read_bytes())

    with pytest.raises(AuthenticationFailed, match="was revoked"):
        verify_presented(der, TrustStore.load(ca), name="site-1")
    serial = x509.load_der_x509_certificate(der).serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_an_expired_identity_certificate_is_refused(ca, enrol, clock):
    site = enrol("site-1", days=1)
    later = clock + timedelta(days=3)

    with pytest.raises(AuthenticationFailed, match="expired"):
        verify_presented(
            identity_der(site), TrustStore.load(ca), name="site-1", now=later
        )


def test_a_tls_certificate_does_not_pass_for_an_identity_certificate(ca, enrol):
    site = enrol("site-1")
    tls = x509.load_pem_x509_certificate((site / pki.CERT).read_bytes())

    with pytest.raises(AuthenticationFailed, match="extended key usage"):
        verify_presented(tls.public_bytes(DER), TrustStore.load(ca), name="site-1")


def test_an_identity_certificate_missing_from_the_roster_is_refused(ca, enrol):
    site = enrol("site-1")
    (ca / pki.ROSTER).write_bytes(
        pki.Roster(
            pki.read_roster(ca).federation, pki.read_roster(ca).federation_id
        ).to_bytes()
    )

    with pytest.raises(AuthenticationFailed, match="not on the roster"):
        verify_presented(identity_der(site), TrustStore.load(ca), name="site-1")


def test_an_old_roster_without_identity_fields_still_reads(ca, enrol):
    enrol("site-1")
    doc = pki.read_roster(ca)
    old = pki.Roster(
        doc.federation,
        doc.federation_id,
        tuple(
            pki.RosterEntry(
                e.name, e.role, e.serial, e.fingerprint, e.issued_at, e.not_after
            )
            for e in doc.entries
        ),
    )

    again = pki.Roster.from_bytes(old.to_bytes())

    assert b"identity" not in old.to_bytes()
    assert again.entries[0].identity_serial is None


# The request's proof of possession.


def _csr(name, tls_key, extension):
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .add_extension(extension, critical=False)
        .sign(tls_key, hashes.SHA256())
    )


def test_the_request_proves_possession_of_the_identity_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    tls = ec.generate_private_key(ec.SECP256R1())
    identity = Ed25519PrivateKey.generate()
    good = _csr(
        "site-1", tls, identity_request_extension("site-1", identity, tls.public_key())
    )
    lifted = _csr(  # the extension of another request, under another TLS key
        "site-1",
        ec.generate_private_key(ec.SECP256R1()),
        identity_request_extension("site-1", identity, tls.public_key()),
    )
    renamed = _csr(
        "site-2", tls, identity_request_extension("site-1", identity, tls.public_key())
    )

    key = requested_identity_key(good, "site-1", source="good")
    assert key.public_bytes_raw() == identity.public_key().public_bytes_raw()
    for bad in (lifted, renamed):
        name = bad.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        with pytest.raises(PkiError, match="no valid proof"):
            requested_identity_key(bad, name, source="bad")


def test_a_malformed_identity_request_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ec

    tls = ec.generate_private_key(ec.SECP256R1())
    csr = _csr("site-1", tls, x509.UnrecognizedExtension(KEY_REQUEST, b"\x30\x00"))

    with pytest.raises(PkiError, match="malformed"):
        requested_identity_key(csr, "site-1", source="x.csr")


def test_a_request_without_identity_key_gets_a_tls_certificate_only(
    ca, passphrase, tmp_path
):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")]))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "old" / "request.csr"
    path.parent.mkdir()
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))

    cert = pki.sign(ca, path, passphrase=passphrase, role="participant")

    assert cert.exists() and not (cert.parent / pki.IDENTITY_CERT).exists()
    assert pki.read_roster(ca).current("old").identity_serial is None


# At the site.


@pytest.fixture
def roster(ca, enrol):
    return {name: enrol(name) for name in ("site-1", "site-2", "site-3")}


def test_a_site_takes_the_roster_keys_from_the_certificates(ca, roster):
    own = load_signing_identity(roster["site-2"])

    keys = roster_keys(
        [identity_der(s) for s in roster.values()],
        roster=sorted(roster),
        ca_pem=ca_pem(ca),
        own=own,
    )

    assert keys == {n: load_signing_identity(s).public_key for n, s in roster.items()}


def test_a_site_refuses_a_certificate_of_another_ca(
    ca, roster, enrol, tmp_path, passphrase
):
    other = tmp_path / "elsewhere" / "ca"
    pki.init_ca(other, federation="other", passphrase=passphrase)
    stranger = enrol("site-3", ca=other)
    ders = [identity_der(roster["site-1"]), identity_der(roster["site-2"])]

    with pytest.raises(AuthenticationFailed, match="'site-3' was not issued"):
        roster_keys(
            [*ders, identity_der(stranger)],
            roster=sorted(roster),
            ca_pem=ca_pem(ca),
            own=load_signing_identity(roster["site-1"]),
        )


@pytest.mark.parametrize(
    ("ders", "members", "problem"),
    [
        (["site-1", "site-2"], ["site-1", "site-2", "site-3"], "no identity cert"),
        (["site-1", "site-1", "site-2"], ["site-1", "site-2", "site-3"], "twice"),
        (["site-1", "site-3"], ["site-1", "site-2"], "no member of the round"),
        (["site-2", "site-3"], ["site-2", "site-3"], "not on the round's roster"),
    ],
)
def test_a_site_refuses_an_incomplete_or_padded_roster(
    ca, roster, ders, members, problem
):
    with pytest.raises(AuthenticationFailed, match=problem):
        roster_keys(
            [identity_der(roster[d]) for d in ders],
            roster=members,
            ca_pem=ca_pem(ca),
            own=load_signing_identity(roster["site-1"]),
        )


def test_a_site_refuses_a_roster_that_gives_it_another_key(ca, roster, tmp_path):
    own = load_signing_identity(roster["site-1"])
    impostor = own.__class__(own.name, Ed25519PrivateKey.generate(), own.certificate)

    with pytest.raises(AuthenticationFailed, match="another key than this site's"):
        roster_keys(
            [identity_der(s) for s in roster.values()],
            roster=sorted(roster),
            ca_pem=ca_pem(ca),
            own=impostor,
        )


def test_a_site_refuses_a_certificate_signed_outside_the_profile(
    ca, roster, passphrase
):
    # Signed by the right CA key, but a TLS-style certificate for an Ed25519 key.
    ca_cert = x509.load_pem_x509_certificate(ca_pem(ca))
    ca_key = keywrap.unwrap((ca / pki.CA_KEY).read_bytes(), passphrase).key
    key = Ed25519PrivateKey.generate()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "site-3")])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ders = [identity_der(roster["site-1"]), identity_der(roster["site-2"])]

    with pytest.raises(AuthenticationFailed, match="key usage"):
        roster_keys(
            [*ders, cert.public_bytes(DER)],
            roster=sorted(roster),
            ca_pem=ca_pem(ca),
            own=load_signing_identity(roster["site-1"]),
        )


# Loading a site's identity key.


def test_half_an_identity_is_an_error(ca, enrol):
    site = enrol("site-1")
    (site / pki.IDENTITY_CERT).unlink()

    with pytest.raises(PkiError, match="no identity-cert.pem"):
        load_signing_identity(site)


def test_an_identity_certificate_for_another_key_is_an_error(ca, enrol):
    site, other = enrol("site-1"), enrol("site-2")
    (site / pki.IDENTITY_CERT).write_bytes((other / pki.IDENTITY_CERT).read_bytes())

    with pytest.raises(PkiError, match="was not issued for"):
        load_signing_identity(site)


# The coordinator's book.


def test_the_book_answers_keys_of_certificates_that_still_hold(ca, enrol, passphrase):
    trust = TrustStore.load(ca)
    book = IdentityBook()
    for name in ("site-1", "site-2"):
        der = identity_der(enrol(name))
        book.present(
            name,
            verify_presented(der, trust, name=name),
            lambda der=der, name=name: verify_presented(der, trust, name=name),
        )
    book.present("site-3", None)
    pki.revoke(ca, "site-2", passphrase=passphrase)

    keys = book.keys(["site-1", "site-2", "site-3"])

    assert list(keys) == ["site-1"]
    assert len(book.certificates(["site-1", "site-2", "site-3"])) == 2
