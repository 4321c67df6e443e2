"""Real mutual-TLS handshakes on loopback with the PKI's certificates.

OpenSSL (Python's ``ssl``) stands in for gRPC's BoringSSL: both sides require the
other's certificate and verify it in strict X.509 mode, so these tests show that
the certificates are ones a TLS stack accepts, and that the ones it must refuse
(expired, self-signed, other federation, revoked) fail the handshake itself.
"""

import re
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.transport import pki

TIMEOUT = 5.0


def server_context(site: Path, *, crl: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(site / pki.CERT, site / pki.KEY)
    ctx.load_verify_locations(cadata=pki.load_identity(site).ca_pem.decode())
    if crl is not None:
        ctx.load_verify_locations(cafile=crl)  # OpenSSL reads CRLs from a CA file
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def client_context(site: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(site / pki.CERT, site / pki.KEY)
    return ctx


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[BaseException | None, BaseException | None]:
    """Connect once; return (server's error, client's error), None for success."""
    errors: dict[str, BaseException | None] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
                errors["server"] = None
            except OSError as exc:  # ssl.SSLError is an OSError
                errors["server"] = exc
            finally:
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            address = listener.getsockname()
            with (
                socket.create_connection(address, timeout=TIMEOUT) as raw,
                client.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                # With TLS 1.3 the server judges the client's certificate after the
                # client has finished; a refusal arrives as an alert on first read.
                received = tls.recv(2)
            errors["client"] = None if received == b"ok" else EOFError(received)
        except OSError as exc:
            errors["client"] = exc
        thread.join(TIMEOUT)
    return errors["server"], errors["client"]


@pytest.fixture
def coordinator(enrol) -> Path:
    return enrol("hub", role="coordinator")


def test_a_valid_participant_completes_the_handshake(ca, enrol, coordinator):
    site = enrol("site-1")

    server_error, client_error = handshake(
        server_context(coordinator, crl=ca / pki.CRL),
        client_context(site, site / pki.CA_CERT),
    )

    assert server_error is None
    assert client_error is None


@pytest.mark.parametrize(
    ("make_client", "reason"),
    [
        ("expired", "certificate has expired"),
        ("self_signed", "self.signed certificate"),
        ("other_federation", "unable to get local issuer certificate"),
        ("revoked", "certificate revoked"),
    ],
)
def test_a_bad_client_certificate_fails_the_handshake(
    ca, enrol, forge, passphrase, tmp_path, coordinator, make_client, reason
):
    if make_client == "expired":
        past = datetime.now(UTC) - timedelta(days=400)
        site = enrol("site-old", days=30, now=past)
    elif make_client == "self_signed":
        site = forge.self_signed("site-1")
    elif make_client == "other_federation":
        other = tmp_path / "elsewhere" / "ca"
        pki.init_ca(other, federation="acme", passphrase=passphrase)
        site = enrol("site-1", ca=other)
    else:
        site = enrol("site-3")
        pki.revoke(ca, "site-3", passphrase=passphrase)

    server_error, client_error = handshake(
        server_context(coordinator, crl=ca / pki.CRL),
        client_context(site, ca / pki.CA_CERT),
    )

    assert isinstance(server_error, ssl.SSLCertVerificationError)
    assert re.search(reason, server_error.verify_message)
    assert isinstance(client_error, (ssl.SSLError, ConnectionError))


def test_a_participant_refuses_a_coordinator_of_another_federation(
    ca, enrol, passphrase, tmp_path
):
    other = tmp_path / "elsewhere" / "ca"
    pki.init_ca(other, federation="acme", passphrase=passphrase)
    rogue = enrol("hub", role="coordinator", ca=other)
    site = enrol("site-1")

    server_error, client_error = handshake(
        server_context(rogue), client_context(site, site / pki.CA_CERT)
    )

    assert isinstance(client_error, ssl.SSLCertVerificationError)
    # OpenSSL sends the rogue CA along; either way it is not this federation's.
    assert re.search(
        "unable to get local issuer|self-signed certificate in certificate chain",
        client_error.verify_message,
    )
    assert isinstance(server_error, OSError)
