"""The federation's PKI: issuing, revoking and verifying certificates."""

import dataclasses
import json
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.errors import AuthenticationFailed, PkiError
from accord.transport import keywrap, pki
from accord.transport.trust import TrustStore, verify_peer

DER = serialization.Encoding.DER


def cert_of(site: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((site / pki.CERT).read_bytes())


def ext(cert: x509.Certificate, kind):
    return cert.extensions.get_extension_for_class(kind)


def test_full_flow_issues_a_certificate_the_federation_accepts(ca, enrol):
    site = enrol("site-1")

    who = verify_peer((site / pki.CERT).read_bytes(), TrustStore.load(ca))

    (entry,) = pki.read_roster(ca).entries
    assert who == pki.Identity("site-1", "participant", entry.serial, entry.fingerprint)
    assert cert_of(site).serial_number == entry.serial
    assert (site / pki.CA_CERT).read_bytes() == (ca / pki.CA_CERT).read_bytes()
    assert (ca / "issued" / f"{entry.serial:x}.pem").exists()
    assert pki.load_identity(site).cert_pem == (site / pki.CERT).read_bytes()


def test_ca_certificate_profile(ca):
    info = pki.ca_info(ca)
    cert = x509.load_pem_x509_certificate((ca / pki.CA_CERT).read_bytes())

    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert constraints.value.path_length == 0
    usage = ext(cert, x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert ext(cert, x509.SubjectKeyIdentifier).value.digest
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    fed_id = subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert (info.federation, info.federation_id) == ("acme", fed_id)
    assert pki.read_roster(ca).federation_id == fed_id


def test_participant_certificate_profile(ca, enrol):
    cert = cert_of(enrol("site-1"))
    ca_cert = x509.load_pem_x509_certificate((ca / pki.CA_CERT).read_bytes())

    assert ext(cert, x509.BasicConstraints).critical
    assert not ext(cert, x509.BasicConstraints).value.ca
    assert ext(cert, x509.KeyUsage).value.digital_signature
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert (
        ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(ca_cert, x509.SubjectKeyIdentifier).value.digest
    )
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert [a.value for a in ou] == ["participant"]
    assert cert.public_key().curve.name == "secp256r1"
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.SubjectAlternativeName)


def test_coordinator_certificate_has_server_usage_and_hosts(ca, enrol):
    site = enrol("hub", role="coordinator")
    cert = cert_of(site)

    usages = set(ext(cert, x509.ExtendedKeyUsage).value)
    san = ext(cert, x509.SubjectAlternativeName).value
    who = verify_peer(
        (site / pki.CERT).read_bytes(),
        TrustStore.load(ca),
        usage="server",
        roles={"coordinator"},
    )

    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert who.role == "coordinator"


def test_a_participant_certificate_cannot_serve(ca, enrol):
    site = enrol("site-1")

    with pytest.raises(AuthenticationFailed, match="TLS server authentication"):
        verify_peer((site / pki.CERT).read_bytes(), TrustStore.load(ca), usage="server")


def test_admin_role_is_needed_where_asked(ca, enrol):
    trust = TrustStore.load(ca)
    admin = enrol("ops", role="admin")
    site = enrol("site-1")

    who = verify_peer((admin / pki.CERT).read_bytes(), trust, roles={"admin"})

    assert who.role == "admin"
    with pytest.raises(AuthenticationFailed, match="has role 'participant'"):
        verify_peer((site / pki.CERT).read_bytes(), trust, roles={"admin"})


def test_private_keys_are_readable_by_their_owner_only(ca, enrol):
    site = enrol("site-1")

    for key in (ca / pki.CA_KEY, site / pki.KEY):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_ca_key_is_encrypted_at_rest(ca, passphrase):
    data = (ca / pki.CA_KEY).read_bytes()

    assert b"PRIVATE KEY" not in data
    with pytest.raises(PkiError, match="passphrase does not open"):
        keywrap.unwrap(data, b"not the passphrase")
    assert not keywrap.unwrap(data, passphrase).legacy


def test_wrong_passphrase_is_a_clear_error(ca):
    csr = pki.request(ca.parent / "site-1", "site-1", role="participant")

    with pytest.raises(PkiError, match="passphrase does not open the CA key"):
        pki.sign(ca, csr, passphrase=b"wrong passphrase", role="participant")
    assert pki.read_roster(ca).entries == ()


def test_init_refuses_to_replace_a_ca_or_take_a_short_passphrase(
    ca, tmp_path, passphrase
):
    before = (ca / pki.CA_KEY).read_bytes()

    with pytest.raises(PkiError, match="already holds a CA"):
        pki.init_ca(ca, federation="acme", passphrase=passphrase)
    with pytest.raises(PkiError, match="at least 12 characters"):
        pki.init_ca(tmp_path / "other", federation="acme", passphrase=b"short")
    assert (ca / pki.CA_KEY).read_bytes() == before


def test_duplicate_name_is_refused_unless_replaced(ca, enrol, passphrase):
    trust = TrustStore.load(ca)
    old = enrol("site-1")
    csr = pki.request(ca.parent / "site-1-new", "site-1", role="participant")

    with pytest.raises(PkiError, match="already holds an active certificate"):
        pki.sign(ca, csr, passphrase=passphrase, role="participant")
    new = pki.sign(ca, csr, passphrase=passphrase, role="participant", replace=True)

    assert verify_peer(new.read_bytes(), trust).name == "site-1"
    with pytest.raises(AuthenticationFailed, match="revoked"):
        verify_peer((old / pki.CERT).read_bytes(), trust)
    assert [e.status() for e in pki.read_roster(ca).entries] == ["revoked", "active"]


def test_a_new_site_joins_without_reissuing_anyone(ca, enrol):
    trust = TrustStore.load(ca)  # loaded before site-2 existed
    first = enrol("site-1")
    before = (first / pki.CERT).read_bytes()

    second = enrol("site-2")

    assert (first / pki.CERT).read_bytes() == before
    assert verify_peer(before, trust).name == "site-1"
    assert verify_peer((second / pki.CERT).read_bytes(), trust).name == "site-2"


def test_revoke_takes_effect_on_the_next_verification(ca, enrol, passphrase):
    trust = TrustStore.load(ca)
    site = enrol("site-3")
    pem = (site / pki.CERT).read_bytes()
    verify_peer(pem, trust)

    (revoked,) = pki.revoke(ca, "site-3", passphrase=passphrase)

    with pytest.raises(AuthenticationFailed, match="'site-3' was revoked on") as err:
        verify_peer(pem, trust)
    assert err.value.name == "site-3"
    assert isinstance(err.value, PermissionError)
    crl = x509.load_pem_x509_crl((ca / pki.CRL).read_bytes())
    ca_key = x509.load_pem_x509_certificate(
        (ca / pki.CA_CERT).read_bytes()
    ).public_key()
    assert crl.is_signature_valid(ca_key)
    assert crl.get_revoked_certificate_by_serial_number(revoked.serial) is not None
    assert revoked.serial == cert_of(site).serial_number


def test_the_crl_alone_refuses_a_revoked_certificate(ca, enrol, passphrase):
    site = enrol("site-3")
    trust = TrustStore.from_files(ca_cert=ca / pki.CA_CERT, crl=ca / pki.CRL)

    pki.revoke(ca, "site-3", passphrase=passphrase)

    with pytest.raises(AuthenticationFailed, match="revoked"):
        verify_peer((site / pki.CERT).read_bytes(), trust)


def test_revoking_an_unknown_name_is_a_clear_error(ca, passphrase):
    with pytest.raises(PkiError, match="holds no unrevoked certificate"):
        pki.revoke(ca, "nobody", passphrase=passphrase)


def test_expired_certificate_is_refused(ca, enrol, clock):
    site = enrol("site-old", days=30, now=clock - timedelta(days=400))

    with pytest.raises(AuthenticationFailed, match="'site-old' expired on"):
        verify_peer((site / pki.CERT).read_bytes(), TrustStore.load(ca))
    assert cert_of(site).not_valid_after_utc < clock
    assert pki.read_roster(ca).entries[0].status() == "expired"


def test_self_signed_certificate_is_refused(ca, tmp_path, forge):
    pem = (forge.self_signed("site-1") / pki.CERT).read_bytes()

    with pytest.raises(AuthenticationFailed, match="self-signed"):
        verify_peer(pem, TrustStore.load(ca))


def test_certificate_from_another_federation_is_refused(
    ca, tmp_path, enrol, passphrase
):
    other = tmp_path / "other" / "ca"
    pki.init_ca(other, federation="acme", passphrase=passphrase)  # same name, other CA
    site = enrol("site-1", ca=other)

    with pytest.raises(AuthenticationFailed, match="not issued by this federation"):
        verify_peer((site / pki.CERT).read_bytes(), TrustStore.load(ca))


def test_certificate_missing_from_the_roster_is_refused(ca, enrol):
    site = enrol("site-1")
    roster = pki.read_roster(ca)
    (ca / pki.ROSTER).write_bytes(dataclasses.replace(roster, entries=()).to_bytes())

    with pytest.raises(AuthenticationFailed, match="not on the roster"):
        verify_peer((site / pki.CERT).read_bytes(), TrustStore.load(ca))


def test_roster_is_reloaded_when_it_changes(ca, enrol):
    site = enrol("site-1")
    pem = (site / pki.CERT).read_bytes()
    trust = TrustStore.load(ca)
    verify_peer(pem, trust)
    roster = pki.read_roster(ca)

    (ca / pki.ROSTER).write_bytes(dataclasses.replace(roster, entries=()).to_bytes())
    with pytest.raises(AuthenticationFailed, match="not on the roster"):
        verify_peer(pem, trust)
    (ca / pki.ROSTER).write_bytes(roster.to_bytes())

    assert verify_peer(pem, trust).name == "site-1"


def test_a_tampered_crl_fails_closed(ca, tmp_path, enrol, passphrase):
    site = enrol("site-1")
    trust = TrustStore.load(ca)
    other = tmp_path / "other"
    pki.init_ca(other, federation="acme", passphrase=passphrase)

    (ca / pki.CRL).write_bytes((other / pki.CRL).read_bytes())

    with pytest.raises(PkiError, match="not signed by the trusted CA"):
        verify_peer((site / pki.CERT).read_bytes(), trust)


def test_a_roster_of_another_federation_is_refused(ca, tmp_path, passphrase):
    other = tmp_path / "other"
    pki.init_ca(other, federation="acme", passphrase=passphrase)
    (ca / pki.ROSTER).write_bytes((other / pki.ROSTER).read_bytes())

    with pytest.raises(PkiError, match="belongs to federation"):
        TrustStore.load(ca)


def test_external_ca_with_an_allow_list(tmp_path, forge):
    ca_cert, ca_key = forge.external_ca()
    member = forge.external_leaf(ca_cert, ca_key, "hospital-a")
    outsider = forge.external_leaf(ca_cert, ca_key, "hospital-z")
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("# who may join\nhospital-a\n\nhospital-b  # joins later\n")
    trust = TrustStore.from_files(ca_cert=tmp_path / "ext.pem", allowed_names=allowed)

    who = verify_peer(member, trust)

    assert (who.name, who.role) == ("hospital-a", "participant")
    with pytest.raises(AuthenticationFailed, match="not on the federation's allow"):
        verify_peer(outsider, trust)
    assert trust.ca_pem == ca_cert.public_bytes(serialization.Encoding.PEM)


def test_external_ca_allow_list_and_crl_are_reloaded(tmp_path, forge):
    ca_cert, ca_key = forge.external_ca()
    pem = forge.external_leaf(ca_cert, ca_key, "hospital-a")
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("hospital-b\n")
    crl_path = tmp_path / "ext.crl"
    crl_path.write_bytes(forge.external_crl(ca_cert, ca_key, ()))
    trust = TrustStore.from_files(
        ca_cert=tmp_path / "ext.pem", crl=crl_path, allowed_names=allowed
    )
    with pytest.raises(AuthenticationFailed, match="allow-list"):
        verify_peer(pem, trust)

    allowed.write_text("hospital-a\nhospital-b\n")
    assert verify_peer(pem, trust).name == "hospital-a"

    serial = x509.load_pem_x509_certificate(pem).serial_number
    crl_path.write_bytes(forge.external_crl(ca_cert, ca_key, (serial,)))
    with pytest.raises(AuthenticationFailed, match="revoked"):
        verify_peer(pem, trust)


def test_external_ca_with_a_name_list(tmp_path, forge):
    ca_cert, ca_key = forge.external_ca()
    pem = forge.external_leaf(ca_cert, ca_key, "hospital-a")

    trust = TrustStore.from_files(
        ca_cert=tmp_path / "ext.pem", allowed_names=["hospital-a"]
    )

    assert verify_peer(pem, trust).name == "hospital-a"


@pytest.mark.parametrize("name", ["", "a/b", "x" * 65, "tab\tname", "-lead", "é"])
def test_invalid_names_are_refused(tmp_path, name):
    with pytest.raises(PkiError, match="invalid name"):
        pki.request(tmp_path / "site", name, role="participant")
    assert not (tmp_path / "site" / pki.KEY).exists()


def test_hosts_belong_to_the_coordinator_only(tmp_path):
    with pytest.raises(PkiError, match="needs the host names"):
        pki.request(tmp_path / "a", "hub", role="coordinator")
    with pytest.raises(PkiError, match="only in a coordinator"):
        pki.request(tmp_path / "b", "site-1", role="participant", hosts=["x.org"])
    with pytest.raises(PkiError, match="neither a DNS name nor an IP"):
        pki.request(tmp_path / "c", "hub", role="coordinator", hosts=["bad host"])


def test_request_never_replaces_a_key(tmp_path):
    pki.request(tmp_path / "site", "site-1", role="participant")
    key = (tmp_path / "site" / pki.KEY).read_bytes()

    with pytest.raises(PkiError, match="already exists"):
        pki.request(tmp_path / "site", "site-1", role="participant")
    assert (tmp_path / "site" / pki.KEY).read_bytes() == key


def test_sign_refuses_a_role_the_request_did_not_ask_for(ca, passphrase):
    csr = pki.request(ca.parent / "site-1", "site-1", role="participant")

    with pytest.raises(PkiError, match="asks for role participant, not 'admin'"):
        pki.sign(ca, csr, passphrase=passphrase, role="admin")


def test_sign_refuses_a_tampered_request(ca, passphrase):
    csr = pki.request(ca.parent / "site-1", "site-1", role="participant")
    der = bytearray(x509.load_pem_x509_csr(csr.read_bytes()).public_bytes(DER))
    der[-1] ^= 0x01
    csr.write_bytes(bytes(der))

    with pytest.raises(PkiError, match="does not verify"):
        pki.sign(ca, csr, passphrase=passphrase, role="participant")


def test_load_identity_explains_a_missing_certificate(tmp_path):
    pki.request(tmp_path / "site", "site-1", role="participant")

    with pytest.raises(PkiError, match="send .*request.csr to the federation"):
        pki.load_identity(tmp_path / "site")


def test_load_identity_refuses_a_certificate_for_another_key(ca, enrol):
    site = enrol("site-1")
    other = enrol("site-2")
    (site / pki.CERT).write_bytes((other / pki.CERT).read_bytes())

    with pytest.raises(PkiError, match="was not issued for"):
        pki.load_identity(site)


def test_roster_file_is_readable_json(ca, enrol):
    site = enrol("site-1")

    doc = json.loads((ca / pki.ROSTER).read_text())

    assert doc["federation"] == "acme"
    (entry,) = doc["certificates"]
    assert set(entry) == {
        "name",
        "role",
        "serial",
        "fingerprint",
        "issued_at",
        "not_after",
        "revoked_at",
        "identity_serial",  # a participant's identity certificate, issued with it
        "identity_fingerprint",
        "certificate",  # the PEM itself: the coordinator's handshake trusts it
    }
    assert entry["certificate"].encode() == (site / pki.CERT).read_bytes()
    assert entry["revoked_at"] is None


def test_the_pki_imports_no_grpc():
    code = (
        "import sys, accord.transport.pki, accord.transport.trust\n"
        "print(','.join(m for m in ('grpc', 'typer', 'torch') if m in sys.modules))"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert out.stdout.strip() == ""


def test_sign_creates_the_out_folder_before_the_roster_records_anything(ca, passphrase):
    csr = pki.request(ca.parent / "inbox", "site-1", role="participant")
    out = ca.parent / "outbox" / "site-1" / "cert.pem"

    issued = pki.sign(ca, csr, passphrase=passphrase, role="participant", out=out)

    assert issued == out and out.is_file()
    assert (out.parent / pki.CA_CERT).read_bytes() == (ca / pki.CA_CERT).read_bytes()
    assert [e.name for e in pki.read_roster(ca).entries] == ["site-1"]
