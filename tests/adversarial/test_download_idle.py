"""A download its caller stops reading must end after the idle timeout.

FetchModel streams the global model in chunks. A participant that opens it, reads
the first message and then reads nothing more lets the HTTP/2 flow-control windows
fill: the coordinator's handler then blocks handing the next chunk to gRPC, and
neither the watchdog (which watched only what callers send) nor a job deadline (a
download has none) ended it; only the caller's own timeout did. Each such call held
a coordinator thread and one of the caller's call slots (measured before the fix:
still held 8 s in, with a 1 s idle timeout and a 16 MiB model).

Real gRPC and mutual TLS against a coordinator whose watchdog cuts after 3 s; the
attacker is an enrolled site speaking the wire by hand. An honest site reading
every chunk, slowly (each pause a twentieth of the idle timeout, the whole
download 1.6 times as long as it), must get the whole model. The pause is small
because the coordinator sees progress only when a send completes: the reader's
gRPC grants flow-control window in steps of several chunks (measured on a loaded
loopback: mostly 2 to 5 MiB, once about 10), so one send waits for several of
its pauses.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import grpc
import numpy as np
import pytest

from accord.params import Params
from accord.transport import codec, pki
from accord.transport.admission import Limits
from accord.transport.proto import accord_pb2 as pb

pytestmark = pytest.mark.timeout(120)

SITES = ("site-00", "site-01", "site-02")
ATTACKER = "site-02"
SLOW = "site-01"
FETCH = "/accord.v1.Federation/FetchModel"
IDLE_S = 3.0
#: How late past the idle timeout the cut may come: the watchdog ticks every
#: 0.5 s, and the test machine may be loaded.
MARGIN_S = 2.0
#: The attacker's own end, were it never cut: far past the idle timeout.
GIVE_UP_S = 20.0
#: The honest reader's pause before each message: under the idle timeout.
PAUSE_S = IDLE_S / 20
#: 32 MiB: far more than the flow-control windows of both ends hold (gRPC
#: grows them with its bandwidth estimate, to a few MiB on loopback).
MODEL = Params({"w": np.arange(8 * 2**20, dtype=np.float32)})


def _channel(running: Any, name: str) -> grpc.Channel:
    folder = running.federation.root / name
    creds = grpc.ssl_channel_credentials(
        root_certificates=(running.federation.ca / pki.CA_CERT).read_bytes(),
        private_key=(folder / pki.KEY).read_bytes(),
        certificate_chain=(folder / pki.CERT).read_bytes(),
    )
    return grpc.secure_channel(running.target, creds)


def _fetch(channel: grpc.Channel, running: Any, timeout_s: float) -> Any:
    """A hand-made FetchModel of the published model; its messages as bytes."""
    call = channel.unary_stream(
        FETCH,
        request_serializer=pb.ModelRequest.SerializeToString,
        response_deserializer=codec.parse_chunk_or(pb.ModelPart.FromString),
    )
    request = pb.ModelRequest(run_id=running.executor.run_id, digest=MODEL.digest())
    return call(request, timeout=timeout_s)


def _downloads_sending() -> int:
    """Coordinator threads now blocked handing a FetchModel message to gRPC.

    A thread serving a response stream runs grpc's ``_stream_response_in_pool``;
    one blocked on a send is in its ``_send_response``. The sites' task streams
    wait for tasks elsewhere (in the handler's generator), so they do not count.
    """
    count = 0
    for frame in sys._current_frames().values():
        names = set()
        while frame is not None:
            names.add(frame.f_code.co_name)
            frame = frame.f_back
        if {"_stream_response_in_pool", "_send_response"} <= names:
            count += 1
    return count


def _until(condition: Any, within_s: float) -> float | None:
    """Seconds until ``condition()`` held, polling; None if it never did."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


@pytest.fixture
def published(start_coordinator, listen):
    """A coordinator with a 3 s idle timeout, every site connected, a 32 MiB
    model published."""
    running = start_coordinator(
        SITES, limits=Limits(per_peer=4, first_byte_s=IDLE_S, idle_s=IDLE_S)
    )
    stop = threading.Event()
    for name in SITES:
        listen(running, name, stop)
    assert running.executor.wait_for(SITES, 60) == set(SITES)
    running.executor.publish(MODEL)
    yield running
    stop.set()


def test_a_download_its_caller_stops_reading_is_cut_after_the_idle_timeout(
    published,
):
    # Arrange: an honest site reading every message, PAUSE_S apart (the whole
    # model takes ~5 s, 1.6 times the idle timeout), beside the attack.
    running = published
    admission = running.server.gate.admission
    packed = bytes(MODEL.spec.pack(MODEL))
    honest: dict[str, Any] = {}

    def read_slowly() -> None:
        channel = _channel(running, SLOW)
        try:
            parts = []
            for message in _fetch(channel, running, timeout_s=60):
                time.sleep(PAUSE_S)
                parts.append(codec.decode_model_part(message))
            honest["parts"] = parts
        except grpc.RpcError as exc:
            honest["error"] = exc
        finally:
            channel.close()

    reader = threading.Thread(target=read_slowly)
    reader.start()

    # Act: the attacker reads the first message, then nothing.
    attacker = _channel(running, ATTACKER)
    stream = _fetch(attacker, running, timeout_s=GIVE_UP_S)
    first = codec.decode_model_part(next(stream))
    t0 = time.monotonic()
    held = _until(lambda: admission.open_calls(ATTACKER) == 2, 5.0)
    assert held is not None, "the download never held a slot"
    freed = _until(lambda: admission.open_calls(ATTACKER) == 1, GIVE_UP_S)
    elapsed = time.monotonic() - t0
    print(f"the unread download's slot was freed {elapsed:.2f} s in")

    # Assert: the coordinator ended the call within the idle timeout (plus the
    # watchdog's tick and a margin): its slot is free, no coordinator thread is
    # left blocked on a send, the cut is recorded as an idle one.
    assert freed is not None, f"the unread download still held its slot {elapsed} s in"
    assert elapsed <= IDLE_S + MARGIN_S
    assert first.spec == MODEL.spec  # it was a real download: its header came
    assert running.server.gate.watchdog.watching() <= 1  # the slow reader's, at most
    assert ("site-02", None, "idle") in running.events()
    reasons = [e.detail for e in running.store.events(running.run_id)]
    assert any("did not read a message" in r for r in reasons), reasons
    # The attacker, reading on, gets what was buffered, then the reason.
    with pytest.raises(grpc.RpcError) as cut:
        for _ in stream:
            pass
    assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, cut.value
    assert "did not read" in cut.value.details()
    attacker.close()

    # The honest slow reader got the whole model.
    reader.join(60)
    assert not reader.is_alive()
    assert "error" not in honest, honest.get("error")
    parts = honest["parts"]
    assert parts[0].digest == MODEL.digest()
    assert b"".join(bytes(p.data) for p in parts[1:]) == packed
    assert _until(lambda: _downloads_sending() == 0, 5.0) is not None
    assert _until(lambda: admission.open_calls(SLOW) == 1, 5.0) is not None
    assert running.server.gate.watchdog.watching() == 0
    # The one idle cut is the attacker's download: neither the slow reader nor
    # any task stream (idle for the whole test, longer than idle_s, by design:
    # no task was due) was cut.
    assert [e for e in running.events() if e[2] == "idle"] == [(ATTACKER, None, "idle")]
    assert running.executor.wait_for(SITES, 0) == set(SITES)
