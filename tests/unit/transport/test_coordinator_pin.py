"""A site's pin of its coordinator and the CRL it keeps (no network here)."""

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.errors import AuthenticationFailed, PkiError
from accord.transport import keywrap, pki
from accord.transport.coordinator_pin import (
    PIN,
    SITE_CRL,
    CoordinatorPin,
    pin_coordinator,
)

DER = serialization.Encoding.DER


@pytest.fixture
def site(enrol):
    """A participant enrolled after the coordinator: its pin and CRL 1."""
    enrol("coord", "coordinator")
    return enrol("site-1")


def _crl_der(ca) -> bytes:
    return x509.load_pem_x509_crl((ca / pki.CRL).read_bytes()).public_bytes(DER)


def _signed_crl(ca, passphrase, clock, *, number, last_update=None, key=None):
    ca_cert = x509.load_pem_x509_certificate((ca / pki.CA_CERT).read_bytes())
    key = key or keywrap.unwrap((ca / pki.CA_KEY).read_bytes(), passphrase).key
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(last_update or clock - timedelta(minutes=1))
        .next_update(clock + timedelta(days=30))
    )
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(DER)


def test_enrolment_pins_the_coordinator_and_hands_over_the_crl(ca, site):
    pinned = (site / PIN).read_bytes()

    assert pinned == (ca.parent / "coord" / pki.CERT).read_bytes()
    assert (site / SITE_CRL).read_bytes() == (ca / pki.CRL).read_bytes()
    assert CoordinatorPin(site).crl_number == 1


def test_a_site_enrolled_before_the_coordinator_gets_no_pin(enrol):
    site = enrol("site-1")

    assert not (site / PIN).exists()
    assert CoordinatorPin.load(site) is None


def test_roots_are_the_pinned_certificate_until_the_crl_revokes_it(
    ca, site, passphrase, clock
):
    pin = CoordinatorPin(site, now=lambda: clock)
    assert pin.roots() == (site / PIN).read_bytes()

    pki.revoke(ca, "coord", passphrase=passphrase, now=clock)
    verdict = pin.observe(_crl_der(ca))

    assert (verdict.outcome, verdict.number) == ("updated", 2)
    assert verdict.revoked_pins == pin.fingerprints
    with pytest.raises(AuthenticationFailed, match="accord pki pin"):
        pin.roots()


def test_an_expired_pin_is_no_root_just_past_its_end(ca, enrol, site):
    cert = x509.load_pem_x509_certificate((site / PIN).read_bytes())
    end = cert.not_valid_after_utc

    assert CoordinatorPin(site, now=lambda: end).roots()
    with pytest.raises(AuthenticationFailed, match="expired on"):
        CoordinatorPin(site, now=lambda: end + timedelta(seconds=1)).roots()


def test_the_same_crl_is_unchanged_and_an_older_one_refused(
    ca, site, passphrase, clock
):
    pin = CoordinatorPin(site, now=lambda: clock)
    first = _crl_der(ca)
    assert pin.observe(first).outcome == "unchanged"
    pki.revoke(ca, "site-1", passphrase=passphrase, now=clock)
    assert pin.observe(_crl_der(ca)).outcome == "updated"
    held = (site / SITE_CRL).read_bytes()

    verdict = pin.observe(first)

    assert verdict.outcome == "refused"
    assert "older than number 2" in verdict.reason
    assert (site / SITE_CRL).read_bytes() == held
    assert pin.crl_number == 2


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other key", "not signed by this site's CA"),
        ("no number", "no CRL number"),
        ("future", "issued in the future"),
        ("garbage", "unreadable"),
    ],
)
def test_a_bad_crl_is_refused_and_changes_nothing(
    ca, site, passphrase, clock, case, reason
):
    pin = CoordinatorPin(site, now=lambda: clock)
    held = (site / SITE_CRL).read_bytes()
    data = {
        "other key": lambda: _signed_crl(
            ca,
            passphrase,
            clock,
            number=50,
            key=ec.generate_private_key(ec.SECP256R1()),
        ),
        "no number": lambda: _signed_crl(ca, passphrase, clock, number=None),
        "future": lambda: _signed_crl(
            ca, passphrase, clock, number=50, last_update=clock + timedelta(hours=1)
        ),
        "garbage": lambda: b"\x30\x03\x02\x01\x00",
    }[case]()

    verdict = pin.observe(data)

    assert verdict.outcome == "refused"
    assert reason in verdict.reason
    assert (site / SITE_CRL).read_bytes() == held


def test_a_crl_just_inside_the_clock_skew_is_kept(ca, site, passphrase, clock):
    pin = CoordinatorPin(site, now=lambda: clock)
    data = _signed_crl(
        ca, passphrase, clock, number=7, last_update=clock + pki.SKEW - timedelta(1e-3)
    )

    assert pin.observe(data).outcome == "updated"


def test_repinning_after_a_renewal_checks_the_new_certificate(
    ca, enrol, site, passphrase, clock
):
    # The operator renews the coordinator's certificate (the old one is revoked).
    csr = pki.request(
        ca.parent / "coord-new", "coord", role="coordinator", hosts=["localhost"]
    )
    new = pki.sign(
        ca, csr, passphrase=passphrase, role="coordinator", replace=True, now=clock
    )
    new_pem = new.read_bytes()
    with pytest.raises(AuthenticationFailed):
        pin = CoordinatorPin(site, now=lambda: clock)
        pin.observe(_crl_der(ca))
        pin.roots()

    fingerprints = pin_coordinator(
        site, new_pem, crl_pem=(ca / pki.CRL).read_bytes(), now=clock
    )

    assert len(fingerprints) == 1
    assert CoordinatorPin(site, now=lambda: clock).roots() == new_pem


def test_pinning_refuses_what_is_no_current_coordinator_of_this_ca(
    ca, enrol, site, passphrase, clock, tmp_path
):
    participant = (site / pki.CERT).read_bytes()
    other = tmp_path / "other-ca"
    pki.init_ca(other, federation="other", passphrase=passphrase, now=clock)
    foreign = (enrol("x", "coordinator", ca=other) / pki.CERT).read_bytes()
    old = (site / PIN).read_bytes()
    pki.revoke(ca, "coord", passphrase=passphrase, now=clock)
    crl = (ca / pki.CRL).read_bytes()

    with pytest.raises(PkiError, match="TLS server"):
        pin_coordinator(site, participant, now=clock)
    with pytest.raises(PkiError, match="not issued by this federation's CA"):
        pin_coordinator(site, foreign, now=clock)
    with pytest.raises(PkiError, match="is revoked"):
        pin_coordinator(site, old, crl_pem=crl, now=clock)


def test_adding_a_pin_keeps_the_old_one_for_a_rollover(ca, enrol, site, clock):
    second = enrol("coord-2", "coordinator")

    fingerprints = pin_coordinator(
        site, (second / pki.CERT).read_bytes(), add=True, now=clock
    )

    assert len(fingerprints) == 2
    assert len(x509.load_pem_x509_certificates((site / PIN).read_bytes())) == 2
