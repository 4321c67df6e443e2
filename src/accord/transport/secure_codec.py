"""The wire form of secure rounds: a task's secure fields and the SubmitSecAgg stream.

Beside :mod:`accord.transport.codec`, which calls :func:`secure_task_fields` and
:func:`decode_secure_fields` for every task, and with the same rule: nothing from
the other side is trusted. A secure train task carries the round's
:class:`~accord.secagg.session.SecureJob` as JSON, passed on as text and parsed by
the site (the coordinator's ``identity_keys`` are left out: a site takes the keys
from the identity certificates it checks itself), and those certificates as DER;
a ``secagg`` task carries a stage name and the coordinator's encoded message for
it. A participant's message for a stage travels as a ``SecAggHeader`` (the stage,
the total size) followed by chunks of at most
:data:`~accord.transport.messages.CHUNK_BYTES`, like an update: a masked input is as
large as the model. What a stage's message may hold is checked later, by
:mod:`accord.transport.secagg_wire`, once the whole of it has arrived.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from accord.errors import SubmissionRefused
from accord.transport.messages import CHUNK_BYTES, Chunk, SecAggHeader, TaskOrder
from accord.transport.proto import accord_pb2 as pb

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "assemble",
    "decode_secagg_part",
    "decode_secure_fields",
    "secagg_frames",
    "secure_task_fields",
]

#: Largest identity certificate a task may carry (accord's are about 600 bytes).
MAX_CERTIFICATE_BYTES = 16 * 1024
_MAX_CERTIFICATES = 100_000
_MAX_JSON = 1 << 20
_MAX_STAGE = 64
#: Length of a task digest (SHA-256, hex) that a stage message names.
_DIGEST_HEX = 64


def _malformed(reason: str) -> SubmissionRefused:
    return SubmissionRefused("malformed", reason)


def secure_task_fields(order: TaskOrder) -> dict[str, Any]:
    """The secure fields of a Task message (none for a plain task)."""
    fields: dict[str, Any] = {}
    if order.secure_json:
        fields["secure_json"] = order.secure_json
    if order.certificates:
        fields["identity_certificates"] = list(order.certificates)
    if order.kind == "secagg":
        fields["secagg_stage"] = order.stage
        fields["secagg"] = order.payload
    return fields


def decode_secure_fields(msg: pb.Task) -> dict[str, Any]:
    """The secure fields of a Task message, checked, as TaskOrder keywords."""
    if len(msg.secure_json) > _MAX_JSON:
        raise _malformed(f"secure_json is longer than {_MAX_JSON} characters")
    if len(msg.secagg_stage) > _MAX_STAGE:
        raise _malformed(f"secagg_stage is longer than {_MAX_STAGE} characters")
    certificates = tuple(bytes(c) for c in msg.identity_certificates)
    if len(certificates) > _MAX_CERTIFICATES:
        raise _malformed(f"more than {_MAX_CERTIFICATES} identity certificates")
    if any(len(c) > MAX_CERTIFICATE_BYTES for c in certificates):
        raise _malformed(
            f"an identity certificate is larger than {MAX_CERTIFICATE_BYTES} bytes"
        )
    if msg.kind == pb.JOB_KIND_SECAGG and not msg.secagg_stage:
        raise _malformed("a secure-aggregation task names no stage")
    return {
        "secure_json": msg.secure_json,
        "stage": msg.secagg_stage,
        "payload": bytes(msg.secagg),
        "certificates": certificates,
    }


def secagg_frames(header: SecAggHeader, payload: bytes) -> Iterator[bytes]:
    """The SubmitSecAgg stream as wire bytes: the header, then the payload in chunks."""
    head = pb.SecAggHeader(
        run_id=header.run_id,
        round=header.round,
        stage=header.stage,
        total_bytes=header.total_bytes,
        duration_s=header.duration_s,
        answers=header.answers,
    )
    yield pb.SecAggPart(header=head).SerializeToString()
    mem = memoryview(payload)
    for offset in range(0, len(mem), CHUNK_BYTES):
        chunk = pb.Chunk(offset=offset, data=bytes(mem[offset : offset + CHUNK_BYTES]))
        yield pb.SecAggPart(chunk=chunk).SerializeToString()


def decode_secagg_part(msg: pb.SecAggPart | Chunk) -> SecAggHeader | Chunk:
    """One message of the SubmitSecAgg stream (a chunk the fast path read)."""
    if isinstance(msg, Chunk):
        return msg
    which = msg.WhichOneof("part")
    if which == "chunk":
        if msg.chunk.offset >= 2**63:
            raise _malformed("a chunk offset is out of range")
        return Chunk(int(msg.chunk.offset), msg.chunk.data)
    if which != "header":
        raise _malformed("a secure-aggregation part holds neither a header nor a chunk")
    h = msg.header
    if len(h.run_id) > 128 or len(h.stage) > _MAX_STAGE:
        raise _malformed("run_id or stage is too long")
    if not math.isfinite(h.duration_s) or h.duration_s < 0:
        raise _malformed("duration_s must be a finite non-negative number")
    if h.total_bytes >= 2**63:
        raise _malformed("total_bytes is out of range")
    if len(h.answers) > _DIGEST_HEX:
        raise _malformed("answers is too long for a task digest")
    return SecAggHeader(
        run_id=h.run_id,
        round=int(h.round),
        stage=h.stage,
        total_bytes=int(h.total_bytes),
        duration_s=float(h.duration_s),
        answers=h.answers,
    )


def assemble(parts: Iterable[SecAggHeader | Chunk], total: int) -> bytes:
    """The ``total`` bytes that ``parts`` deliver in order, without gaps or excess."""
    buffer = bytearray(total)
    filled = 0
    for part in parts:
        if not isinstance(part, Chunk):
            raise _malformed("a second header")
        if part.offset != filled:
            raise _malformed(
                f"a chunk at offset {part.offset}, where {filled} was expected"
            )
        end = filled + len(part.data)
        if end > total:
            raise SubmissionRefused(
                "too_large", f"the message runs past the {total} bytes it announced"
            )
        buffer[filled:end] = part.data
        filled = end
    if filled != total:
        raise _malformed(f"the message ended after {filled} of {total} bytes")
    return bytes(buffer)
