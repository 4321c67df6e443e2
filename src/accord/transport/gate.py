"""The coordinator's front door: every call passes it before a byte of its body is read.

For each call, in order (:meth:`Gate.enter`):

1. who: the caller's certificate, verified (:class:`~.security.Authenticator`);
2. how often it was refused lately: a caller over its refusal budget is refused at
   once as ``throttled`` (:class:`~.admission.RefusalThrottle`);
3. may it: the role the method needs, membership of this run's roster (a valid
   certificate of the federation is not enough), and for an upload the run, round
   and stage its call metadata names, against the open jobs
   (:meth:`~.executor.GrpcExecutor.check_upload`);
4. is there room: a slot among the calls open at once, per caller and overall
   (:class:`~.admission.Admission`), refused at once as ``busy`` when full.

Only then does the handler read the request, through :meth:`Gate.watch`, which cuts
a caller that keeps the coordinator waiting (:class:`~.watchdog.Watchdog`) and
records it as ``idle``; what a handler streams back goes through
:meth:`Gate.deliver`, which cuts and records a caller that stops reading it.
Every refusal the server records is also charged to the caller's refusal budget
(:meth:`Gate.refused`).

While a participant's call is open, its certificate is checked again whenever the
trust store changes (:class:`~.revocation.RevocationWatch`): a revoked participant is
expelled from the run (:meth:`~.executor.GrpcExecutor.expel`) and its other open
calls (an upload, a model download) are cancelled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import grpc

from accord.errors import AuthenticationFailed, SubmissionRefused
from accord.transport.admission import Admission, Limits, RefusalThrottle, Slot
from accord.transport.call_metadata import UploadTag
from accord.transport.executor import GrpcExecutor
from accord.transport.revocation import RevocationWatch
from accord.transport.roster import Role
from accord.transport.security import Authenticator
from accord.transport.status import CODES
from accord.transport.trust import Identity
from accord.transport.watchdog import Delivering, Watchdog, Watched

__all__ = ["Admitted", "Gate", "Upload"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: What an upload answers: a train job (an update), or a secure round's stage.
Upload = Literal["update", "secagg"]
#: The key of the refusal budget shared by callers without a verified name.
_NAMELESS = "(unauthenticated)"


@dataclass(eq=False)
class Admitted:
    """A call let in: its caller, its slot, and what an upload claims to answer."""

    name: str
    method: str
    slot: Slot
    tag: UploadTag | None = None
    untrack: Callable[[], None] | None = None


class Gate:
    """Checks every call before its handler reads it; see the module docstring."""

    def __init__(
        self,
        executor: GrpcExecutor,
        auth: Authenticator,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ex = executor
        self.auth = auth
        self.limits = limits
        self.admission = Admission(
            per_peer=limits.per_peer,
            total=limits.total_for(len(executor.participants)),
        )
        self.throttle = RefusalThrottle(
            rate=limits.refusals_per_s, burst=limits.refusal_burst, clock=clock
        )
        self.watchdog = Watchdog(
            first_byte_s=limits.first_byte_s, idle_s=limits.idle_s, clock=clock
        )
        self.revocations = (
            RevocationWatch(auth.trust, self.revoked) if auth.trust else None
        )

    def start(self) -> Gate:
        """Start the watchdog's and the revocation watch's threads."""
        self.watchdog.start()
        if self.revocations is not None:
            self.revocations.start()
        return self

    def close(self) -> None:
        """Stop those threads."""
        self.watchdog.close()
        if self.revocations is not None:
            self.revocations.close()

    def enter(
        self,
        context: Any,
        method: str,
        roles: Collection[Role],
        *,
        upload: Upload | None = None,
        seen: list[int] | None = None,
    ) -> Admitted:
        """Let a call in, or raise the refusal that says why not.

        A refusal names the caller; ``seen[0]`` gets the round an upload names.
        """
        who = self.auth.identify(context)
        try:
            tag = self._check(context, who, roles, upload, seen or [0])
            slot = self.admission.enter(who.name, method, context.cancel)
        except SubmissionRefused as exc:
            exc.participant = exc.participant or who.name
            raise
        name = who.name
        call = Admitted(name, method, slot, tag)
        certs = context.auth_context().get("x509_pem_cert") or []
        if self.revocations is not None and certs and "participant" in roles:
            call.untrack = self.revocations.track(name, certs[0])
        context.add_callback(lambda: self.leave(call))
        return call

    def _check(
        self,
        context: Any,
        who: Identity,
        roles: Collection[Role],
        upload: Upload | None,
        seen: list[int],
    ) -> UploadTag | None:
        self.throttle.check(who.name)
        name = self.auth.allow(who, roles)
        if "participant" not in roles:
            return None
        self._ex.check_member(name)
        if upload is None:
            return None
        metadata = context.invocation_metadata()
        tag = UploadTag.parse(metadata, stage=upload == "secagg")
        seen[0] = tag.round
        self._ex.check_upload(name, tag)
        return tag

    def leave(self, call: Admitted) -> None:
        """The call ended: free its slot, stop watching its certificate."""
        self.admission.leave(call.slot)
        if call.untrack is not None:
            call.untrack()

    @contextmanager
    def held(self, call: Admitted) -> Iterator[Admitted]:
        """``call`` for a ``with`` block that ends with the handler."""
        try:
            yield call
        finally:
            self.leave(call)

    def watch(
        self, requests: Iterator[T], context: Any, call: Admitted, round: int = 0
    ) -> Watched[T]:
        """``requests``, cut (and recorded) if the caller keeps the server waiting.

        The caller reads ``DEADLINE_EXCEEDED`` with the reason, as a download it
        stops reading does (:meth:`deliver`).
        """

        def cut(reason: str) -> None:
            try:
                self._ex.rejections.add(
                    participant=call.name,
                    method=call.method,
                    round=round,
                    kind="idle",
                    reason=reason,
                )
                self.refused(call.name, "idle")
            finally:
                _cancel_with(context, grpc.StatusCode.DEADLINE_EXCEEDED, reason)

        return self.watchdog.watch(requests, cancel=_later, on_cut=cut)

    def deliver(
        self, messages: Iterator[T], context: Any, call: Admitted
    ) -> Delivering[T]:
        """``messages`` for a handler to stream to its caller, cut if it stops reading.

        A message the caller leaves untaken longer than ``idle_s`` (its
        flow-control window stays full) cancels the call with
        ``DEADLINE_EXCEEDED`` and the reason, which the caller reads after what
        it had buffered, and records an ``idle`` refusal, as a request stream's
        silence does (:meth:`watch`): such a call would otherwise hold a
        coordinator thread, blocked in gRPC's send, until the caller gave up.
        """

        def cut(reason: str) -> None:
            try:  # recorded first: the record is there once the slot is free
                self._ex.rejections.add(
                    participant=call.name,
                    method=call.method,
                    round=0,
                    kind="idle",
                    reason=reason,
                )
                self.refused(call.name, "idle")
            finally:
                _cancel_with(context, grpc.StatusCode.DEADLINE_EXCEEDED, reason)

        delivering = self.watchdog.deliver(messages, cut=cut)
        if not context.add_callback(delivering.forget):
            delivering.forget()  # the call already ended
        return delivering

    def stopper(
        self, messages: Watched[Any], context: Any, call: Admitted, round: int
    ) -> Callable[[str], None]:
        """A function that ends the upload ``messages`` reads, from any thread.

        Given a reason, it marks the stream cut (the handler's read raises
        :class:`~.watchdog.StreamCut` and answers nothing more), records a
        ``stale`` refusal with that reason, and cancels the call with the
        refusal's status and reason, which the sender reads. The executor calls
        it when the upload's job closes (:meth:`~.executor.GrpcExecutor.abandon`).
        """

        def stop(reason: str) -> None:
            if not messages.stop():
                return  # the upload ended, or the watchdog cut it, meanwhile
            refusal = SubmissionRefused("stale", reason, participant=call.name)
            self._ex.reject(call.name, call.method, refusal, round)
            self.refused(call.name, refusal.kind)
            _cancel_with(context, CODES[refusal.kind], reason)

        return stop

    def refused(self, name: str | None, kind: str) -> None:
        """Charge a refusal to ``name``'s budget (not one refused for using it up)."""
        if kind != "throttled":
            self.throttle.charge(name or _NAMELESS)

    def refuse_nameless(self, exc: AuthenticationFailed) -> None:
        """Charge an unauthenticated call (to the name it claimed, if any)."""
        self.throttle.charge(exc.name or _NAMELESS)

    def revoked(self, name: str, reason: str) -> None:
        """``name``'s certificate no longer passes: expel it, cancel its calls."""
        self._ex.expel(name, reason)
        cancelled = self.admission.cancel_peer(name, keep=_STREAMS)
        if cancelled:
            logger.warning("cancelled %d open call(s) of %s", cancelled, name)


