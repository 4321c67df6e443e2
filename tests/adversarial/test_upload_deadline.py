"""An upload trickled under the idle timeout must not outlive its job's deadline.

The watchdog (:mod:`accord.transport.watchdog`) bounds the gap between two messages
of an upload, not the upload: an enrolled participant sending a chunk just under
the idle timeout, empty or of one byte, would otherwise keep its SubmitUpdate open
after the round gave up on it, holding a coordinator thread, one of its four call
slots and its spool buffer for as long as it cared to. The round itself closes on
time either way (:func:`~accord.coordinator.collector.collect` waits on events, not
on uploads); what must end with the job is the upload.

Real gRPC and mutual TLS against a coordinator whose watchdog cuts after 1 s of
silence; the round is the collector every plain round waits in, with a deadline
of a few seconds. The attacker is an enrolled site speaking the wire by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from accord.coordinator.collector import collect
from accord.coordinator.executor import Event, TrainDone, TrainJob
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport import codec, pki
from accord.transport.admission import Limits
from accord.transport.call_metadata import UploadTag
from accord.transport.frames import chunk_frame
from accord.transport.messages import PackedHeader, UpdateHeader

pytestmark = pytest.mark.timeout(120)

SITES = ("site-00", "site-01", "site-02")
ATTACKER = "site-02"
UPLOAD = "/accord.v1.Federation/SubmitUpdate"
IDLE_S = 1.0
#: Just under the idle timeout: the watchdog never sees a gap long enough.
TRICKLE_S = IDLE_S / 2
DEADLINE_S = 4.0
#: How late past the deadline the upload may end, for a loaded test machine.
MARGIN_S = 1.5
#: The attacker's own end, were it never cut: far past the deadline.
GIVE_UP_S = DEADLINE_S + 10.0
MODEL = Params({"w": np.zeros((32, 32), np.float32)})  # 4 KiB
UPDATE = Params({"w": np.full((32, 32), 0.25, np.float32)})


def _header(run_id: str) -> UpdateHeader:
    spec = UPDATE.spec
    return UpdateHeader(
        run_id=run_id,
        round=1,
        base_digest=MODEL.digest(),
        params=PackedHeader(spec, spec.packed_nbytes, UPDATE.digest()),
        num_examples=10,
        duration_s=0.5,
    )


def _channel(running: Any, name: str) -> grpc.Channel:
    folder = running.federation.root / name
    creds = grpc.ssl_channel_credentials(
        root_certificates=(running.federation.ca / pki.CA_CERT).read_bytes(),
        private_key=(folder / pki.KEY).read_bytes(),
        certificate_chain=(folder / pki.CERT).read_bytes(),
    )
    return grpc.secure_channel(running.target, creds)


def _frames(header: UpdateHeader, pieces: Iterator[bytes], every_s: float, stop):
    """The header, then each piece as the next chunk, ``every_s`` apart."""
    yield next(codec.update_frames(header, b""))  # the header frame only
    offset = 0
    for piece in pieces:
        if stop.wait(every_s):
            return
        yield chunk_frame(offset, piece)
        offset += len(piece)


class Upload:
    """A hand-made SubmitUpdate; ``ended`` is when the call ended, on its clock."""

    def __init__(self, channel: grpc.Channel, run_id: str, frames: Iterator[bytes]):
        self.ended: float | None = None
        call = channel.stream_unary(UPLOAD)
        tag = UploadTag(run_id, 1).metadata()
        self.future = call.future(frames, metadata=tag, timeout=60)
        self.future.add_done_callback(self._done)

    def _done(self, _: object) -> None:
        self.ended = time.monotonic()

    def error(self) -> grpc.RpcError | None:
        exc = self.future.exception(timeout=GIVE_UP_S + 10)
        assert exc is None or isinstance(exc, grpc.RpcError)
        return exc


@pytest.fixture
def round_one(start_coordinator, listen):
    """A coordinator with a 1 s idle timeout, the model published, every site
    connected, and a train job of round 1 sent to each (at ``t0``)."""
    running = start_coordinator(
        SITES, limits=Limits(per_peer=4, first_byte_s=IDLE_S, idle_s=IDLE_S)
    )
    stop = threading.Event()
    for name in SITES:
        listen(running, name, stop)
    assert running.executor.wait_for(SITES, 60) == set(SITES)
    running.executor.publish(MODEL)
    running.executor.submit_train(
        1, [TrainJob(n, TrainConfig(round=1, participant=n)) for n in SITES]
    )
    yield running
    stop.set()


def _round(running: Any, t0: float) -> tuple[tuple[str, ...], dict[str, Event], float]:
    """Wait for round 1's updates as a plain round does; (late, events, when)."""
    got: dict[str, Event] = {}

    def handle(event: Event) -> None:
        got[event.participant] = event
        if isinstance(event, TrainDone):
            running.executor.release(event)

    late = collect(
        running.executor,
        round_number=1,
        deadline=t0 + DEADLINE_S,
        clock=time.monotonic,
        finished=lambda: set(got) == set(SITES),
        pending=lambda: [s for s in SITES if s not in got],
        handle=handle,
    )
    return late, got, time.monotonic()


