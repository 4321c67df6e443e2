"""``accord pki``: a federation's PKI from the command line."""

import json
from typing import get_args

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.cli.pki import PASSPHRASE_ENV, RoleName
from accord.transport.roster import ROLES

runner = CliRunner()
PASS = "correct horse battery"


@pytest.fixture(autouse=True)
def _passphrase_from_env(monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)


def pki(*args):
    return runner.invoke(app, ["pki", *map(str, args)])


def init(ca):
    result = pki("init", ca, "--federation", "acme")
    assert result.exit_code == 0, result.output
    return result


def enrol(tmp_path, name, *extra):
    site = tmp_path / name
    made = pki("request", name, "--dir", site)
    assert made.exit_code == 0, made.output
    return site, pki("sign", site / "request.csr", "--ca", tmp_path / "ca", *extra)


def roster(ca):
    listed = pki("list", "--ca", ca, "--json")
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.stdout)


def test_init_request_sign_verify_revoke(tmp_path):
    ca = tmp_path / "ca"
    assert "CA fingerprint" in init(ca).stdout
    site, signed = enrol(tmp_path, "site-1", "--role", "participant")
    assert signed.exit_code == 0, signed.output
    assert (site / "cert.pem").exists() and (site / "ca.pem").exists()

    accepted = pki("verify", site / "cert.pem", "--trust", ca)
    assert accepted.exit_code == 0, accepted.output
    assert "accepted: 'site-1' (participant)" in accepted.stdout
    (entry,) = roster(ca)
    assert (entry["name"], entry["status"]) == ("site-1", "active")

    revoked = pki("revoke", "site-1", "--ca", ca)
    assert revoked.exit_code == 0, revoked.output

    refused = pki("verify", site / "cert.pem", "--trust", ca)
    assert refused.exit_code == 5
    assert "'site-1' was revoked on" in refused.output
    assert roster(ca)[0]["status"] == "revoked"
    table = pki("list", "--ca", ca)
    assert "site-1" in table.stdout and "revoked" in table.stdout


def test_coordinator_request_with_hosts(tmp_path):
    init(tmp_path / "ca")
    site = tmp_path / "hub"
    hosts = ["--host", "localhost", "--host", "127.0.0.1"]
    made = pki("request", "hub", "--dir", site, "--role", "coordinator", *hosts)
    assert made.exit_code == 0, made.output

    signed = pki(
        "sign", site / "request.csr", "--ca", tmp_path / "ca", "--role", "coordinator"
    )

    assert signed.exit_code == 0, signed.output
    ok = pki("verify", site / "cert.pem", "--trust", tmp_path / "ca", "--server")
    assert ok.exit_code == 0, ok.output


def test_coordinator_without_hosts_is_a_usage_error(tmp_path):
    result = pki("request", "hub", "--dir", tmp_path / "hub", "--role", "coordinator")

    assert result.exit_code == 2
    assert "--host" in result.output


def test_passphrase_from_a_file_and_a_wrong_one(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSPHRASE_ENV)
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(PASS + "\n")
    bad.write_text("not the passphrase\n")
    ca = tmp_path / "ca"
    assert (
        pki("init", ca, "--federation", "acme", "--passphrase-file", good).exit_code
        == 0
    )
    site = tmp_path / "site-1"
    pki("request", "site-1", "--dir", site)
    csr = site / "request.csr"

    wrong = pki(
        "sign", csr, "--ca", ca, "--role", "participant", "--passphrase-file", bad
    )
    right = pki(
        "sign", csr, "--ca", ca, "--role", "participant", "--passphrase-file", good
    )

    assert wrong.exit_code == 2
    assert "passphrase does not open the CA key" in wrong.output
    assert right.exit_code == 0, right.output


def test_init_prompts_for_the_passphrase_twice(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSPHRASE_ENV)

    result = runner.invoke(
        app,
        ["pki", "init", str(tmp_path / "ca"), "--federation", "acme"],
        input=f"{PASS}\n{PASS}\n",
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "ca" / "ca.key").exists()


def test_no_passphrase_option_on_the_command_line(tmp_path):
    result = pki("init", tmp_path / "ca", "--federation", "acme", "--passphrase", PASS)

    assert result.exit_code == 2
    assert not (tmp_path / "ca").exists()


def test_duplicate_name_needs_replace(tmp_path):
    ca = tmp_path / "ca"
    init(ca)
    enrol(tmp_path, "site-1", "--role", "participant")
    csr = tmp_path / "site-1-new" / "request.csr"
    pki("request", "site-1", "--dir", csr.parent)

    duplicate = pki("sign", csr, "--ca", ca, "--role", "participant")
    replaced = pki("sign", csr, "--ca", ca, "--role", "participant", "--replace")

    assert duplicate.exit_code == 2
    assert "already holds an active certificate" in duplicate.output
    assert replaced.exit_code == 0, replaced.output
    assert [e["status"] for e in roster(ca)] == ["revoked", "active"]


def test_invalid_role_and_name_are_usage_errors(tmp_path):
    bad_role = pki("request", "site-1", "--dir", tmp_path / "s", "--role", "root")
    bad_name = pki("request", "../etc", "--dir", tmp_path / "t")

    assert bad_role.exit_code == 2
    assert bad_name.exit_code == 2
    assert "invalid name" in bad_name.output


def test_cli_roles_match_the_library():
    assert get_args(RoleName) == ROLES


def test_pin_trusts_a_coordinator_and_refuses_a_participant(tmp_path):
    init(tmp_path / "ca")
    site, signed = enrol(tmp_path, "site-1", "--role", "participant")
    assert signed.exit_code == 0, signed.output  # before the coordinator: no pin
    coord = tmp_path / "coord"
    pki("request", "coord", "--dir", coord, "--role", "coordinator", "--host", "h")
    pki("sign", coord / "request.csr", "--ca", tmp_path / "ca", "--role", "coordinator")
    assert not (site / "coordinator.pem").exists()

    pinned = pki("pin", site, "--certificate", coord / "cert.pem")
    refused = pki("pin", site, "--certificate", site / "cert.pem")

    assert pinned.exit_code == 0, pinned.output
    assert "pins 1 coordinator certificate" in pinned.output
    assert (site / "coordinator.pem").read_bytes() == (coord / "cert.pem").read_bytes()
    assert refused.exit_code != 0
    assert "TLS server" in refused.output
