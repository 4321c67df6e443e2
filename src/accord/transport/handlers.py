"""The coordinator's RPC handlers: admit, read, decode, hand to the executor, answer.

Each handler passes the :class:`~accord.transport.gate.Gate` first, before it reads a
byte of the request; then it reads the request under the gate's watchdog, decodes it
with :mod:`~accord.transport.codec` and passes it to the
:class:`~accord.transport.executor.GrpcExecutor`; what it streams back (a model
download, a task stream) goes out under the watchdog too
(:meth:`~accord.transport.gate.Gate.deliver`). Errors become a gRPC status here
only, by one table (:data:`~accord.transport.status.CODES`); see
:mod:`accord.transport.server` for the whole picture. :mod:`~accord.transport.server`
registers these handlers and owns the gRPC server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc

from accord.errors import (
    AuthenticationFailed,
    PkiError,
    SubmissionRefused,
)
from accord.transport import codec
from accord.transport.call_metadata import check_header
from accord.transport.codec import Malformed
from accord.transport.executor import GrpcExecutor
from accord.transport.gate import Admitted, Gate, Upload
from accord.transport.identity import IdentityCertificate, verify_presented
from accord.transport.messages import (
    PROTOCOL_VERSION,
    PackedHeader,
    SecAggHeader,
    UpdateHeader,
)
from accord.transport.proto import accord_pb2 as pb
from accord.transport.roster import Role
from accord.transport.secure_codec import decode_secagg_part
from accord.transport.status import CODES, REFUSAL_KEY
from accord.transport.watchdog import StreamCut, Watched

__all__ = ["FRAME_CACHE_BYTES", "Handlers"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_PARTICIPANT: tuple[Role, ...] = ("participant",)
_ADMIN: tuple[Role, ...] = ("admin",)


@dataclass(frozen=True)
class _Failure:
    code: grpc.StatusCode
    reason: str
    kind: str | None = None


#: Models up to this size are serialized once per round and the same bytes go to
#: every participant; larger ones are framed again for each (one copy per chunk),
#: so that the coordinator never holds a second copy of a huge model.
FRAME_CACHE_BYTES = 512 * 2**20


class Handlers:
    """The RPC handlers of both services, bound to one executor and its gate.

    Every method is registered as a client stream (see :func:`_method_handler`), so
    that a handler runs, and the :class:`~.gate.Gate` checks the caller, as soon as
    the call opens: gRPC would otherwise hold a thread waiting for a unary request
    before any of accord's code runs.
    """

    def __init__(self, executor: GrpcExecutor, gate: Gate) -> None:
        self._ex = executor
        self._gate = gate
        self._frames_lock = threading.Lock()
        self._frames: tuple[object, list[bytes]] | None = None

    def _model_frames(self, header: PackedHeader, buffer: Any) -> Iterable[bytes]:
        """The published model's FetchModel stream, serialized once per model."""
        if header.total_bytes > FRAME_CACHE_BYTES:
            return codec.model_frames(header, buffer)
        with self._frames_lock:
            if self._frames is None or self._frames[0] is not buffer:
                self._frames = None  # drop the old model's frames first
                self._frames = (buffer, list(codec.model_frames(header, buffer)))
            return self._frames[1]

    # Plumbing: errors become a status here and nowhere else.

    def _run(
        self,
        context: Any,
        method: str,
        fn: Callable[[], T],
        *,
        name: str | None = None,
        round: Callable[[], int] = lambda: 0,
    ) -> T:
        failure: _Failure
        try:
            return fn()
        except SubmissionRefused as exc:
            who = exc.participant or name
            self._ex.reject(who, method, exc, round())
            self._gate.refused(who, exc.kind)
            failure = _Failure(CODES[exc.kind], exc.reason, exc.kind)
        except AuthenticationFailed as exc:
            self._ex.rejections.add(
                participant=exc.name,
                method=method,
                round=round(),
                kind="unauthenticated",
                reason=exc.reason,
            )
            self._gate.refuse_nameless(exc)
            failure = _Failure(grpc.StatusCode.UNAUTHENTICATED, exc.reason)
        except StreamCut:
            raise  # cancelled by the watchdog, which recorded it; no answer
        except PkiError as exc:
            logger.error("cannot verify callers: %s", exc)
            failure = _Failure(
                grpc.StatusCode.UNAVAILABLE, "the coordinator cannot check certificates"
            )
        except Exception:
            if not context.is_active():
                raise  # the caller went away, or the watchdog cut it; no answer
            logger.exception("%s failed", method)
            failure = _Failure(
                grpc.StatusCode.INTERNAL, "internal error; the coordinator logged it"
            )
        _abort(context, failure)

    def _enter(
        self,
        context: Any,
        method: str,
        roles: Collection[Role],
        upload: Upload | None = None,
    ) -> Admitted:
        seen = [0]  # the round an upload names, once read

        def enter() -> Admitted:
            return self._gate.enter(context, method, roles, upload=upload, seen=seen)

        return self._run(context, method, enter, round=lambda: seen[0])

    def _request(self, requests: Iterator[Any], context: Any, call: Admitted) -> Any:
        """The call's one request message, read under the watchdog."""
        messages = self._gate.watch(requests, context, call)

        def first() -> Any:
            try:
                msg = next(messages, None)
            finally:
                messages.close()
            if msg is None:
                raise SubmissionRefused(
                    "malformed", f"{call.method} needs a request message; none came"
                )
            if isinstance(msg, Malformed):
                raise SubmissionRefused(msg.kind, msg.reason)
            return msg

        return self._run(context, call.method, first, name=call.name)

    # Federation.

    def subscribe(self, requests: Iterator[Any], context: Any) -> Iterator[pb.Task]:
        """A participant's task stream: a welcome, then its jobs until goodbye."""
        call = self._enter(context, "Subscribe", _PARTICIPANT)
        with self._gate.held(call):
            name = call.name
            hello: pb.Hello = self._request(requests, context, call)
            if hello.protocol != PROTOCOL_VERSION:
                _abort(
                    context,
                    _Failure(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"this coordinator speaks protocol {PROTOCOL_VERSION}, the "
                        f"participant {hello.protocol}; install the same accord "
                        "version",
                    ),
                )
            identity, recheck = self._identity(context, name, hello)
            stream = self._run(
                context,
                "Subscribe",
                lambda: self._ex.subscribe(
                    name, context.is_active, identity=identity, recheck=recheck
                ),
                name=name,
            )
            context.add_callback(lambda: self._ex.wake(name))
            trust = self._gate.auth.trust

            def tasks() -> Iterator[pb.Task]:
                # Each step under _run: a participant expelled mid-stream
                # (revoked) hears UNAUTHENTICATED with the reason, and stops
                # dialling.
                while (
                    item := self._run(
                        context, "Subscribe", lambda: next(stream, None), name=name
                    )
                ) is not None:
                    # The CRL as of each message: sites learn revocations.
                    crl = trust.crl_der() if trust else b""
                    yield codec.encode_task(item, crl=crl)

            # Idle by design while no task is due (waiting for one never counts);
            # cut only if a task stays unread for idle_s: the site then dials
            # again and gets its waiting jobs (Links' grace period).
            yield from self._gate.deliver(tasks(), context, call)

    def _identity(
        self, context: Any, name: str, hello: pb.Hello
    ) -> tuple[IdentityCertificate | None, Callable[[], IdentityCertificate] | None]:
        """The identity certificate ``hello`` presents, verified; refuse a bad one."""
        trust, der = self._gate.auth.trust, bytes(hello.identity_certificate)
        if not der:
            return None, None
        if trust is None:
            logger.warning("%s's identity certificate is ignored: no TLS, no CA", name)
            return None, None

        def check() -> IdentityCertificate:
            return verify_presented(der, trust, name=name)

        return self._run(context, "Subscribe", check, name=name), check

    def fetch_model(self, requests: Iterator[Any], context: Any) -> Iterator[bytes]:
        """The published global model, in chunks."""
        call = self._enter(context, "FetchModel", _PARTICIPANT)
        with self._gate.held(call):
            req: pb.ModelRequest = self._request(requests, context, call)
            model = self._run(
                context,
                "FetchModel",
                lambda: self._ex.model(call.name, req.run_id, req.digest),
                name=call.name,
            )
            # Cut if the caller stops reading: a blocked send holds this thread.
            frames = iter(self._model_frames(model.header, model.buffer))
            yield from self._gate.deliver(frames, context, call)

    def submit_update(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        """Receive an update stream; answer its receipt."""
        call = self._enter(context, "SubmitUpdate", _PARTICIPANT, "update")
        tag = call.tag
        assert tag is not None  # the gate read it for an upload
        with self._gate.held(call):
            messages = self._gate.watch(requests, context, call, tag.round)
            stop = self._gate.stopper(messages, context, call, tag.round)

            def parts() -> Iterator[UpdateHeader | codec.Chunk]:
                for msg in messages:
                    if isinstance(msg, Malformed):
                        raise SubmissionRefused(msg.kind, msg.reason)
                    part = _not_empty(codec.decode_update_part(msg))
                    if isinstance(part, UpdateHeader):
                        check_header(tag, run_id=part.run_id, round=part.round)
                    yield part

            def receive() -> pb.Receipt:
                with _stopped_quietly(messages):
                    receipt = self._ex.receive_update(call.name, parts(), reader=stop)
                return codec.encode_receipt(receipt)

            try:
                return self._run(
                    context,
                    "SubmitUpdate",
                    receive,
                    name=call.name,
                    round=lambda: tag.round,
                )
            finally:
                messages.close()

    def submit_eval(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        """Receive a site's scores of the global model."""
        call = self._enter(context, "SubmitEval", _PARTICIPANT)
        with self._gate.held(call):
            msg: pb.EvalReport = self._request(requests, context, call)

            def receive() -> pb.Receipt:
                report = codec.decode_eval(msg)
                return codec.encode_receipt(self._ex.receive_eval(call.name, report))

            return self._run(
                context, "SubmitEval", receive, name=call.name, round=lambda: msg.round
            )

    def report_failure(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        """Receive a site's report that a job produced nothing."""
        call = self._enter(context, "ReportFailure", _PARTICIPANT)
        with self._gate.held(call):
            msg: pb.FailureReport = self._request(requests, context, call)

            def receive() -> pb.Receipt:
                report = codec.decode_failure(msg)
                receipt = self._ex.receive_failure(call.name, report)
                return codec.encode_receipt(receipt)

            return self._run(
                context,
                "ReportFailure",
                receive,
                name=call.name,
                round=lambda: msg.round,
            )

    def submit_secagg(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        """Receive one message of a secure round; answer its receipt."""
        call = self._enter(context, "SubmitSecAgg", _PARTICIPANT, "secagg")
        tag = call.tag
        assert tag is not None  # the gate read it for an upload
        with self._gate.held(call):
            messages = self._gate.watch(requests, context, call, tag.round)
            stop = self._gate.stopper(messages, context, call, tag.round)

            def parts() -> Iterator[SecAggHeader | codec.Chunk]:
                for msg in messages:
                    if isinstance(msg, Malformed):
                        raise SubmissionRefused(msg.kind, msg.reason)
                    part = _not_empty(decode_secagg_part(msg))
                    if isinstance(part, SecAggHeader):
                        check_header(
                            tag, run_id=part.run_id, round=part.round, stage=part.stage
                        )
                    yield part

            def receive() -> pb.Receipt:
                with _stopped_quietly(messages):
                    receipt = self._ex.receive_secagg(call.name, parts(), reader=stop)
                return codec.encode_receipt(receipt)

            try:
                return self._run(
                    context,
                    "SubmitSecAgg",
                    receive,
                    name=call.name,
                    round=lambda: tag.round,
                )
            finally:
                messages.close()

    # Admin.

    def status(self, requests: Iterator[Any], context: Any) -> pb.StatusReply:
        """The run, round and participants, for an admin."""
        call = self._enter(context, "Status", _ADMIN)
        with self._gate.held(call):
            self._request(requests, context, call)
            number, states, stopping = self._ex.status()
            return pb.StatusReply(
                run_id=self._ex.run_id,
                round=number,
                participants=[
                    pb.ParticipantStatus(
                        name=s.name, connected=s.connected, last_round=s.last_round
                    )
                    for s in states
                ],
                rejections=len(self._ex.rejections),
                stopping=stopping,
            )

    def stop(self, requests: Iterator[Any], context: Any) -> pb.StopReply:
        """Ask the run to stop, for an admin."""
        call = self._enter(context, "Stop", _ADMIN)
        with self._gate.held(call):
            msg: pb.StopRequest = self._request(requests, context, call)
            reason = msg.reason[:500] or "no reason given"
            logger.warning("%s asked the run to stop: %s", call.name, reason)
            self._ex.stop(f"stopped by {call.name}: {reason}")
            return pb.StopReply(accepted=True)


P = TypeVar("P")


def _not_empty(part: P) -> P:
    """Refuse a chunk without bytes: it carries nothing but a reset idle timer.

    A sender never needs one (its last chunk ends the data; an update of no
    bytes has no chunks), and a stream of them would keep an upload alive
    under the watchdog for nothing.
    """
    if isinstance(part, codec.Chunk) and not len(part.data):
        raise SubmissionRefused(
            "malformed",
            f"an empty chunk at offset {part.offset}: a chunk must carry bytes",
        )
    return part


@contextmanager
def _stopped_quietly(messages: Watched[Any]) -> Iterator[None]:
    """Let a refusal end an upload its job's end stopped, unrecorded a second time.

    The job's end records the refusal and answers the sender
    (:meth:`~.gate.Gate.stopper`); the executor may still refuse the update it
    was finishing meanwhile (its round closed), which must not be recorded again.
    """
    try:
        yield
    except SubmissionRefused as exc:
        if messages.cut:
            raise StreamCut("the upload's job ended") from exc
        raise


def _abort(context: Any, failure: _Failure) -> NoReturn:
    if failure.kind is not None:
        context.set_trailing_metadata(((REFUSAL_KEY, failure.kind),))
    context.abort(failure.code, failure.reason)
    raise AssertionError("context.abort returned")  # pragma: no cover
