"""The coordinator's gRPC server: authenticate, decode, hand to the executor, answer.

Every handler first establishes who is calling (:class:`~.security.Authenticator`:
the verified certificate, checked against CRL and roster on each call), then
decodes the request with :mod:`~accord.transport.codec` and passes it to the
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
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc

from accord.errors import (
    AuthenticationFailed,
    PkiError,
    SubmissionRefused,
    TransportError,
)
from accord.transport import codec
from accord.transport.codec import Malformed, parse_or_malformed
from accord.transport.enrolment import IdentityFiles
from accord.transport.executor import GrpcExecutor
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


#: Models up to this size are serialized once per round and the same bytes go to
#: every participant; larger ones are framed again for each (one copy per chunk),
#: so that the coordinator never holds a second copy of a huge model.
FRAME_CACHE_BYTES = 512 * 2**20


class _Handlers:
    """The RPC handlers of both services, bound to one executor."""

    def __init__(self, executor: GrpcExecutor, auth: Authenticator) -> None:
        self._ex = executor
        self._auth = auth
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
            self._ex.reject(exc.participant or name, method, exc, round())
            failure = _Failure(CODES[exc.kind], exc.reason, exc.kind)
        except AuthenticationFailed as exc:
            self._ex.rejections.add(
                participant=exc.name,
                method=method,
                round=round(),
                kind="unauthenticated",
                reason=exc.reason,
            )
            failure = _Failure(grpc.StatusCode.UNAUTHENTICATED, exc.reason)
        except PkiError as exc:
            logger.error("cannot verify callers: %s", exc)
            failure = _Failure(
                grpc.StatusCode.UNAVAILABLE, "the coordinator cannot check certificates"
            )
        except Exception:
            if not context.is_active():
                raise  # the caller went away; nothing to answer
            logger.exception("%s failed", method)
            failure = _Failure(
                grpc.StatusCode.INTERNAL, "internal error; the coordinator logged it"
            )
        _abort(context, failure)

    def _who(self, context: Any, method: str, roles: Collection[Role]) -> str:
        return self._run(context, method, lambda: self._auth.require(context, roles))

    def _parsed(
        self, context: Any, method: str, request: T | Malformed, name: str
    ) -> T:
        def check() -> T:
            if isinstance(request, Malformed):
                raise SubmissionRefused(request.kind, request.reason)
            return request

        return self._run(context, method, check, name=name)

    # Federation.

    def subscribe(self, request: Any, context: Any) -> Iterator[pb.Task]:
        name = self._who(context, "Subscribe", _PARTICIPANT)
        hello: pb.Hello = self._parsed(context, "Subscribe", request, name)
        if hello.protocol != PROTOCOL_VERSION:
            _abort(
                context,
                _Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"this coordinator speaks protocol {PROTOCOL_VERSION}, the "
                    f"participant {hello.protocol}; install the same accord version",
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
        trust = self._auth.trust
        for item in stream:  # the CRL as of each message: sites learn revocations
            yield codec.encode_task(item, crl=trust.crl_der() if trust else b"")

    def _identity(
        self, context: Any, name: str, hello: pb.Hello
    ) -> tuple[IdentityCertificate | None, Callable[[], IdentityCertificate] | None]:
        """The identity certificate ``hello`` presents, verified; refuse a bad one."""
        trust, der = self._auth.trust, bytes(hello.identity_certificate)
        if not der:
            return None, None
        if trust is None:
            logger.warning("%s's identity certificate is ignored: no TLS, no CA", name)
            return None, None

        def check() -> IdentityCertificate:
            return verify_presented(der, trust, name=name)

        return self._run(context, "Subscribe", check, name=name), check

    def fetch_model(self, request: Any, context: Any) -> Iterator[bytes]:
        name = self._who(context, "FetchModel", _PARTICIPANT)
        req: pb.ModelRequest = self._parsed(context, "FetchModel", request, name)
        model = self._run(
            context,
            "FetchModel",
            lambda: self._ex.model(name, req.run_id, req.digest),
            name=name,
        )
        yield from self._model_frames(model.header, model.buffer)

    def submit_update(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        name = self._who(context, "SubmitUpdate", _PARTICIPANT)
        seen = [0]  # the round, once the header was read

        def parts() -> Iterator[UpdateHeader | codec.Chunk]:
            for msg in requests:
                if isinstance(msg, Malformed):
                    raise SubmissionRefused(msg.kind, msg.reason)
                part = codec.decode_update_part(msg)
                if isinstance(part, UpdateHeader):
                    seen[0] = part.round
                yield part

        def receive() -> pb.Receipt:
            return codec.encode_receipt(self._ex.receive_update(name, parts()))

        return self._run(
            context, "SubmitUpdate", receive, name=name, round=lambda: seen[0]
        )

    def submit_eval(self, request: Any, context: Any) -> pb.Receipt:
        name = self._who(context, "SubmitEval", _PARTICIPANT)
        msg: pb.EvalReport = self._parsed(context, "SubmitEval", request, name)

        def receive() -> pb.Receipt:
            report = codec.decode_eval(msg)
            return codec.encode_receipt(self._ex.receive_eval(name, report))

        return self._run(
            context, "SubmitEval", receive, name=name, round=lambda: msg.round
        )

    def report_failure(self, request: Any, context: Any) -> pb.Receipt:
        name = self._who(context, "ReportFailure", _PARTICIPANT)
        msg: pb.FailureReport = self._parsed(context, "ReportFailure", request, name)

        def receive() -> pb.Receipt:
            report = codec.decode_failure(msg)
            return codec.encode_receipt(self._ex.receive_failure(name, report))

        return self._run(
            context, "ReportFailure", receive, name=name, round=lambda: msg.round
        )

    def submit_secagg(self, requests: Iterator[Any], context: Any) -> pb.Receipt:
        name = self._who(context, "SubmitSecAgg", _PARTICIPANT)
        seen = [0]  # the round, once the header was read

        def parts() -> Iterator[SecAggHeader | codec.Chunk]:
            for msg in requests:
                if isinstance(msg, Malformed):
                    raise SubmissionRefused(msg.kind, msg.reason)
                part = decode_secagg_part(msg)
                if isinstance(part, SecAggHeader):
                    seen[0] = part.round
                yield part

        def receive() -> pb.Receipt:
            return codec.encode_receipt(self._ex.receive_secagg(name, parts()))

        return self._run(
            context, "SubmitSecAgg", receive, name=name, round=lambda: seen[0]
        )

    # Admin.

    def status(self, request: Any, context: Any) -> pb.StatusReply:
        name = self._who(context, "Status", _ADMIN)
        self._parsed(context, "Status", request, name)
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

    def stop(self, request: Any, context: Any) -> pb.StopReply:
        admin = self._who(context, "Stop", _ADMIN)
        msg: pb.StopRequest = self._parsed(context, "Stop", request, admin)
        reason = msg.reason[:500] or "no reason given"
        logger.warning("%s asked the run to stop: %s", admin, reason)
        self._ex.stop(f"stopped by {admin}: {reason}")
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
    make = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
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
    one executor and serves. :meth:`stop` works before or after it.
    """

    server: Any
    port: int
    address: str
    trust: TrustStore | None = None

    def start(self, executor: GrpcExecutor) -> CoordinatorServer:
        """Answer calls with ``executor``'s handlers from now on; return self."""
        handlers = _Handlers(executor, Authenticator(self.trust))
        # grpc takes handlers after add_*_port, as long as it is before start().
        self.server.add_generic_rpc_handlers(_generic_handlers(handlers))
        self.server.start()
        logger.info("coordinator listening on %s", self.address)
        return self

    def stop(self, grace_s: float | None = 5.0) -> None:
        """Stop accepting calls; give running ones ``grace_s`` to finish."""
        self.server.stop(grace_s).wait()


