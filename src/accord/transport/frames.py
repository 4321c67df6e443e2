"""Chunk messages on the wire without protobuf objects, both ways.

A model or an update travels as a stream of ModelPart / UpdatePart messages, almost
all of them one :class:`~accord.transport.messages.Chunk` of 1 MiB. Building each as
a protobuf object costs three copies of its data to send and two to receive;
:func:`chunk_frame` writes the same bytes protobuf would (default values omitted)
with one copy, and :func:`fast_chunk` reads a chunk in that canonical form as a view
on the received bytes. Anything else (a header, unknown or repeated fields, another
field order) is left to protobuf's parser, which reads it or refuses it, so this
shortcut never accepts what protobuf would refuse. Hand-written because protobuf's
Python API has no zero-copy path for ``bytes`` fields.
"""

from __future__ import annotations

from typing import Any

from accord.transport.messages import Chunk

__all__ = ["chunk_frame", "fast_chunk", "varint"]

# ModelPart and UpdatePart both hold the chunk as field 2; Chunk holds offset as
# field 1 (varint) and data as field 2.
_CHUNK_TAG = 0x12  # field 2, length-delimited
_OFFSET_TAG = 0x08  # field 1, varint
_DATA_TAG = 0x12  # field 2, length-delimited
_MAX_VARINT = 10


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """The varint at ``pos`` and the position after it; None if there is none."""
    value = shift = 0
    for i in range(pos, min(pos + _MAX_VARINT, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    return None


def chunk_frame(offset: int, data: Any) -> bytes:
    """The wire bytes of a ModelPart or UpdatePart holding ``Chunk(offset, data)``.

    Equal to protobuf's own serialization (default values omitted), built with one
    copy of ``data`` instead of the three that a message object costs.
    """
    mem = memoryview(data).cast("B")
    n = mem.nbytes
    inner = b""
    if offset:
        inner += bytes((_OFFSET_TAG,)) + varint(offset)
    if n:
        inner += bytes((_DATA_TAG,)) + varint(n)
    head = bytes((_CHUNK_TAG,)) + varint(len(inner) + n) + inner
    return b"".join((head, mem))


def fast_chunk(data: bytes) -> Chunk | None:
    """A chunk message in canonical form, as a view on ``data``; None otherwise.

    Anything else (a header, unknown or repeated fields, another field order, bytes
    that do not parse) returns None, for protobuf's parser to read or refuse.
    """
    if len(data) < 2 or data[0] != _CHUNK_TAG:
        return None
    read = _read_varint(data, 1)
    if read is None or read[0] != len(data) - read[1]:
        return None
    pos, offset = read[1], 0
    if pos < len(data) and data[pos] == _OFFSET_TAG:
        read = _read_varint(data, pos + 1)
        if read is None or read[0] >= 2**63:
            return None
        offset, pos = read
    if pos == len(data):
        return Chunk(offset, b"")
    if data[pos] != _DATA_TAG:
        return None
    read = _read_varint(data, pos + 1)
    if read is None or read[0] != len(data) - read[1]:
        return None
    return Chunk(offset, memoryview(data)[read[1] :])
