"""The coordinator's gRPC server: admit, decode, hand to the executor, answer.

Every handler first passes the :class:`~accord.transport.gate.Gate`, before it reads
a byte of the request: who is calling (the verified certificate, checked against CRL
and roster on each call), whether it was refused too often lately, whether it is a
member of this run (and, for an upload, whether the run, round and stage its call
metadata names has an open job), and whether it may open one more call. Then it
reads the request under a first-byte and idle timeout, decodes it with
:mod:`~accord.transport.codec` and passes it to the
:class:`~accord.transport.executor.GrpcExecutor`. Errors become a gRPC status at
this edge only, by one table (:data:`~accord.transport.status.CODES`): a refusal
answers its kind's code with its readable reason; a certificate problem answers
``UNAUTHENTICATED``; anything unexpected answers ``INTERNAL`` with a generic
message (the traceback stays in the coordinator's log, never goes to a peer).
Undecodable bytes answer ``INVALID_ARGUMENT`` rather than gRPC's bare
``INTERNAL``, thanks to :func:`~accord.transport.codec.parse_or_malformed`.

A participant's identity certificate (in its ``Hello``) is checked here, against
the same trust store as its TLS certificate
(:func:`~accord.transport.identity.verify_presented`); one that fails refuses the
subscription with ``UNAUTHENTICATED``, recorded like any refusal. Without mutual
TLS (``insecure``) there is no CA to check it against, so it is ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc

from accord.errors import (
    AuthenticationFailed,
    PkiError,
    SubmissionRefused,
    TransportError,
)
from accord.transport import codec
from accord.transport.admission import Limits, pool_size
from accord.transport.call_metadata import check_header
from accord.transport.codec import Malformed, parse_or_malformed
from accord.transport.enrolment import IdentityFiles
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
from accord.transport.rpc import ADMIN, FEDERATION, METHODS, Method
from accord.transport.secure_codec import decode_secagg_part
from accord.transport.security import (
    SERVER_OPTIONS,
    Authenticator,
    check_insecure_host,
    server_credentials,
)
from accord.transport.status import CODES, REFUSAL_KEY
from accord.transport.trust import TrustStore
from accord.transport.watchdog import StreamCut

__all__ = ["CoordinatorServer", "bind", "serve"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_PARTICIPANT: tuple[Role, ...] = ("participant",)
_ADMIN: tuple[Role, ...] = ("admin",)


@dataclass(frozen=True)
class _Failure:
    code: grpc.StatusCode
    reason: str
    kind: str | None = None


#: Calls gRPC itself lets wait for a thread before it refuses more (see :func:`bind`).
MAX_PENDING_CALLS = 1024

#: Models up to this size are serialized once per round and the same bytes go to
#: every participant; larger ones are framed again for each (one copy per chunk),
#: so that the coordinator never holds a second copy of a huge model.
FRAME_CACHE_BYTES = 512 * 2**20


class _Handlers:
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
            # Each step under _run: a participant expelled mid-stream (revoked)
            # hears UNAUTHENTICATED with the reason, and stops dialling.
            while (
                item := self._run(
                    context, "Subscribe", lambda: next(stream, None), name=name
                )
            ) is not None:
                yield codec.encode_task(item)

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
        call = self._enter(context, "FetchModel", _PARTICIPANT)
        with self._gate.held(call):
            req: pb.ModelRequest = self._request(requests, context, call)
            model = self._run(
                context,
                "FetchModel",
                lambda: self._ex.model(call.name, req.run_id, req.digest),
                name=call.name,
            )
            yield from self._model_frames(model.header, model.buffer)

    def submit_update(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        call = self._enter(context, "SubmitUpdate", _PARTICIPANT, "update")
        tag = call.tag
        assert tag is not None  # the gate read it for an upload
        with self._gate.held(call):
            messages = self._gate.watch(requests, context, call, tag.round)

            def parts() -> Iterator[UpdateHeader | codec.Chunk]:
                for msg in messages:
                    if isinstance(msg, Malformed):
                        raise SubmissionRefused(msg.kind, msg.reason)
                    part = codec.decode_update_part(msg)
                    if isinstance(part, UpdateHeader):
                        check_header(tag, run_id=part.run_id, round=part.round)
                    yield part

            def receive() -> pb.Receipt:
                receipt = self._ex.receive_update(call.name, parts())
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
        call = self._enter(context, "SubmitSecAgg", _PARTICIPANT, "secagg")
        tag = call.tag
        assert tag is not None  # the gate read it for an upload
        with self._gate.held(call):
            messages = self._gate.watch(requests, context, call, tag.round)

            def parts() -> Iterator[SecAggHeader | codec.Chunk]:
                for msg in messages:
                    if isinstance(msg, Malformed):
                        raise SubmissionRefused(msg.kind, msg.reason)
                    part = decode_secagg_part(msg)
                    if isinstance(part, SecAggHeader):
                        check_header(
                            tag, run_id=part.run_id, round=part.round, stage=part.stage
                        )
                    yield part

            def receive() -> pb.Receipt:
                receipt = self._ex.receive_secagg(call.name, parts())
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
        call = self._enter(context, "Stop", _ADMIN)
        with self._gate.held(call):
            msg: pb.StopRequest = self._request(requests, context, call)
            reason = msg.reason[:500] or "no reason given"
            logger.warning("%s asked the run to stop: %s", call.name, reason)
            self._ex.stop(f"stopped by {call.name}: {reason}")
            return pb.StopReply(accepted=True)


def _abort(context: Any, failure: _Failure) -> NoReturn:
    if failure.kind is not None:
        context.set_trailing_metadata(((REFUSAL_KEY, failure.kind),))
    context.abort(failure.code, failure.reason)
    raise AssertionError("context.abort returned")  # pragma: no cover


def _generic_handlers(handlers: _Handlers) -> list[Any]:
    table: dict[str, Callable[..., Any]] = {
        "Subscribe": handlers.subscribe,
        "FetchModel": handlers.fetch_model,
        "SubmitUpdate": handlers.submit_update,
        "SubmitEval": handlers.submit_eval,
        "ReportFailure": handlers.report_failure,
        "SubmitSecAgg": handlers.submit_secagg,
        "Status": handlers.status,
        "Stop": handlers.stop,
    }
    by_service: dict[str, dict[str, Any]] = {FEDERATION: {}, ADMIN: {}}
    for m in METHODS:
        by_service[m.service][m.name] = _method_handler(m, table[m.name])
    return [
        grpc.method_handlers_generic_handler(service, methods)
        for service, methods in by_service.items()
    ]


def _method_handler(m: Method, fn: Callable[..., Any]) -> Any:
    # A client stream on the server whatever the client calls it (the wire is the
    # same): the handler, and so the gate, runs before the request arrives.
    make = {
        "unary_unary": grpc.stream_unary_rpc_method_handler,
        "unary_stream": grpc.stream_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
    }[m.shape]
    parse: Callable[[bytes], Any] = parse_or_malformed(m.request)
    if m.request in (pb.UpdatePart, pb.SecAggPart):
        parse = codec.parse_chunk_or(parse)  # chunks: a view, no protobuf object
    return make(fn, request_deserializer=parse, response_serializer=_serialize)


def _serialize(msg: Any) -> bytes:
    """A message's wire bytes; frames already serialized go out as they are."""
    return msg if isinstance(msg, bytes) else bytes(msg.SerializeToString())