def bind(
    *,
    listen: str,
    identity: IdentityFiles | None,
    trust: TrustStore | None,
    insecure: bool = False,
    participants: int,
    max_workers: int | None = None,
) -> CoordinatorServer:
    """Claim ``listen`` (``HOST:PORT``, port 0: any) for a server not yet started.

    Mutual TLS needs ``identity`` (the coordinator's key, certificate and CA) and
    ``trust`` (who may call); ``insecure=True`` serves plaintext on loopback only.
    A taken or foreign address raises :class:`~accord.errors.TransportError`.
    """
    if insecure:
        check_insecure_host(listen)
    elif identity is None or trust is None:
        raise ValueError(
            "mutual TLS needs the coordinator's identity and a trust store"
        )
    # Each open task stream holds a thread, and so does each upload in progress.
    workers = max_workers or 4 * participants + 16
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="accord-rpc"
        ),
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=None,
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
        server, port, f"{host}:{port}", None if insecure else trust
    )


def serve(
    executor: GrpcExecutor,
    *,
    listen: str,
    identity: IdentityFiles | None,
    trust: TrustStore | None,
    insecure: bool = False,
    max_workers: int | None = None,
) -> CoordinatorServer:
    """Bind ``listen`` and serve ``executor`` there at once (see :func:`bind`)."""
    bound = bind(
        listen=listen,
        identity=identity,
        trust=trust,
        insecure=insecure,
        participants=len(executor.participants),
        max_workers=max_workers,
    )
    return bound.start(executor)
