"""The coordinator's gRPC server: admit, decode, hand to the executor, answer.

Every handler first passes the :class:`~accord.transport.gate.Gate`, before it reads
a byte of the request: who is calling (the verified certificate, checked against CRL
and roster on each call), whether it was refused too often lately, whether it is a
member of this run (and, for an upload, whether the run, round and stage its call
metadata names has an open job), and whether it may open one more call. Then it
reads the request under a first-byte and idle timeout, decodes it with
:mod:`~accord.transport.codec` and passes it to the
:class:`~accord.transport.executor.GrpcExecutor`. Errors become a gRPC status at
this edge only (:mod:`~accord.transport.handlers`), by one table
(:data:`~accord.transport.status.CODES`): a refusal answers its kind's code with its
readable reason; a certificate problem answers ``UNAUTHENTICATED``; anything
unexpected answers ``INTERNAL`` with a generic message (the traceback stays in the
coordinator's log, never goes to a peer). Undecodable bytes answer
``INVALID_ARGUMENT`` rather than gRPC's bare ``INTERNAL``, thanks to
:func:`~accord.transport.codec.parse_or_malformed`.

A participant's identity certificate (in its ``Hello``) is checked here, against
the same trust store as its TLS certificate
(:func:`~accord.transport.identity.verify_presented`); one that fails refuses the
subscription with ``UNAUTHENTICATED``, recorded like any refusal. Without mutual
TLS (``insecure``) there is no CA to check it against, so it is ignored.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from accord.errors import TransportError
from accord.transport import codec
from accord.transport.admission import Limits, pool_size
from accord.transport.codec import parse_or_malformed
from accord.transport.enrolment import IdentityFiles
from accord.transport.executor import GrpcExecutor
from accord.transport.gate import Gate
from accord.transport.handlers import Handlers
from accord.transport.proto import accord_pb2 as pb
from accord.transport.rpc import ADMIN, FEDERATION, METHODS, Method
from accord.transport.security import (
    SERVER_OPTIONS,
    Authenticator,
    check_insecure_host,
    server_credentials,
)
from accord.transport.trust import TrustStore

__all__ = ["CoordinatorServer", "bind", "serve"]

#: Calls gRPC itself lets wait for a thread before it refuses more (see :func:`bind`).
MAX_PENDING_CALLS = 1024

logger = logging.getLogger(__name__)

#: How long :meth:`CoordinatorServer.stop` waits for gRPC past the grace period.
STOP_WAIT_S = 30.0


def _generic_handlers(handlers: Handlers) -> list[Any]:
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
        handlers = Handlers(executor, self.gate)
        # grpc takes handlers after add_*_port, as long as it is before start().
        self.server.add_generic_rpc_handlers(_generic_handlers(handlers))
        self.server.start()
        logger.info("coordinator listening on %s", self.address)
        return self

    def stop(self, grace_s: float | None = 5.0, *, wait_s: float = STOP_WAIT_S) -> None:
        """Stop accepting calls; give running ones ``grace_s`` to finish.

        Then the calls still open are cancelled, and gRPC is waited for
        ``wait_s`` more at most: past that, every thread's stack goes to the log
        (where it hangs) and the caller goes on to close the store and end the
        run rather than wait forever.
        """
        stopped = self.server.stop(grace_s)
        if not stopped.wait(timeout=(grace_s or 0.0) + wait_s):
            logger.warning(
                "the gRPC server had not stopped %.0f s after its calls were "
                "cancelled; going on without it (the threads follow)",
                wait_s,
            )
            _log_threads()
        if self.gate is not None:
            self.gate.close()


def _log_threads() -> None:
    """Every thread's stack, to the log: where a server that will not stop hangs."""
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        logger.warning("thread %s:\n%s", names.get(ident, ident), stack)


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
