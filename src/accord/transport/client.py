"""A participant's connection to the coordinator, with accord's types and errors.

:class:`CoordinatorClient` dials out (a site opens no inbound port), presents the
site's certificate and trusts only the federation's CA. Its methods take and return
the plain types of :mod:`accord.transport.messages`, and translate a gRPC status
back into accord's errors with the same table the server used: a refusal becomes
:class:`~accord.errors.SubmissionRefused` of the same kind with the coordinator's
reason; anything else (unreachable, handshake refused, certificate refused) becomes
:class:`~accord.errors.TransportError` carrying the status name. A received model is
checked chunk by chunk (order, bounds, exact size) before anyone reads it. An
upload names its run, round and stage in its call metadata
(:mod:`~accord.transport.call_metadata`), which the coordinator checks before it
reads the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc

import accord
from accord.errors import SubmissionRefused, TransportError
from accord.transport import codec
from accord.transport.call_metadata import UploadTag
from accord.transport.enrolment import IdentityFiles
from accord.transport.messages import (
    PROTOCOL_VERSION,
    EvalReport,
    FailureReport,
    Goodbye,
    PackedHeader,
    Receipt,
    SecAggHeader,
    TaskOrder,
    UpdateHeader,
    Welcome,
)
from accord.transport.proto import accord_pb2 as pb
from accord.transport.rpc import METHODS, path
from accord.transport.secure_codec import secagg_frames
from accord.transport.security import (
    CLIENT_OPTIONS,
    INSECURE_NAME_KEY,
    channel_credentials,
    check_insecure_host,
)
from accord.transport.status import REFUSAL_KEY, kind_of

__all__ = ["AdminClient", "CoordinatorClient", "translate"]

logger = logging.getLogger(__name__)
_VERSION = f"accord {accord.__version__}"


def translate(exc: grpc.RpcError) -> Exception:
    """The accord error for a failed call: a refusal, or a transport problem."""
    code = exc.code()
    details = exc.details() or code.name
    trailing = dict(exc.trailing_metadata() or ())
    kind = kind_of(code, trailing.get(REFUSAL_KEY))
    if kind is not None:
        return SubmissionRefused(kind, details)
    return TransportError(f"{code.name}: {details}", code=code.name)


def _channel(
    target: str,
    identity: IdentityFiles | None,
    *,
    insecure: bool,
    server_name: str | None,
) -> Any:
    options = list(CLIENT_OPTIONS)
    if insecure:
        check_insecure_host(target)
        return grpc.insecure_channel(target, options=options)
    if identity is None:
        raise ValueError("a TLS channel needs the site's identity (or insecure=True)")
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, channel_credentials(identity), options=options)


def _serialize(msg: Any) -> bytes:
    """A message's wire bytes; frames already serialized go out as they are."""
    return msg if isinstance(msg, bytes) else bytes(msg.SerializeToString())


