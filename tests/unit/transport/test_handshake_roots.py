"""What the coordinator's TLS handshake trusts: exactly the roster's active callers."""

import json
import logging
from datetime import timedelta

import pytest
from cryptography import x509

from accord.transport import pki
from accord.transport.trust import TrustStore

from .conftest import PASS


def _names(roots) -> set[str]:
    """The common names of the certificates the roots hold."""
    return {
        c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        for c in x509.load_pem_x509_certificates(roots.pem)
    }


def test_the_handshake_trusts_exactly_the_active_participants_and_admins(ca, enrol):
    for site in ("site-a", "site-b", "site-c"):
        enrol(site)
    enrol("ops", role="admin")
    enrol("coordinator", role="coordinator")
    pki.revoke(ca, "site-c", passphrase=PASS)

    roots = TrustStore.load(ca).handshake_roots()

    assert set(roots.pinned) == {"site-a", "site-b", "ops"}
    assert _names(roots) == {"site-a", "site-b", "ops"}  # not the CA, not site-c
    assert roots.reason is None


@pytest.mark.parametrize(
    "delay", [timedelta(0), timedelta(minutes=10), timedelta(hours=6)]
)
def test_an_expired_certificate_leaves_the_roots_when_it_expires(
    ca, enrol, clock, delay
):
    # ``delay`` plays a slow suite: the test runs long after the module was
    # collected. Issue and check both read the test's clock, so nothing moves.
    at = clock + delay
    enrol("site-a", now=at)
    enrol("site-short", days=1, now=at)
    trust = TrustStore.load(ca)

    now = trust.handshake_roots(at)
    later = trust.handshake_roots(at + timedelta(days=2))

    assert set(now.pinned) == {"site-a", "site-short"}
    assert now.until is not None
    assert at + timedelta(days=1) - timedelta(minutes=10) <= now.until
    assert now.until <= at + timedelta(days=1, minutes=5)
    assert set(later.pinned) == {"site-a"}


def test_the_roots_follow_the_roster_as_it_changes(ca, enrol):
    enrol("site-a")
    trust = TrustStore.load(ca)
    first = trust.handshake_roots()
    assert trust.handshake_roots() is first  # cached while nothing changed

    enrol("site-b")
    grown = trust.handshake_roots()
    pki.revoke(ca, "site-a", passphrase=PASS)
    shrunk = trust.handshake_roots()

    assert set(grown.pinned) == {"site-a", "site-b"}
    assert set(shrunk.pinned) == {"site-b"}


def test_a_roster_written_without_certificates_falls_back_to_the_ca(ca, enrol):
    enrol("site-a")
    roster = ca / pki.ROSTER
    doc = json.loads(roster.read_text())
    for entry in doc["certificates"]:
        del entry["certificate"]
    roster.write_text(json.dumps(doc))

    roots = TrustStore.load(ca).handshake_roots()

    assert roots.pinned == ()
    assert roots.pem == (ca / pki.CA_CERT).read_bytes()
    assert "roster without certificates" in (roots.reason or "")


def test_an_allow_list_trusts_the_ca_at_the_handshake(ca, enrol, tmp_path):
    enrol("site-a")
    names = tmp_path / "allowed.txt"
    names.write_text("site-a\n")

    roots = TrustStore.from_files(
        ca_cert=ca / pki.CA_CERT, allowed_names=names
    ).handshake_roots()

    assert roots.pinned == () and "no roster" in (roots.reason or "")


def test_a_certificate_swapped_into_the_roster_is_not_trusted(ca, enrol, caplog):
    enrol("site-a")
    enrol("site-b")
    roster = ca / pki.ROSTER
    doc = json.loads(roster.read_text())
    a, b = doc["certificates"]
    a["certificate"], b["certificate"] = b["certificate"], a["certificate"]
    roster.write_text(json.dumps(doc))

    with caplog.at_level(logging.ERROR, logger="accord.transport.pinning"):
        roots = TrustStore.load(ca).handshake_roots()

    # Neither entry's certificate matches its fingerprint: neither is trusted, and
    # with nothing left to pin the handshake trusts the CA (the per-call check
    # then refuses both, as their fingerprints do not match the roster's).
    assert roots.pinned == ()
    assert "not the one its fingerprint names" in caplog.text


def test_a_certificate_of_another_ca_in_the_roster_is_not_trusted(
    ca, enrol, tmp_path, caplog
):
    enrol("site-a")
    enrol("site-b")
    other = tmp_path / "other-ca"
    pki.init_ca(other, federation="acme", passphrase=PASS)
    foreign = (enrol("site-x", ca=other) / pki.CERT).read_text()
    foreign_cert = x509.load_pem_x509_certificate(foreign.encode())
    roster = ca / pki.ROSTER
    doc = json.loads(roster.read_text())
    entry = next(e for e in doc["certificates"] if e["name"] == "site-b")
    entry["certificate"] = foreign
    entry["serial"] = f"{foreign_cert.serial_number:x}"
    entry["fingerprint"] = pki.fingerprint(foreign_cert)
    roster.write_text(json.dumps(doc))

    with caplog.at_level(logging.ERROR, logger="accord.transport.pinning"):
        roots = TrustStore.load(ca).handshake_roots()

    assert roots.pinned == ("site-a",)
    assert "not signed by the trusted CA" in caplog.text
