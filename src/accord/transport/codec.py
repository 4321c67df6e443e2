"""Where protobuf messages become accord's types and back (secure rounds: secure_codec).

Decoding never trusts its input: it came from another organization. Every field is
checked for type and range, a malformed value raises
:class:`~accord.errors.SubmissionRefused` with kind ``malformed`` and a reason the
sender can act on, and nothing is ever unpickled: configurations travel as JSON,
parameters as the raw bytes of :class:`~accord.params.ParamSpec`'s packed layout,
cut into chunks of at most :data:`~accord.transport.messages.CHUNK_BYTES`.

Chunks are the bulk of the traffic (a 40 MB model is 40 of them per participant and
round), so they skip protobuf's objects (:mod:`~accord.transport.frames`):
:func:`chunk_frame` writes a chunk message's
wire bytes with one copy of the data, :func:`model_frames` and
:func:`update_frames` serialize whole streams that way, and :func:`fast_chunk` reads
a chunk message as a view on the received bytes without copying them. The frames are
exactly what protobuf would serialize (a test checks it), and anything that is not a
chunk in that canonical form goes through protobuf's parser, so the checks above
still apply to every message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from accord.errors import RefusalKind, SubmissionRefused
from accord.jsontext import parse_json
from accord.params import ParamSpec, TensorSpec
from accord.records import metric_name_problem, plain_text
from accord.task.protocol import TRAIN_BOUNDS, TrainConfig
from accord.transport.frames import chunk_frame, fast_chunk
from accord.transport.messages import (
    CHUNK_BYTES,
    MAX_MESSAGE_BYTES,
    RUN_FINISHED,
    Chunk,
    EvalReport,
    FailureReport,
    Goodbye,
    JobKind,
    PackedHeader,
    Receipt,
    TaskOrder,
    UpdateHeader,
    Welcome,
)
from accord.transport.proto import accord_pb2 as pb
from accord.transport.secure_codec import decode_secure_fields, secure_task_fields

__all__ = [
    "Chunk",
    "MAX_CRL_BYTES",
    "Malformed",
    "decode_eval",
    "decode_failure",
    "decode_model_part",
    "decode_packed_header",
    "decode_receipt",
    "decode_task",
    "decode_train_config",
    "decode_update_part",
    "chunk_frame",
    "encode_eval",
    "encode_failure",
    "encode_model_parts",
    "encode_packed_header",
    "encode_receipt",
    "encode_task",
    "encode_train_config",
    "encode_update_parts",
    "fast_chunk",
    "iter_chunks",
    "model_frames",
    "parse_chunk_or",
    "parse_or_malformed",
    "update_frames",
]

M = TypeVar("M", bound=Message)
_MAX_TENSORS = 1_000_000
_MAX_RANK = 32
_MAX_METRICS = 256
_MAX_TEXT = 4096
#: Largest CRL a task may carry: about 40 bytes a revoked certificate, so room for
#: some 25,000 revocations.
MAX_CRL_BYTES = 1 << 20
_KINDS: dict[JobKind, pb.JobKind] = {
    "train": pb.JOB_KIND_TRAIN,
    "eval": pb.JOB_KIND_EVAL,
    "secagg": pb.JOB_KIND_SECAGG,
}


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes refused before they became a message (gRPC hands this over).

    ``kind``: ``malformed`` (they do not parse) or ``too_large`` (over
    :data:`~accord.transport.messages.MAX_MESSAGE_BYTES`, not parsed at all).
    """

    message_type: str
    reason: str
    kind: RefusalKind = "malformed"


def _oversized(name: str, size: int) -> Malformed | None:
    if size <= MAX_MESSAGE_BYTES:
        return None
    return Malformed(
        name,
        f"a {name} message of {size} bytes; the limit is {MAX_MESSAGE_BYTES} "
        "(models and updates travel in chunks)",
        "too_large",
    )


def _malformed(reason: str) -> SubmissionRefused:
    return SubmissionRefused("malformed", reason)


def parse_or_malformed(message_type: type[M]) -> Callable[[bytes], M | Malformed]:
    """A gRPC request deserializer that turns undecodable bytes into a Malformed.

    gRPC answers a deserializer's exception with a bare ``INTERNAL``; returning a
    value instead lets the handler answer ``INVALID_ARGUMENT`` with a reason.
    """
    name = message_type.DESCRIPTOR.name

    def parse(data: bytes) -> M | Malformed:
        oversized = _oversized(name, len(data))
        if oversized is not None:
            return oversized
        try:
            return message_type.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Malformed(name, f"not a valid {name} message ({exc})")

    return parse


