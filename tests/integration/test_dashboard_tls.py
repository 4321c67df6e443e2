"""The dashboard over real mutual TLS on an ephemeral port: who is let in.

A real CA issues the server's certificate and one for each kind of client; a
second CA issues an auditor certificate the first never heard of. The server runs
in uvicorn in a thread, as ``accord dashboard --host ... --pki --trust`` runs it.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("cryptography")

import uvicorn

from accord.dashboard.app import create_app
from accord.dashboard.server import TlsFiles, listen, server_config
from accord.store import MemoryStore
from accord.transport import pki

PASS = b"dashboard tls test"


def _issue(ca: Path, root: Path, name: str, role: str, **kw: object) -> Path:
    folder = root / name
    csr = pki.request(folder, name, role=role, **kw)  # type: ignore[arg-type]
    pki.sign(ca, csr, passphrase=PASS, role=role)  # type: ignore[arg-type]
    return folder


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dash-tls")
    pki.init_ca(root / "ca", federation="dash", passphrase=PASS)
    pki.init_ca(root / "other-ca", federation="other", passphrase=PASS)
    return {
        "ca": root / "ca",
        "server": _issue(
            root / "ca", root, "dashboard", "coordinator", hosts=["127.0.0.1"]
        ),
        "auditor": _issue(root / "ca", root, "audit-office", "auditor"),
        "admin": _issue(root / "ca", root, "operator", "admin"),
        "participant": _issue(root / "ca", root, "site-1", "participant"),
        "stranger": _issue(
            root / "other-ca", root / "other", "audit-office", "auditor"
        ),
    }


@pytest.fixture(scope="module")
def server(federation: dict[str, Path]) -> Iterator[int]:
    store = MemoryStore()
    store.create_run(name="tls-run", config={}, seed=0, rounds_planned=2)
    config = server_config(
        create_app(store),
        host="127.0.0.1",
        port=0,
        tls=TlsFiles(federation["server"], federation["ca"]),
    )
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _get(port: int, ca: Path, client: Path | None, path: str = "/api/runs"):
    context = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    if client is not None:
        context.load_cert_chain(str(client / "cert.pem"), str(client / "key.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


_REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)


def test_an_auditor_certificate_of_the_federation_reads(server, federation):
    status, body = _get(server, federation["ca"], federation["auditor"])
    assert status == 200
    assert "tls-run" in body


def test_an_admin_certificate_reads(server, federation):
    status, body = _get(server, federation["ca"], federation["admin"], "/")
    assert status == 200
    assert "tls-run" in body


def test_a_client_without_a_certificate_is_refused(server, federation):
    with pytest.raises(_REFUSED):
        _get(server, federation["ca"], None)


def test_a_certificate_of_another_ca_is_refused(server, federation):
    with pytest.raises(_REFUSED):
        _get(server, federation["ca"], federation["stranger"])


def test_a_participant_certificate_without_the_role_is_refused(server, federation):
    status, body = _get(server, federation["ca"], federation["participant"])
    assert status == 403
    assert "site-1" in body
    assert "'admin' or 'auditor'" in body
    assert "tls-run" not in body


def test_a_revoked_auditor_is_refused(server, federation, tmp_path):
    folder = _issue(federation["ca"], tmp_path, "former-auditor", "auditor")
    assert _get(server, federation["ca"], folder)[0] == 200
    pki.revoke(federation["ca"], "former-auditor", passphrase=PASS)
    status, body = _get(server, federation["ca"], folder)
    assert status == 403
    assert "revoked" in body


def test_a_plain_http_request_gets_no_page(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        conn.request("GET", "/api/runs")
        with pytest.raises(_REFUSED):
            conn.getresponse()
    finally:
        conn.close()