#: A revoked participant's task stream is ended by the executor, with the reason,
#: rather than cancelled, so that the site hears why and stops dialling.
_STREAMS: Sequence[str] = ("Subscribe",)


def _later() -> None:
    """The watchdog's cancel for a request stream: ``cut`` cancels, with a reason."""


def _cancel_with(context: Any, code: grpc.StatusCode, details: str) -> None:
    """Cancel ``context``'s call from any thread, answering ``code`` and ``details``.

    A servicer answers with a status from its handler's thread only
    (``context.abort``), and that thread is blocked reading the request;
    ``context.cancel()`` ends the call with a bare ``CANCELLED``. The core call
    beneath can be cancelled with a status, which gRPC sends as the call's
    trailers (``grpc_call_cancel_with_status``), but grpcio reaches it only
    through a private attribute: where a grpcio version lacks it, the call is
    cancelled plainly, and the sender reads ``CANCELLED`` (the record still holds
    the reason). ``tests/adversarial/test_upload_deadline.py`` checks the reason
    arrives.
    """
    core = getattr(getattr(context, "_rpc_event", None), "call", None)
    if core is not None:
        try:
            core.cancel(code.value[0], details)
            return
        except Exception:
            logger.debug("cancelling with a status failed; cancelling", exc_info=True)
    context.cancel()
