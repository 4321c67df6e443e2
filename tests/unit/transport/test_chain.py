"""Path validation by cryptography.x509.verification, with accord's policies."""

from datetime import timedelta

import pytest
from cryptography import x509

from accord.transport import pki
from accord.transport.chain import chain_problem, verified_issuer


def _cert(folder, name=pki.CERT):
    return x509.load_pem_x509_certificate((folder / name).read_bytes())


@pytest.fixture
def anchors(ca):
    return [_cert(ca, pki.CA_CERT)]


def test_the_library_accepts_an_ed25519_identity_certificate_with_accords_eku(
    enrol, anchors, clock
):
    site = enrol("site-1")

    issuer = verified_issuer(
        _cert(site, pki.IDENTITY_CERT), anchors, purpose="identity", at=clock
    )

    assert issuer == anchors[0]


def test_each_certificate_passes_only_for_its_own_purpose(enrol, anchors, clock):
    site, coordinator = enrol("site-1"), enrol("coord", "coordinator")
    tls, identity = _cert(site), _cert(site, pki.IDENTITY_CERT)

    assert chain_problem(tls, anchors, purpose="client", at=clock) is None
    server = _cert(coordinator)
    assert chain_problem(server, anchors, purpose="server", at=clock) is None
    assert "extended key usage" in chain_problem(
        identity, anchors, purpose="client", at=clock
    )
    assert "not an identity certificate" in chain_problem(
        tls, anchors, purpose="identity", at=clock
    )
    assert "TLS server" in chain_problem(tls, anchors, purpose="server", at=clock)


def test_dates_are_checked_at_the_given_time_just_past_each_bound(
    enrol, anchors, clock
):
    cert = _cert(enrol("site-1", days=1))
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    tick = timedelta(seconds=1)

    assert chain_problem(cert, anchors, purpose="client", at=after) is None
    assert chain_problem(cert, anchors, purpose="client", at=before) is None
    assert chain_problem(cert, anchors, purpose="client", at=after + tick).startswith(
        "expired on"
    )
    # The CA's validity starts with the certificate's: either names the bound.
    assert "not valid before" in chain_problem(
        cert, anchors, purpose="client", at=before - tick
    )


def test_a_certificate_of_another_ca_and_a_self_signed_one_are_named(
    tmp_path, enrol, anchors, forge, clock, passphrase
):
    other = tmp_path / "other-ca"
    pki.init_ca(other, federation="other", passphrase=passphrase, now=clock)
    foreign = _cert(enrol("site-x", ca=other))
    forged = _cert(forge.self_signed("site-y"))

    assert chain_problem(foreign, anchors, purpose="client", at=clock) == (
        "was not issued by this federation's CA"
    )
    assert "self-signed" in chain_problem(forged, anchors, purpose="client", at=clock)


def test_a_ca_certificate_is_no_peer(ca, anchors, clock):
    assert chain_problem(anchors[0], anchors, purpose="client", at=clock) is not None
