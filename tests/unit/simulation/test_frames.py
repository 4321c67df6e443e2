"""Payload frames between the coordinator and its workers, over a real socket pair."""

import multiprocessing as mp
import os
import random
import socket
import struct
import threading

import numpy as np
import pytest

from accord.simulation.frames import MAX_FRAME_BYTES, receive_frame, send_frame
from accord.simulation.worker import receive, send

SIZES = [0, 1, 7, 4096, 212_993, 4 * 2**20 + 13]


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _exchange(duplex: bool, payloads: list[bytes]) -> list[tuple[int, bytes]]:
    """Each payload as a JSON header and a frame; what the reader got, in order."""
    reader, writer = mp.Pipe(duplex=duplex)

    def talk() -> None:
        for i, data in enumerate(payloads):
            send(writer, {"op": "frame", "i": i})
            send_frame(writer, memoryview(data) if i % 2 else data)

    # A writer thread: frames larger than the socket's buffer need a reader.
    thread = threading.Thread(target=talk)
    thread.start()
    got = []
    for _ in payloads:
        header = receive(reader)
        got.append((header["i"], receive_frame(reader)))
    thread.join()
    return got


def test_frames_and_json_messages_interleave_in_order_over_a_socket_pair():
    payloads = [_payload(n, i) for i, n in enumerate(SIZES)]

    got = _exchange(True, payloads)

    assert got == list(enumerate(payloads))
    assert all(type(frame) is bytes for _, frame in got)


def test_a_one_way_pipe_carries_the_same_frames_by_the_connections_framing():
    # duplex=False is an os.pipe, not a socket: both ends fall back together.
    payloads = [_payload(n, i) for i, n in enumerate(SIZES)]

    got = _exchange(False, payloads)

    assert got == list(enumerate(payloads))


def test_a_frame_of_wide_items_carries_its_bytes_not_its_item_count():
    reader, writer = mp.Pipe(duplex=True)
    words = np.arange(1000, dtype=np.uint32)

    send_frame(writer, memoryview(words))

    assert receive_frame(reader) == words.tobytes()


def test_a_stream_closed_inside_a_frame_is_end_of_file_not_a_short_frame():
    reader, writer = mp.Pipe(duplex=True)
    raw = socket.socket(fileno=os.dup(writer.fileno()))
    raw.sendall(struct.pack("!Q", 100) + b"x" * 40)
    raw.close()
    writer.close()

    with pytest.raises(EOFError, match="60 bytes short"):
        receive_frame(reader)


def test_a_stream_closed_before_a_frame_is_end_of_file():
    reader, writer = mp.Pipe(duplex=True)
    writer.close()

    with pytest.raises(EOFError):
        receive_frame(reader)


def test_an_absurd_length_is_refused_before_anything_is_allocated():
    reader, writer = mp.Pipe(duplex=True)
    raw = socket.socket(fileno=os.dup(writer.fileno()))
    raw.sendall(struct.pack("!Q", MAX_FRAME_BYTES + 1))

    with pytest.raises(OSError, match="corrupt"):
        receive_frame(reader)
    raw.close()


def test_the_connection_is_still_usable_after_a_frame():
    reader, writer = mp.Pipe(duplex=True)
    send_frame(writer, b"abc")
    writer.send_bytes(b"after")

    assert receive_frame(reader) == b"abc"
    assert reader.recv_bytes() == b"after"
    assert not reader.closed and reader.fileno() >= 0


def test_a_worker_that_dies_inside_a_frame_is_taken_for_dead_not_raised():
    # The coordinator's read of one worker message, with the worker's end of the
    # pipe closed 60 bytes into the masked input that follows its header.
    import collections

    from accord.simulation.pool import ProcessExecutor, _Handle

    coordinator, worker = mp.Pipe(duplex=True)
    handle = _Handle(0, process=None, conn=coordinator, slots=[], views=[])
    executor = ProcessExecutor.__new__(ProcessExecutor)
    executor._events = collections.deque()
    executor._handles = [handle]
    deaths = []
    executor._on_death = deaths.append
    send(
        worker,
        {
            "op": "secagg_done",
            "participant": "site-1",
            "round": 2,
            "stage": "masked_input",
            "duration": 0.5,
        },
    )
    raw = socket.socket(fileno=os.dup(worker.fileno()))
    raw.sendall(struct.pack("!Q", 100) + b"m" * 40)
    raw.close()
    worker.close()

    executor._read(handle)

    assert deaths == [handle]
    assert not executor._events
