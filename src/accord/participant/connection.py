"""Staying connected to the coordinator: dial out, follow the task stream, redial.

A site never listens: :func:`serve` dials the coordinator, follows its task stream
and hands each task to the runtime, one at a time, with the run the stream serves:
the one its :class:`~accord.transport.messages.Welcome` named (or, from a
coordinator that sent none, its first task's). A coordinator serves one run per
stream, so the runtime refuses a task of any other run: a coordinator that named a
new run in each task would make the site keep state for each.

When the stream breaks it dials again after an exponential backoff with jitter
(:class:`~accord.participant.backoff.Backoff`); it stops when the coordinator
says goodbye, when the site's certificate is refused (no retry changes that:
:class:`~accord.errors.AuthenticationFailed`), when the coordinator refuses the
site itself, after ``give_up_after_s`` without contact (with a hint of what to
check), or when asked to.

Every message but a goodbye carries the coordinator's newest CRL. With a ``pin``
(:mod:`accord.transport.coordinator_pin`) each is checked and kept when newer; a
forged or older one is refused and recorded, and one that revokes a pinned
coordinator certificate ends the connection (the next dial trusts only the pins
left, or refuses to dial). Every connection, refusal and goodbye goes to the
site's :class:`~accord.participant.sitelog.SiteLog`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from accord.errors import AuthenticationFailed, SubmissionRefused, TransportError
from accord.participant.backoff import Backoff
from accord.participant.sitelog import SiteLog
from accord.transport.messages import Goodbye, TaskOrder, Welcome

if TYPE_CHECKING:  # no grpc here: tests drive it with a fake client
    from accord.transport.client import CoordinatorClient
    from accord.transport.coordinator_pin import CoordinatorPin

__all__ = ["give_up_hint", "serve"]


def serve(
    connect: Callable[[], CoordinatorClient],
    handle: Callable[[CoordinatorClient, TaskOrder, str], None],
    *,
    log: SiteLog,
    backoff: Backoff,
    pin: CoordinatorPin | None = None,
    give_up_after_s: float | None = None,
    stop: threading.Event | None = None,
) -> str:
    """Hand each task to ``handle`` until the run ends; return the goodbye's reason.

    ``"stopped"`` when ``stop`` was set. Raises :class:`AuthenticationFailed`
    when the coordinator refuses the site's certificate, or no pinned
    coordinator is usable; :class:`TransportError` when the coordinator refuses
    the site, or after ``give_up_after_s`` without contact.
    """
    stop = stop or threading.Event()
    failures, last_contact = 0, time.monotonic()
    last_error = "none"
    while not stop.is_set():
        client = _dial(connect, log)
        stream_run: str | None = None
        try:
            for message in client.subscribe():
                failures, last_contact = 0, time.monotonic()
                if isinstance(message, Goodbye):
                    log.record("goodbye", reason=message.reason)
                    return message.reason
                _check_crl(pin, log, message.crl)
                if isinstance(message, Welcome):
                    log.record("connected", run_id=message.run_id, round=message.round)
                    stream_run = stream_run or message.run_id
                else:
                    stream_run = stream_run or message.run_id
                    handle(client, message, stream_run)
            log.record("disconnected", reason="the task stream ended")
        except SubmissionRefused as exc:
            log.record("refused_by_coordinator", kind=exc.kind, reason=exc.reason)
            raise TransportError(
                f"the coordinator refused this site: {exc.reason}", code=exc.kind
            ) from None
        except TransportError as exc:
            log.record("disconnected", code=exc.code, reason=str(exc))
            if exc.code == "UNAUTHENTICATED":
                # Retrying cannot help: the certificate itself was refused
                # (revoked, or not on the roster). Exit code 5 says so.
                raise AuthenticationFailed(
                    f"the coordinator refused this site's certificate ({exc})"
                ) from None
            last_error = str(exc)
        finally:
            client.close()
        waited = time.monotonic() - last_contact
        if give_up_after_s is not None and waited > give_up_after_s:
            raise TransportError(
                f"no contact with the coordinator for {waited:.0f} s; giving up "
                f"(last error: {last_error}). {give_up_hint(last_error)}"
            )
        stop.wait(backoff.delay(failures))
        failures += 1
    return "stopped"


def _dial(connect: Callable[[], CoordinatorClient], log: SiteLog) -> CoordinatorClient:
    try:
        return connect()
    except AuthenticationFailed as exc:  # no pinned coordinator is usable
        log.record("refused_coordinator", reason=str(exc))
        raise


def _check_crl(pin: CoordinatorPin | None, log: SiteLog, der: bytes) -> None:
    """Keep a newer CRL; leave a coordinator whose certificate it revokes."""
    if pin is None or not der:
        return
    verdict = pin.observe(der)
    if verdict.outcome == "refused":
        log.record("refused_crl", number=verdict.number, reason=verdict.reason)
    elif verdict.outcome == "updated":
        log.record("crl_updated", number=verdict.number)
    if verdict.revoked_pins:
        log.record("coordinator_revoked", fingerprints=verdict.revoked_pins)
        raise TransportError(
            f"CRL {verdict.number} revokes the pinned coordinator certificate; "
            "closing the connection",
            code="COORDINATOR_REVOKED",
        )


def give_up_hint(last_error: str) -> str:
    """What a site's operator should check, from the last connection error.

    A refused TCP connection means nothing listens at the address: the certificate
    never came into it. Anything else (a handshake that failed, a reset) is most
    often the coordinator's TLS refusing this site's certificate.
    """
    if "connection refused" in last_error.lower():
        return (
            "Nothing is listening at the coordinator's address: check that the "
            "coordinator is running, and the host and port given to --coordinator"
        )
    return (
        "If the coordinator is running, its TLS handshake may be refusing this "
        "site's certificate: check that the federation's CA issued it, that it has "
        "not expired (openssl x509 -in cert.pem -noout -issuer -dates) and that the "
        "operator has not revoked it (accord pki list, at the CA)"
    )