class _Base:
    def __init__(
        self,
        target: str,
        *,
        identity: IdentityFiles | None,
        insecure_name: str | None = None,
        server_name: str | None = None,
    ) -> None:
        insecure = insecure_name is not None
        self.target = target
        self._channel = _channel(
            target, identity, insecure=insecure, server_name=server_name
        )
        self._metadata = ((INSECURE_NAME_KEY, insecure_name),) if insecure else None
        self._calls: dict[str, Any] = {}
        for m in METHODS:
            factory = getattr(self._channel, m.shape)
            parse: Any = m.response.FromString
            if m.response is pb.ModelPart:
                parse = codec.parse_chunk_or(parse)  # chunks: a view, no copy
            self._calls[m.name] = factory(
                path(m.service, m.name),
                request_serializer=_serialize,
                response_deserializer=parse,
            )

    def close(self) -> None:
        """Close the channel and every call on it."""
        self._channel.close()

    def __enter__(self) -> _Base:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CoordinatorClient(_Base):
    """The Federation service, as a participant calls it.

    ``identity_certificate`` (DER) is the site's identity certificate, presented
    with every subscription so that the site can take part in secure rounds.
    """

    def __init__(
        self,
        target: str,
        *,
        identity: IdentityFiles | None,
        insecure_name: str | None = None,
        server_name: str | None = None,
        identity_certificate: bytes = b"",
    ) -> None:
        super().__init__(
            target,
            identity=identity,
            insecure_name=insecure_name,
            server_name=server_name,
        )
        self._identity_certificate = identity_certificate

    def subscribe(self) -> Iterator[TaskOrder | Goodbye | Welcome]:
        """The task stream; ends at a Goodbye, raises when the stream breaks."""
        hello = pb.Hello(
            protocol=PROTOCOL_VERSION,
            software=_VERSION,
            identity_certificate=self._identity_certificate,
        )
        call = self._calls["Subscribe"](hello, metadata=self._metadata)
        try:
            for msg in call:
                yield codec.decode_task(msg)
        except grpc.RpcError as exc:
            raise translate(exc) from None
        finally:
            call.cancel()

    def fetch_model(
        self,
        run_id: str,
        digest: str,
        *,
        timeout_s: float = 3600.0,
        into: bytearray | None = None,
    ) -> tuple[PackedHeader, bytearray]:
        """Download the global model ``digest``: its header and packed bytes.

        The bytes are written into ``into`` when it has the model's size (a
        buffer nothing reads any more), else into a new one.
        """
        request = pb.ModelRequest(run_id=run_id, digest=digest)
        try:
            parts = self._calls["FetchModel"](
                request, metadata=self._metadata, timeout=timeout_s
            )
            return _assemble((codec.decode_model_part(p) for p in parts), into)
        except grpc.RpcError as exc:
            raise translate(exc) from None

    def submit_update(
        self, header: UpdateHeader, buffer: Any, *, timeout_s: float = 3600.0
    ) -> Receipt:
        """Stream an update (header, then the packed bytes in chunks)."""
        tag = UploadTag(header.run_id, header.round)
        frames = codec.update_frames(header, buffer)
        return self._unary("SubmitUpdate", frames, timeout_s, tag=tag)

    def submit_secagg(
        self, header: SecAggHeader, payload: bytes, *, timeout_s: float = 3600.0
    ) -> Receipt:
        """Stream a message of a secure round (header, then the payload in chunks)."""
        tag = UploadTag(header.run_id, header.round, header.stage)
        frames = secagg_frames(header, payload)
        return self._unary("SubmitSecAgg", frames, timeout_s, tag=tag)

    def submit_eval(self, report: EvalReport, *, timeout_s: float = 60.0) -> Receipt:
        """Send a site's scores of the global model."""
        return self._unary("SubmitEval", codec.encode_eval(report), timeout_s)

    def report_failure(
        self, report: FailureReport, *, timeout_s: float = 60.0
    ) -> Receipt:
        """Tell the coordinator a job produced nothing usable, and why."""
        return self._unary("ReportFailure", codec.encode_failure(report), timeout_s)

    def _unary(
        self,
        name: str,
        request: Any,
        timeout_s: float,
        *,
        tag: UploadTag | None = None,
    ) -> Receipt:
        metadata = (*(self._metadata or ()), *(tag.metadata() if tag else ()))
        try:
            reply = self._calls[name](
                request, metadata=metadata or None, timeout=timeout_s
            )
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return codec.decode_receipt(reply)


class AdminClient(_Base):
    """The Admin service (needs an admin certificate)."""

    def status(self) -> pb.StatusReply:
        """The coordinator's run, round and participants."""
        try:
            reply: pb.StatusReply = self._calls["Status"](
                pb.StatusRequest(), metadata=self._metadata, timeout=30.0
            )
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return reply

    def stop(self, reason: str) -> bool:
        """Ask the coordinator to stop the run."""
        try:
            reply = self._calls["Stop"](
                pb.StopRequest(reason=reason), metadata=self._metadata, timeout=30.0
            )
        except grpc.RpcError as exc:
            raise translate(exc) from None
        return bool(reply.accepted)


#: The largest model buffer allocated before its bytes arrive (1 GiB).
_PREALLOCATE_MAX = 1 << 30


def _allocated(size: int) -> bytearray:
    try:
        return bytearray(size)
    except MemoryError:
        raise SubmissionRefused(
            "too_large", f"a model of {size} bytes does not fit in this site's memory"
        ) from None


def _assemble(
    parts: Iterator[PackedHeader | codec.Chunk], into: bytearray | None = None
) -> tuple[PackedHeader, bytearray]:
    header = next(parts, None)
    if not isinstance(header, PackedHeader):
        raise SubmissionRefused(
            "malformed", "the model stream did not start with a header"
        )
    if header.total_bytes != header.spec.packed_nbytes:
        raise SubmissionRefused(
            "malformed",
            f"the model header announces {header.total_bytes} bytes for a layout of "
            f"{header.spec.packed_nbytes}",
        )
    total = header.total_bytes
    buffer = into
    if buffer is None or len(buffer) != total:
        # Up front only what a model this size plausibly is: a header announcing
        # more grows its buffer as the bytes come, so a lie costs the liar the
        # bytes it must send, not this process its memory.
        buffer = _allocated(total if total <= _PREALLOCATE_MAX else 0)
    filled = 0
    for part in parts:
        if not isinstance(part, codec.Chunk) or part.offset != filled:
            raise SubmissionRefused("malformed", "model chunks out of order")
        end = filled + len(part.data)
        if end > total:
            raise SubmissionRefused("too_large", "the model stream runs past its size")
        if end > len(buffer):
            try:
                buffer += part.data
            except MemoryError:
                raise SubmissionRefused(
                    "too_large",
                    f"the model announced as {total} bytes does not fit in this "
                    "site's memory",
                ) from None
        else:
            buffer[filled:end] = part.data
        filled = end
    if filled != total:
        raise SubmissionRefused(
            "malformed", f"the model stream ended after {filled} of {total} bytes"
        )
    return header, buffer
