"""Serving the dashboard: loopback in the clear, anything else behind mutual TLS.

:func:`check_binding` is the rule, kept apart from the I/O: a loopback address
may serve plain HTTP (only this machine's users reach it); any other address is
refused unless the server has a certificate and trusts the federation's CA for
its clients. Then the TLS handshake requires a client certificate issued by that
CA (``CERT_REQUIRED``: no certificate, or one of another CA, and the handshake
fails), and :class:`~accord.transport.trust.TrustStore` checks each connection's
certificate as the coordinator does (revocation, roster) and that it carries
the ``admin`` or ``auditor`` role: any other certificate, a participant's
included, is answered 403 with the reason, and nothing else on that connection.
There are no passwords, stored or typed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.errors import AuthenticationFailed, ConfigError, MissingExtraError, PkiError

if TYPE_CHECKING:
    from accord.transport.roster import Role
    from accord.transport.trust import TrustStore

__all__ = [
    "DASHBOARD_ROLES",
    "LOOPBACK_HOSTS",
    "TlsFiles",
    "check_binding",
    "guarded_protocol",
    "is_loopback",
    "listen",
    "serve",
    "server_config",
    "loopback_only",
    "request_host",
]

logger = logging.getLogger(__name__)

#: The roles whose certificates may read the dashboard over the network.
DASHBOARD_ROLES: tuple[Role, ...] = ("admin", "auditor")

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class TlsFiles:
    """The server's identity folder and the CA folder its clients come from.

    ``identity`` holds ``key.pem`` and ``cert.pem`` (a certificate for the
    server's host name, with the server-auth usage: ``accord pki request NAME
    --role coordinator --host HOST``); ``trust`` holds ``ca.pem`` (and
    ``crl.pem``, ``roster.json`` when it is the federation's CA folder or a copy).
    """

    identity: Path
    trust: Path

    @property
    def key(self) -> Path:
        """The server's private key."""
        return self.identity / "key.pem"

    @property
    def cert(self) -> Path:
        """The server's certificate."""
        return self.identity / "cert.pem"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, tls: TlsFiles | None) -> None:
    """Refuse to serve ``host`` in the clear unless it is a loopback address."""
    if tls is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without TLS: any address "
            "other than loopback (127.0.0.1, ::1) needs mutual TLS. Give the "
            "server's certificate with --pki DIR (key.pem, cert.pem) and the "
            "federation's CA with --trust DIR; clients then need an admin or "
            "auditor certificate of that CA (accord pki request NAME --role auditor)",
            key="--host",
        )


async def _plain(send: _Send, status: int, body: bytes, *, close: bool) -> None:
    """Answer ``status`` with a plain-text ``body`` (and close the connection)."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _refusal_app(reason: str) -> Callable[[_Scope, _Receive, _Send], Awaitable[None]]:
    """An ASGI app that answers every request of a connection 403, with why."""
    body = f"certificate refused: {reason}\n".encode()

    async def refuse(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "http":
            await _plain(send, 403, body, close=True)

    return refuse


#: The names a loopback dashboard answers to (the ``Host`` header, port aside).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def request_host(headers: list[tuple[bytes, bytes]]) -> str:
    """The host a request names in its ``Host`` header, without the port."""
    raw = next((v for k, v in headers if k.lower() == b"host"), b"")
    host = raw.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8765
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def loopback_only(app: Any) -> Callable[[_Scope, _Receive, _Send], Awaitable[None]]:
    """``app``, answering 421 to a request whose ``Host`` is not a loopback name.

    The unauthenticated dashboard relies on listening on loopback only. A page
    the operator opens elsewhere can still reach it by DNS rebinding (a name of
    the attacker's that resolves to 127.0.0.1 later), and would then read the
    runs as same-origin: such a request names the attacker's host, so it is
    refused.
    """
    body = b"this dashboard answers only to 127.0.0.1, localhost or [::1]\n"

    async def guarded(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http" or request_host(scope["headers"]) in LOOPBACK_HOSTS:
            await app(scope, receive, send)
            return
        await _plain(send, 421, body, close=False)

    return guarded


def admit(transport: asyncio.BaseTransport, trust: TrustStore) -> str | None:
    """Why the connection's client certificate may not read, or None if it may."""
    from accord.transport.trust import verify_peer

    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        return "the connection presented no client certificate"
    try:
        who = verify_peer(
            ssl.DER_cert_to_PEM_cert(der).encode(),
            trust,
            usage="client",
            roles=DASHBOARD_ROLES,
        )
    except (AuthenticationFailed, PkiError) as exc:
        logger.warning("dashboard refused a client: %s", exc)
        return str(exc)
    logger.info("dashboard admitted %s (%s)", who.name, who.role)
    return None


def guarded_protocol(trust: TrustStore) -> type[asyncio.Protocol]:
    """Uvicorn's HTTP/1.1 protocol, checking each connection's certificate.

    The check runs once the TLS handshake is done (``connection_made``), before
    any request of the connection is read; a refused connection gets only 403s.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedProtocol(H11Protocol):
        def connection_made(  # type: ignore[override]  # as H11Protocol's
            self, transport: asyncio.Transport
        ) -> None:
            super().connection_made(transport)
            reason = admit(transport, trust)
            if reason is not None:
                self.app = _refusal_app(reason)

    return GuardedProtocol


def server_config(app: Any, *, host: str, port: int, tls: TlsFiles | None) -> Any:
    """The uvicorn configuration that serves ``app`` on ``host:port`` (see module)."""
    check_binding(host, tls)
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError(
            extra="dashboard", package="uvicorn", feature="the dashboard's server"
        ) from exc
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "server_header": False,
        "proxy_headers": False,  # the client address is the peer's, never a header's
        "ws": "none",
        "lifespan": "off",
    }
    if tls is None:
        return uvicorn.Config(loopback_only(app), http="h11", **common)
    from accord.transport.enrolment import load_identity
    from accord.transport.trust import TrustStore

    load_identity(tls.identity)  # readable, and the key matches the certificate
    trust = TrustStore.load(tls.trust)
    ca = tls.trust / "ca.pem"
    if not ca.is_file():
        raise PkiError(f"no ca.pem in {tls.trust}: --trust names the federation's CA")
    return uvicorn.Config(
        app,
        http=guarded_protocol(trust),
        ssl_keyfile=str(tls.key),
        ssl_certfile=str(tls.cert),
        ssl_ca_certs=str(ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        **common,
    )


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, or a ConfigError saying why not.

    Bound here rather than by uvicorn, so that a port in use is one clear error
    (exit 2) before anything is served; port 0 picks a free one.
    """
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        return socket.create_server((address, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
            "--port (or stop what holds it)",
            key="--port",
        ) from exc


def serve(
    app: Any, *, host: str, port: int, tls: TlsFiles | None
) -> None:  # pragma: no cover - runs until interrupted; the CLI and tests use parts
    """Serve ``app`` until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    config = server_config(app, host=host, port=port, tls=tls)
    with listen(host, port) as sock:
        uvicorn.Server(config).run(sockets=[sock])
