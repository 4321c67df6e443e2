"""Where the dashboard may listen, and the auditor certificates it admits."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.dashboard.server import TlsFiles, check_binding, is_loopback, listen
from accord.errors import ConfigError

runner = CliRunner()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]
)
def test_loopback_addresses(host):
    assert is_loopback(host)
    check_binding(host, None)  # served in the clear: only this machine reaches it


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.org", ""])
def test_any_other_address_needs_tls(host, tmp_path):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="without TLS.*mutual TLS"):
        check_binding(host, None)
    check_binding(host, TlsFiles(tmp_path, tmp_path))


def test_the_command_refuses_a_public_address_without_tls(tmp_path):
    result = runner.invoke(
        app, ["dashboard", "--dir", str(tmp_path / "runs"), "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2, result.output
    assert "refusing to serve the dashboard on 0.0.0.0 without TLS" in result.output
    assert not (tmp_path / "runs").exists()  # nothing opened before the refusal


def test_the_command_needs_both_halves_of_mutual_tls(tmp_path):
    result = runner.invoke(
        app,
        ["dashboard", "--dir", str(tmp_path), "--host", "0.0.0.0", "--pki", "x"],
    )
    assert result.exit_code == 2, result.output
    assert "needs both --pki" in result.output


def test_the_pki_issues_an_auditor_certificate(tmp_path, monkeypatch):
    pytest.importorskip("cryptography")
    from cryptography import x509

    from accord.cli.pki import PASSPHRASE_ENV
    from accord.transport.roster import certificate_role
    from accord.transport.trust import TrustStore, verify_peer

    monkeypatch.setenv(PASSPHRASE_ENV, "auditor test passphrase")
    ca, who = tmp_path / "ca", tmp_path / "audit"
    steps = [
        ["pki", "init", str(ca), "--federation", "dash"],
        ["pki", "request", "audit-office", "--dir", str(who), "--role", "auditor"],
        ["pki", "sign", str(who / "request.csr"), "--ca", str(ca), "--role", "auditor"],
    ]
    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, result.output
    pem = (who / "cert.pem").read_bytes()
    assert certificate_role(x509.load_pem_x509_certificate(pem)) == "auditor"
    assert not (who / "identity-key.pem").exists()  # only sites hold one
    identity = verify_peer(pem, TrustStore.load(ca), roles=("auditor",))
    assert (identity.name, identity.role) == ("audit-office", "auditor")
    listed = runner.invoke(app, ["pki", "list", "--ca", str(ca)])
    assert "auditor" in listed.output


def test_a_port_in_use_is_one_clear_error():
    with listen("127.0.0.1", 0) as held:
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen("127.0.0.1", port)


def test_the_command_does_not_create_a_store_where_there_is_none(tmp_path):
    result = runner.invoke(app, ["dashboard", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 4, result.output
    assert "no store at" in result.output
    assert not (tmp_path / "none").exists()


def test_an_auditor_cannot_call_the_coordinator(tmp_path):
    pytest.importorskip("cryptography")
    from accord.errors import AuthenticationFailed
    from accord.transport import pki
    from accord.transport.trust import TrustStore, verify_peer

    passphrase = b"auditor and coordinator"
    ca = tmp_path / "ca"
    pki.init_ca(ca, federation="dash", passphrase=passphrase)
    for name, role in (("site-a", "participant"), ("audit-office", "auditor")):
        csr = pki.request(tmp_path / name, name, role=role)
        pki.sign(ca, csr, passphrase=passphrase, role=role)
    trust = TrustStore.load(ca)
    # the coordinator's handshake pins its callers: the auditor is not one
    assert set(trust.handshake_roots().pinned) == {"site-a"}
    with pytest.raises(AuthenticationFailed, match="has role 'auditor'"):
        verify_peer(
            (tmp_path / "audit-office" / "cert.pem").read_bytes(),
            trust,
            roles=("participant", "admin"),
        )
