"""Mutual TLS for both ends, addresses, keepalives, and who a caller is.

Mutual TLS is the default: the coordinator presents its certificate and requires
one from every caller. Where each bad certificate is refused:

- no certificate, a self-signed one, one of another federation's CA, an expired
  (or not yet valid) one, a revoked one, one the roster does not list (or no
  longer lists as active): the TLS handshake itself fails. The handshake trusts
  exactly the certificates that may dial in now, taken from the roster (see
  :meth:`~accord.transport.trust.TrustStore.handshake_roots`), not the CA that
  issued them: gRPC Python has no CRL option and no verification hook, but it asks
  for the trusted roots again before every new connection, so a revocation or a
  new site takes effect at the next handshake. The caller sees ``UNAVAILABLE`` and
  makes no RPC, so nothing of accord runs and nothing can be recorded (the operator
  sees it in gRPC's own log);
- with a roster that does not carry the certificates (written by an older accord)
  or an external CA's allow-list, the handshake trusts the CA and checks chain and
  dates only; a revoked or unlisted certificate then passes it and its first RPC
  is refused, recorded, with ``UNAUTHENTICATED``;
- in every case each call is checked again by :class:`Authenticator`, which checks
  the caller's certificate with :func:`~accord.transport.trust.verify_peer` (CRL
  and roster, re-read when they change) before any handler runs: a certificate
  revoked while its connection is open is refused, and recorded, at its next call.

The peer's name and role come only from that certificate, never from a message
field.

``insecure`` mode (plaintext, for demos and tests) must be asked for explicitly and
binds or dials loopback addresses only; a caller then names itself in the
``accord-insecure-name`` metadata and may call anything, admin operations included:
exactly as trustworthy as it sounds.

Keepalives: a participant's task stream is silent while it trains, for tens of
minutes. Both ends ping every 30–60 s so that NATs and firewalls keep the stream,
and the server allows pings that often (gRPC's default would call them abuse and
close the connection with ``too_many_pings``).

Message sizes: the coordinator reads messages of at most 4 MiB (updates and stage
messages come in chunks); one up to 64 MiB is refused by accord's own check, as
``too_large``, and recorded; only a larger one is refused by gRPC itself, before
accord sees it, and goes unrecorded. A site accepts tasks from the coordinator it
authenticated up to :data:`~accord.transport.messages.MAX_TASK_BYTES`, since a CKKS
round's ``ckks_decrypt`` task carries the whole encrypted sum.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import grpc

from accord.errors import AuthenticationFailed, ConfigError, SubmissionRefused
from accord.transport.enrolment import IdentityFiles
from accord.transport.messages import MAX_MESSAGE_BYTES, MAX_TASK_BYTES
from accord.transport.roster import Role, validate_name
from accord.transport.trust import HandshakeRoots, Identity, TrustStore, verify_peer

__all__ = [
    "CLIENT_OPTIONS",
    "INSECURE_NAME_KEY",
    "SERVER_OPTIONS",
    "Authenticator",
    "channel_credentials",
    "check_insecure_host",
    "is_loopback",
    "server_credentials",
    "split_address",
]

logger = logging.getLogger(__name__)

INSECURE_NAME_KEY = "accord-insecure-name"
_MAX_MESSAGE = MAX_MESSAGE_BYTES
#: What gRPC itself lets through to accord's checks, which refuse and record
#: anything over :data:`MAX_MESSAGE_BYTES`; only beyond this does gRPC refuse a
#: message on its own, unrecorded. It bounds what one call can make the
#: coordinator buffer (callers got past the handshake: roster members only).
RECEIVE_LIMIT_BYTES = 16 * MAX_MESSAGE_BYTES

#: Server channel options: pings every minute, clients may ping every 10 s.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", RECEIVE_LIMIT_BYTES),
    ("grpc.max_send_message_length", MAX_TASK_BYTES),
    ("grpc.so_reuseport", 0),
]

#: Client channel options: pings every 30 s even while no call is active.
CLIENT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_TASK_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as host and port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{address!r} is not HOST:PORT", key="address")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_insecure_host(address: str) -> None:
    """Refuse plaintext anywhere but on this machine's loopback interface."""
    host, _ = split_address(address)
    if not is_loopback(host):
        raise ConfigError(
            f"--insecure sends everything in plaintext, so it only works on loopback "
            f"(127.0.0.1, ::1, localhost), not {host!r}; use certificates "
            "(accord pki) to reach other machines",
            key="address",
        )