@dataclass
class CoordinatorServer:
    """A gRPC server bound to its port; it answers calls once started.

    :func:`bind` makes one that holds its address but serves nothing yet, so that a
    caller can claim the address before it commits to anything else (the
    coordinator creates its run only then); :meth:`start` attaches the handlers of
    one executor, behind a :class:`~.gate.Gate` with ``limits``, and serves.
    :meth:`stop` works before or after it.
    """

    server: Any
    port: int
    address: str
    trust: TrustStore | None = None
    limits: Limits = field(default_factory=Limits)
    gate: Gate | None = None

    def start(self, executor: GrpcExecutor) -> CoordinatorServer:
        """Answer calls with ``executor``'s handlers from now on; return self."""
        self.gate = Gate(executor, Authenticator(self.trust), self.limits).start()
        handlers = _Handlers(executor, self.gate)
        # grpc takes handlers after add_*_port, as long as it is before start().
        self.server.add_generic_rpc_handlers(_generic_handlers(handlers))
        self.server.start()
        logger.info("coordinator listening on %s", self.address)
        return self

    def stop(self, grace_s: float | None = 5.0) -> None:
        """Stop accepting calls; give running ones ``grace_s`` to finish."""
        self.server.stop(grace_s).wait()
        if self.gate is not None:
            self.gate.close()


def bind(
    *,
    listen: str,
    identity: IdentityFiles | None,
    trust: TrustStore | None,
    insecure: bool = False,
    participants: int,
    max_workers: int | None = None,
    limits: Limits | None = None,
) -> CoordinatorServer:
    """Claim ``listen`` (``HOST:PORT``, port 0: any) for a server not yet started.

    Mutual TLS needs ``identity`` (the coordinator's key, certificate and CA) and
    ``trust`` (who may call); ``insecure=True`` serves plaintext on loopback only.
    ``limits`` bound the calls each caller may hold (:mod:`~.admission`); the
    thread pool is sized above them, so that they, not the pool, are what bounds.
    A taken or foreign address raises :class:`~accord.errors.TransportError`.
    """
    if insecure:
        check_insecure_host(listen)
    elif identity is None or trust is None:
        raise ValueError(
            "mutual TLS needs the coordinator's identity and a trust store"
        )
    limits = limits or Limits()
    workers = max_workers or pool_size(limits, participants)
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="accord-rpc"
        ),
        options=SERVER_OPTIONS,
        # A backstop against a flood of connections: gRPC itself refuses calls
        # beyond this, far above what the gate admits (refusals take microseconds).
        maximum_concurrent_rpcs=max(MAX_PENDING_CALLS, 4 * workers),
    )
    try:
        if insecure:
            port = server.add_insecure_port(listen)
        else:
            assert identity is not None and trust is not None
            port = server.add_secure_port(listen, server_credentials(identity, trust))
    except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
        port = 0
    if not port:
        server.stop(None)
        raise TransportError(
            f"cannot listen on {listen}: the address is taken (another coordinator "
            "may be running there) or is not one of this host's"
        )
    host = listen.rpartition(":")[0]
    return CoordinatorServer(
        server, port, f"{host}:{port}", None if insecure else trust, limits
    )


def serve(
    executor: GrpcExecutor,
    *,
    listen: str,
    identity: IdentityFiles | None,
    trust: TrustStore | None,
    insecure: bool = False,
    max_workers: int | None = None,
    limits: Limits | None = None,
) -> CoordinatorServer:
    """Bind ``listen`` and serve ``executor`` there at once (see :func:`bind`)."""
    bound = bind(
        listen=listen,
        identity=identity,
        trust=trust,
        insecure=insecure,
        participants=len(executor.participants),
        max_workers=max_workers,
        limits=limits,
    )
    return bound.start(executor)
