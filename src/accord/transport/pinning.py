"""Which certificates a coordinator's TLS handshake trusts: the roster's active ones.

gRPC's Python API has no CRL option and no hook to verify a peer in the handshake,
but it takes the trusted roots afresh before each new connection. Trusting the CA
would let every certificate it ever issued through, revoked ones included; trusting
the roster's active participant and admin certificates themselves (BoringSSL accepts
a trusted certificate as its own anchor) lets exactly those through, so a revoked,
expired or replaced certificate fails the handshake. Each pinned certificate is
checked first: it must be the one its roster entry's fingerprint and serial name,
and the CA must have signed it, so that an edited roster cannot smuggle in another
key. Where nothing can be pinned (no roster, a roster without certificates, no
active caller) the handshake trusts the CA and the per-call check
(:func:`~accord.transport.trust.verify_peer`) refuses the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from accord.errors import MissingExtraError
from accord.transport.roster import Roster, RosterEntry, fingerprint

try:
    from cryptography import x509
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        extra="deploy", package="cryptography", feature="accord's PKI"
    ) from exc

__all__ = ["HandshakeRoots", "pinned_roots"]

logger = logging.getLogger(__name__)

#: The roles that dial in, whose certificates a coordinator's handshake pins.
_CALLERS = frozenset({"participant", "admin"})


@dataclass(frozen=True)
class HandshakeRoots:
    """The certificates a server's TLS handshake trusts for callers.

    ``pinned`` names the callers whose own certificates ``pem`` holds; empty when
    ``pem`` is the CA, and then ``reason`` says why nothing was pinned. ``until``:
    when the first pinned certificate expires (the roots must be made again).
    """

    pem: bytes
    pinned: tuple[str, ...]
    reason: str | None
    until: datetime | None


def pinned_roots(
    roster: Roster | None,
    revoked: Mapping[int, datetime],
    ca_pem: bytes,
    signed_by_ca: Callable[[x509.Certificate], bool],
    at: datetime,
) -> HandshakeRoots:
    """The roots for callers at ``at``: the active callers' certificates, or the CA.

    ``revoked`` maps the CRL's serials to their revocation times.
    """
    if roster is None:
        return HandshakeRoots(ca_pem, (), "the CA (no roster to pin)", None)
    active = [
        e
        for e in roster.entries
        if e.role in _CALLERS and e.status(at) == "active" and e.serial not in revoked
    ]
    if not active or any(e.certificate is None for e in active):
        why = "no active caller" if not active else "a roster without certificates"
        return HandshakeRoots(ca_pem, (), f"the CA ({why})", None)
    pems: list[bytes] = []
    names: list[str] = []
    for e in active:
        pem = (e.certificate or "").encode()
        problem = _pin_problem(e, pem, signed_by_ca)
        if problem is not None:
            logger.error("not trusting %r's certificate: %s", e.name, problem)
            continue
        pems.append(pem)
        names.append(e.name)
    if not pems:
        return HandshakeRoots(ca_pem, (), "the CA (no usable certificate)", None)
    until = min(e.not_after for e in active)
    return HandshakeRoots(b"".join(pems), tuple(names), None, until)


def _pin_problem(
    entry: RosterEntry, pem: bytes, signed_by_ca: Callable[[x509.Certificate], bool]
) -> str | None:
    """Why ``entry``'s certificate ``pem`` must not be trusted, or None."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        return f"roster.json holds no readable certificate for it ({exc})"
    if fingerprint(cert) != entry.fingerprint or cert.serial_number != entry.serial:
        return "roster.json's certificate is not the one its fingerprint names"
    if not signed_by_ca(cert):
        return "roster.json's certificate is not signed by the trusted CA"
    return None