def server_credentials(identity: IdentityFiles, trust: TrustStore) -> Any:
    """TLS credentials that require a caller's certificate the handshake trusts.

    The handshake trusts what :meth:`TrustStore.handshake_roots` says, asked again
    before every new connection (gRPC calls the fetcher then), so a revocation or a
    new site takes effect at the next handshake.
    """
    roots = _CallerRoots(identity, trust)
    return grpc.dynamic_ssl_server_credentials(
        roots.initial(), roots, require_client_authentication=True
    )


class _CallerRoots:
    """gRPC's certificate-configuration fetcher: new roots when the trust changed."""

    def __init__(self, identity: IdentityFiles, trust: TrustStore) -> None:
        self._pair = [(identity.key_pem, identity.cert_pem)]
        self._trust = trust
        self._pem = b""

    def initial(self) -> Any:
        roots = self._trust.handshake_roots()
        if not roots.pinned:
            logger.warning(
                "the TLS handshake trusts %s: a revoked certificate is refused at "
                "its first call, not at the handshake",
                roots.reason,
            )
        return self._configuration(roots)

    def __call__(self) -> Any:
        try:
            roots = self._trust.handshake_roots()
        except Exception as exc:  # gRPC's thread must not see it; keep the last roots
            logger.error("cannot renew the TLS handshake's trust: %s", exc)
            return None
        return None if roots.pem == self._pem else self._configuration(roots)

    def _configuration(self, roots: HandshakeRoots) -> Any:
        self._pem = roots.pem
        logger.info(
            "the TLS handshake trusts %s",
            f"{len(roots.pinned)} certificate(s) on the roster"
            if roots.pinned
            else roots.reason,
        )
        return grpc.ssl_server_certificate_configuration(
            self._pair, root_certificates=roots.pem
        )


def channel_credentials(identity: IdentityFiles) -> Any:
    """TLS credentials presenting the site's certificate, trusting its CA only."""
    return grpc.ssl_channel_credentials(
        root_certificates=identity.ca_pem,
        private_key=identity.key_pem,
        certificate_chain=identity.cert_pem,
    )


@dataclass(frozen=True)
class Authenticator:
    """Who is calling: from the verified TLS certificate, or (insecure) metadata."""

    trust: TrustStore | None

    def identify(self, context: Any) -> Identity:
        """The caller's identity; AuthenticationFailed when it cannot be proved."""
        if self.trust is None:
            return _insecure_identity(context)
        auth = context.auth_context()
        certs = auth.get("x509_pem_cert") or []
        if not certs:
            raise AuthenticationFailed("the caller presented no client certificate")
        return verify_peer(certs[0], self.trust, usage="client")

    def require(self, context: Any, roles: Collection[Role]) -> str:
        """The caller's name, if its certificate holds one of ``roles``."""
        return self.allow(self.identify(context), roles)

    def allow(self, who: Identity, roles: Collection[Role]) -> str:
        """``who``'s name, if it holds one of ``roles``; else refuse (forbidden)."""
        if who.role not in roles and self.trust is not None:
            wanted = " or ".join(roles)
            raise SubmissionRefused(
                "forbidden",
                f"{who.name!r} holds a {who.role} certificate; this needs {wanted}",
                participant=who.name,
            )
        return who.name


def _insecure_identity(context: Any) -> Identity:
    names = [v for k, v in context.invocation_metadata() if k == INSECURE_NAME_KEY]
    if not names:
        raise AuthenticationFailed(
            f"insecure mode: the caller must name itself in {INSECURE_NAME_KEY!r}"
        )
    name = str(names[0])
    try:
        validate_name(name)
    except ValueError as exc:
        raise AuthenticationFailed(str(exc)) from None
    return Identity(name, "participant", 0, "insecure")