# Small fields.


#: The longest ledger entry or receipt a message may carry (a round entry of a
#: large federation lists every selected site's outcome).
MAX_LEDGER_TEXT = 4 * 1024 * 1024


def _text(value: str, what: str, *, limit: int = _MAX_TEXT) -> str:
    if len(value) > limit:
        raise _malformed(f"{what} is longer than {limit} characters")
    return value


def _count(value: int, what: str) -> int:
    if value < 0 or value >= 2**63:
        raise _malformed(f"{what} is out of range")
    return int(value)


def _duration(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise _malformed(
            f"duration_s must be a finite non-negative number, not {value}"
        )
    return float(value)


def _metrics(values: Mapping[str, float]) -> dict[str, float]:
    if len(values) > _MAX_METRICS:
        raise _malformed(f"more than {_MAX_METRICS} metrics")
    out: dict[str, float] = {}
    for name in sorted(values):
        problem = metric_name_problem(name)
        if problem is not None:
            raise _malformed(problem)
        value = float(values[name])
        if not math.isfinite(value):
            raise _malformed(f"metric {name!r} is {value}; metrics must be finite")
        out[name] = value
    return out


def _kind(value: int) -> JobKind:
    for kind, code in _KINDS.items():
        if code == value:
            return kind
    raise _malformed(f"unknown job kind {value}")


# Parameters.


def encode_packed_header(header: PackedHeader) -> pb.PackedHeader:
    """The wire form of a packed buffer's header."""
    return pb.PackedHeader(
        tensors=[
            pb.TensorHeader(name=t.name, dtype=t.dtype, shape=list(t.shape))
            for t in header.spec.tensors
        ],
        total_bytes=header.total_bytes,
        digest=header.digest,
    )


def decode_packed_header(msg: pb.PackedHeader) -> PackedHeader:
    """Parse a header; refuse unknown dtypes, duplicate names and absurd shapes."""
    if len(msg.tensors) > _MAX_TENSORS:
        raise _malformed(f"more than {_MAX_TENSORS} tensors")
    tensors: list[TensorSpec] = []
    for t in msg.tensors:
        if len(t.shape) > _MAX_RANK or any(d >= 2**48 for d in t.shape):
            raise _malformed(f"tensor {t.name[:100]!r} has an impossible shape")
        name = _text(t.name, "a tensor name", limit=1024)
        tensors.append(TensorSpec(name, t.dtype, tuple(int(d) for d in t.shape)))
    try:
        spec = ParamSpec(tuple(tensors))
    except ValueError as exc:
        raise _malformed(str(exc)) from None
    digest = _text(msg.digest, "the digest", limit=128)
    return PackedHeader(spec, _count(msg.total_bytes, "total_bytes"), digest)


def iter_chunks(buffer: Any, size: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Cut a packed buffer into chunks of at most ``size`` bytes, in order."""
    mem = memoryview(buffer).cast("B")
    for offset in range(0, mem.nbytes, size):
        yield Chunk(offset, bytes(mem[offset : offset + size]))


def model_frames(header: PackedHeader, buffer: Any) -> Iterator[bytes]:
    """The FetchModel stream as wire bytes: the header, then the buffer in chunks."""
    yield pb.ModelPart(header=encode_packed_header(header)).SerializeToString()
    mem = memoryview(buffer).cast("B")
    for offset in range(0, mem.nbytes, CHUNK_BYTES):
        yield chunk_frame(offset, mem[offset : offset + CHUNK_BYTES])


def update_frames(header: UpdateHeader, buffer: Any) -> Iterator[bytes]:
    """The SubmitUpdate stream as wire bytes, one chunk at a time."""
    yield _update_header_part(header).SerializeToString()
    mem = memoryview(buffer).cast("B")
    for offset in range(0, mem.nbytes, CHUNK_BYTES):
        yield chunk_frame(offset, mem[offset : offset + CHUNK_BYTES])


def parse_chunk_or(
    parse: Callable[[bytes], M | Malformed],
) -> Callable[[bytes], Chunk | M | Malformed]:
    """A deserializer: chunks by :func:`fast_chunk`, the rest by ``parse``."""

    def deserialize(data: bytes) -> Chunk | M | Malformed:
        if len(data) > MAX_MESSAGE_BYTES:
            return parse(data)  # which refuses it unread
        chunk = fast_chunk(data)
        return chunk if chunk is not None else parse(data)

    return deserialize


def encode_model_parts(header: PackedHeader, buffer: Any) -> Iterator[pb.ModelPart]:
    """The FetchModel stream: the header, then the buffer in chunks."""
    yield pb.ModelPart(header=encode_packed_header(header))
    for c in iter_chunks(buffer):
        yield pb.ModelPart(chunk=pb.Chunk(offset=c.offset, data=bytes(c.data)))


def decode_model_part(msg: pb.ModelPart | Chunk) -> PackedHeader | Chunk:
    """One message of the FetchModel stream (a chunk :func:`fast_chunk` read)."""
    if isinstance(msg, Chunk):
        return msg
    which = msg.WhichOneof("part")
    if which == "header":
        return decode_packed_header(msg.header)
    if which == "chunk":
        return Chunk(_count(msg.chunk.offset, "a chunk offset"), msg.chunk.data)
    raise _malformed("a model part holds neither a header nor a chunk")


def _update_header_part(header: UpdateHeader) -> pb.UpdatePart:
    return pb.UpdatePart(
        header=pb.UpdateHeader(
            run_id=header.run_id,
            round=header.round,
            base_digest=header.base_digest,
            params=encode_packed_header(header.params),
            num_examples=header.num_examples,
            duration_s=header.duration_s,
            metrics=dict(header.metrics),
            receipt=header.receipt,
        )
    )


def encode_update_parts(header: UpdateHeader, buffer: Any) -> Iterator[pb.UpdatePart]:
    """The SubmitUpdate stream: the header, then the update in chunks."""
    yield _update_header_part(header)
    for c in iter_chunks(buffer):
        yield pb.UpdatePart(chunk=pb.Chunk(offset=c.offset, data=bytes(c.data)))


def decode_update_part(msg: pb.UpdatePart | Chunk) -> UpdateHeader | Chunk:
    """One message of the SubmitUpdate stream (a chunk :func:`fast_chunk` read)."""
    if isinstance(msg, Chunk):
        return msg
    which = msg.WhichOneof("part")
    if which == "chunk":
        return Chunk(_count(msg.chunk.offset, "a chunk offset"), msg.chunk.data)
    if which != "header":
        raise _malformed("an update part holds neither a header nor a chunk")
    h = msg.header
    return UpdateHeader(
        run_id=_text(h.run_id, "run_id", limit=128),
        round=int(h.round),
        base_digest=_text(h.base_digest, "base_digest", limit=128),
        params=decode_packed_header(h.params),
        num_examples=_count(h.num_examples, "num_examples"),
        duration_s=_duration(h.duration_s),
        metrics=_metrics(h.metrics),
        receipt=_text(h.receipt, "receipt", limit=MAX_LEDGER_TEXT),
    )


# Tasks and reports.


def encode_train_config(config: TrainConfig) -> str:
    """A training configuration as JSON."""
    return json.dumps(
        {
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "seed": config.seed,
            "round": config.round,
            "participant": config.participant,
            "options": dict(config.options),
        },
        allow_nan=False,
    )


def decode_train_config(text: str) -> TrainConfig:
    """Parse :func:`encode_train_config`'s JSON, checking every field's type."""
    try:
        raw = parse_json(text)
    except ValueError as exc:
        raise _malformed(f"the training configuration is not JSON: {exc}") from None
    ints = ("epochs", "batch_size", "seed", "round")
    if not isinstance(raw, dict) or set(raw) != {
        *ints,
        "learning_rate",
        "participant",
        "options",
    }:
        raise _malformed("the training configuration lacks fields or has extra ones")
    if not all(isinstance(raw[k], int) and not isinstance(raw[k], bool) for k in ints):
        raise _malformed(f"{', '.join(ints)} must be integers")
    for key in ints:
        low, high = TRAIN_BOUNDS[key]
        if not low <= raw[key] <= high:
            raise _malformed(f"{key} must be in [{low}, {high}], got {raw[key]}")
    lr = raw["learning_rate"]
    if (
        not isinstance(lr, (int, float))
        or isinstance(lr, bool)
        or not math.isfinite(lr)
    ):
        raise _malformed("learning_rate must be a finite number")
    if not isinstance(raw["participant"], str) or not isinstance(raw["options"], dict):
        raise _malformed("participant must be text and options an object")
    return TrainConfig(
        epochs=raw["epochs"],
        batch_size=raw["batch_size"],
        learning_rate=float(lr),
        seed=raw["seed"],
        round=raw["round"],
        participant=raw["participant"],
        options=raw["options"],
    )


def encode_task(order: TaskOrder | Goodbye | Welcome, *, crl: bytes = b"") -> pb.Task:
    """The wire form of a task (or of the start or the end of the stream).

    The fields of secure rounds are :mod:`~accord.transport.secure_codec`'s; ``crl``
    (DER) goes with every task and the welcome.
    """
    if isinstance(order, Welcome):
        return pb.Task(run_id=order.run_id, round=order.round, crl=crl)
    if isinstance(order, Goodbye):
        return pb.Task(run_id=order.run_id, goodbye=order.reason or RUN_FINISHED)
    return pb.Task(
        run_id=order.run_id,
        round=order.round,
        kind=_KINDS[order.kind],
        model_digest=order.model_digest,
        config_json=encode_train_config(order.config) if order.config else "",
        crl=crl,
        ledger_entry=order.ledger_entry,
        **secure_task_fields(order),
    )


def decode_task(msg: pb.Task) -> TaskOrder | Goodbye | Welcome:
    """Parse a message of the task stream."""
    run_id = _text(msg.run_id, "run_id", limit=128)
    if msg.goodbye:
        return Goodbye(run_id, _text(msg.goodbye, "goodbye"))
    if len(msg.crl) > MAX_CRL_BYTES:
        raise _malformed(f"a CRL of {len(msg.crl)} bytes is over {MAX_CRL_BYTES}")
    crl = bytes(msg.crl)
    if msg.kind == pb.JOB_KIND_UNSPECIFIED:
        return Welcome(run_id, int(msg.round), crl)
    kind = _kind(msg.kind)
    config = None
    if kind == "train":
        config = decode_train_config(
            _text(msg.config_json, "config_json", limit=1 << 20)
        )
    return TaskOrder(
        run_id,
        int(msg.round),
        kind,
        msg.model_digest[:128],
        config,
        **decode_secure_fields(msg),
        crl=crl,
        ledger_entry=_text(msg.ledger_entry, "ledger_entry", limit=MAX_LEDGER_TEXT),
    )


def encode_eval(report: EvalReport) -> pb.EvalReport:
    """The wire form of an evaluation report."""
    return pb.EvalReport(
        run_id=report.run_id,
        round=report.round,
        model_digest=report.model_digest,
        metrics=dict(report.metrics),
        num_examples=report.num_examples,
        duration_s=report.duration_s,
    )


def decode_eval(msg: pb.EvalReport) -> EvalReport:
    """Parse an evaluation report."""
    return EvalReport(
        run_id=_text(msg.run_id, "run_id", limit=128),
        round=int(msg.round),
        model_digest=_text(msg.model_digest, "model_digest", limit=128),
        metrics=_metrics(msg.metrics),
        num_examples=_count(msg.num_examples, "num_examples"),
        duration_s=_duration(msg.duration_s),
    )


def encode_failure(report: FailureReport) -> pb.FailureReport:
    """The wire form of a failure report."""
    return pb.FailureReport(
        run_id=report.run_id,
        round=report.round,
        kind=_KINDS[report.kind],
        refused=report.refused,
        reason=report.reason[:_MAX_TEXT],
        duration_s=report.duration_s,
    )


def decode_failure(msg: pb.FailureReport) -> FailureReport:
    """Parse a failure report."""
    return FailureReport(
        run_id=_text(msg.run_id, "run_id", limit=128),
        round=int(msg.round),
        kind=_kind(msg.kind),
        reason=plain_text(_text(msg.reason, "reason")),
        refused=bool(msg.refused),
        duration_s=_duration(msg.duration_s),
    )


def encode_receipt(receipt: Receipt) -> pb.Receipt:
    """The wire form of a receipt."""
    return pb.Receipt(
        run_id=receipt.run_id,
        round=receipt.round,
        participant=receipt.participant,
        digest=receipt.digest,
        bytes=receipt.bytes,
    )


def decode_receipt(msg: pb.Receipt) -> Receipt:
    """Parse a receipt."""
    return Receipt(msg.run_id, int(msg.round), msg.participant, msg.digest, msg.bytes)
