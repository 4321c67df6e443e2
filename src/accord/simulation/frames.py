"""Raw payload frames between a simulation's coordinator and its workers.

A secure round's messages (a masked input is 4 MB at 1M parameters, a CKKS upload
more), a compressed update and the shares the coordinator relays travel as opaque
frames after a small JSON header. ``Connection.send_bytes``/``recv_bytes`` would
carry them, but their receiving side reads into a ``BytesIO`` in pieces (each
``os.read`` allocating for the whole remainder) and copies the result out again:
three copies of every byte beyond the kernel's. Here a frame is an 8-byte length
and the bytes, written with ``sendall`` from the caller's buffer and read with one
``recv(MSG_WAITALL)`` into the ``bytes`` object handed on, the one copy the socket
needs. The worker pipe is a socket pair on POSIX; elsewhere (a Windows pipe) both
ends fall back to the connection's own framing. Both ends must use these functions
for the same frames.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

__all__ = ["receive_frame", "send_frame"]

_LENGTH = struct.Struct("!Q")
#: A frame larger than this is refused as a broken stream, not allocated.
MAX_FRAME_BYTES = 1 << 40


def send_frame(conn: Connection, data: bytes | memoryview) -> None:
    """Send ``data`` as one frame (its length, then its bytes, uncopied)."""
    with _stream(conn) as sock:
        if sock is None:
            conn.send_bytes(data)
            return
        sock.sendall(_LENGTH.pack(memoryview(data).nbytes))  # bytes, not items
        sock.sendall(data)


def receive_frame(conn: Connection) -> bytes:
    """Receive one frame sent by :func:`send_frame`.

    Raises EOFError when the other end closed the stream before the frame was
    whole, OSError when the stream is broken.
    """
    with _stream(conn) as sock:
        if sock is None:
            return conn.recv_bytes()
        (size,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
        if size > MAX_FRAME_BYTES:
            raise OSError(f"a frame of {size} bytes: the stream is corrupt")
        return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``: one ``recv`` in the common case."""
    if size == 0:
        return b""
    first = sock.recv(size, socket.MSG_WAITALL)
    if len(first) == size:
        return first
    # A signal (or a peer that closed) cut the wait short: gather the rest.
    parts, got = [first], len(first)
    while got < size:
        if not parts[-1]:
            raise EOFError(f"the stream ended {size - got} bytes short of a frame")
        parts.append(sock.recv(size - got, socket.MSG_WAITALL))
        got += len(parts[-1])
    return b"".join(parts)


@contextmanager
def _stream(conn: Connection) -> Iterator[socket.socket | None]:
    """The connection's socket, borrowed (never closed here), or None if not one."""
    try:
        sock = socket.socket(fileno=conn.fileno())
    except OSError:  # not a socket: a pipe handle
        yield None
        return
    try:
        sock.setblocking(True)  # as the connection itself reads and writes
        yield sock
    finally:
        sock.detach()