def _slots_freed(running: Any, name: str, within_s: float = 5.0) -> bool:
    """Whether ``name`` is back to its task stream alone (one open call)."""
    admission = running.server.gate.admission
    end = time.monotonic() + within_s
    while admission.open_calls(name) > 1 and time.monotonic() < end:
        time.sleep(0.05)
    return admission.open_calls(name) == 1


@pytest.mark.parametrize(
    "piece",
    [pytest.param(b"", id="empty-chunks"), pytest.param(b"\0", id="one-byte-chunks")],
)
def test_a_trickled_upload_ends_by_its_jobs_deadline_and_the_round_closes_on_time(
    round_one, piece
):
    # Arrange: the honest sites' updates, one of them slow (its chunks come 0.4 s
    # apart, 1.6 s in all, well past the idle timeout but well within the
    # deadline); the attacker's stream of `piece` every 0.5 s, under the idle
    # timeout, which would go on for 14 s.
    running = round_one
    run_id = running.executor.run_id
    header = _header(run_id)
    packed = bytes(UPDATE.spec.pack(UPDATE))
    stop, give_up = threading.Event(), threading.Event()
    t0 = time.monotonic()
    threading.Timer(GIVE_UP_S, give_up.set).start()
    trickle = iter(lambda: piece, None)  # for ever
    attacker = _channel(running, ATTACKER)
    attack = Upload(attacker, run_id, _frames(header, trickle, TRICKLE_S, give_up))
    slow_site = _channel(running, "site-01")
    quarters = (packed[i : i + 1024] for i in range(0, len(packed), 1024))
    slow = Upload(slow_site, run_id, _frames(header, quarters, 0.4, stop))
    with running.client("site-00") as client:
        client.submit_update(header, packed, timeout_s=30)

    # Act: the round waits for its updates until the deadline.
    late, got, closed = _round(running, t0)
    attack_error = attack.error()
    give_up.set()
    slow_error = slow.error()

    # Assert: the round closed on time without the attacker, with both honest
    # updates, the slow one included.
    assert late == (ATTACKER,)
    assert closed - t0 <= DEADLINE_S + MARGIN_S
    assert slow_error is None, slow_error
    assert {n for n, e in got.items() if isinstance(e, TrainDone)} == {
        "site-00",
        "site-01",
    }
    # The attacker's upload ended by the job's deadline, with a reason it can
    # read, recorded; its call slot is free again.
    assert attack.ended is not None
    print(f"{piece!r}: the trickled upload ended {attack.ended - t0:.2f} s in")
    assert attack.ended - t0 <= DEADLINE_S + MARGIN_S
    assert attack_error is not None
    if piece:
        assert attack_error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "round 1 stopped waiting for your upload" in attack_error.details()
        assert "deadline passed" in attack_error.details()
        assert (ATTACKER, 1, "stale") in running.events()
        details = [e.detail for e in running.store.events(running.run_id)]
        assert any("stopped waiting for your upload" in d for d in details)
    else:
        assert attack_error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "empty chunk" in attack_error.details()
        assert (ATTACKER, 1, "malformed") in running.events()
    assert _slots_freed(running, ATTACKER)
    assert running.server.gate.watchdog.watching() == 0
    attacker.close()
    slow_site.close()
