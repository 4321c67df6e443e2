"""First-byte and idle timeouts, driven by a fake clock and explicit checks."""

import threading

import pytest

from accord.transport.watchdog import StreamCut, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Stream:
    """A client stream whose next message arrives when the test says so."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.ready = threading.Event()
        self.waiting = threading.Event()
        self.cancelled = threading.Event()

    def __iter__(self):
        return self

    def __next__(self):
        self.waiting.set()
        while not self.ready.wait(0.01):
            if self.cancelled.is_set():
                raise RuntimeError("cancelled")
        self.ready.clear()
        self.waiting.clear()
        if not self.items:
            raise StopIteration
        return self.items.pop(0)

    def send(self, item: object) -> None:
        self.items.append(item)
        self.ready.set()


def _reader(watched, out: list):
    def run():
        try:
            for item in watched:
                out.append(item)
        except (RuntimeError, StreamCut) as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_stream_silent_past_first_byte_s_is_cut_and_reported():
    clock, stream, cuts = Clock(), Stream(), []
    dog = Watchdog(first_byte_s=30, idle_s=120, clock=clock)
    watched = dog.watch(iter(stream), cancel=stream.cancelled.set, on_cut=cuts.append)
    out: list = []
    thread = _reader(watched, out)
    assert stream.waiting.wait(20)

    clock.now = 30.0
    assert dog.check() == 0  # at the bound: not yet
    clock.now = 30.001
    assert dog.check() == 1

    thread.join(20)
    assert cuts == ["no first message for 30 s; the call was cut"]
    assert watched.cut and isinstance(out[-1], StreamCut)
    assert dog.watching() == 0


def test_idle_s_applies_between_messages_and_only_while_waiting_for_the_caller():
    clock, stream, cuts = Clock(), Stream(), []
    dog = Watchdog(first_byte_s=1, idle_s=5, clock=clock)
    watched = dog.watch(iter(stream), cancel=stream.cancelled.set, on_cut=cuts.append)
    assert dog.check() == 0
    clock.now = 100.0  # before anyone reads, nothing is waited on
    assert dog.check() == 0

    out: list = []
    thread = _reader(watched, out)
    assert stream.waiting.wait(20)
    stream.send("header")
    while len(out) < 1:
        thread.join(0.01)
    assert stream.waiting.wait(20)
    clock.now += 5.0
    assert dog.check() == 0  # idle_s, not first_byte_s, after the first message
    clock.now += 0.01

    assert dog.check() == 1
    thread.join(20)
    assert cuts == ["no message for 5 s; the call was cut"]
    assert out[0] == "header"


def test_a_closed_watch_is_never_cut():
    clock, stream, cuts = Clock(), Stream(), []
    dog = Watchdog(first_byte_s=1, idle_s=1, clock=clock)
    watched = dog.watch(iter(stream), cancel=stream.cancelled.set, on_cut=cuts.append)

    watched.close()
    clock.now = 1000

    assert dog.check() == 0 and not cuts


def test_the_watchdog_thread_cuts_without_explicit_checks():
    clock, stream, cuts = Clock(), Stream(), []
    dog = Watchdog(first_byte_s=1, idle_s=1, clock=clock).start(tick_s=0.01)
    try:
        watched = dog.watch(
            iter(stream), cancel=stream.cancelled.set, on_cut=cuts.append
        )
        out: list = []
        thread = _reader(watched, out)
        assert stream.waiting.wait(20)
        clock.now = 2.0
        thread.join(20)
    finally:
        dog.close()
    assert len(cuts) == 1 and stream.cancelled.is_set()


def test_stop_cuts_a_watched_stream_once_and_not_one_already_cut_or_closed():
    # Stopped from another thread (its job's deadline), a stream being read ends
    # with StreamCut; a second stop, or one after the watchdog's own cut or after
    # the reader closed, claims nothing (nothing to record twice).
    clock, stream, cuts = Clock(), Stream(), []
    dog = Watchdog(first_byte_s=1, idle_s=1, clock=clock)
    watched = dog.watch(iter(stream), cancel=stream.cancelled.set, on_cut=cuts.append)
    out: list = []
    thread = _reader(watched, out)
    stream.send("header")
    for _ in range(500):  # until the reader waits for the message after it
        if out and stream.waiting.is_set():
            break
        threading.Event().wait(0.01)

    assert watched.stop() is True
    stream.cancelled.set()  # what the stopper does next
    thread.join(5)

    assert out[0] == "header" and isinstance(out[1], StreamCut)
    assert watched.cut and dog.watching() == 0
    assert watched.stop() is False
    clock.now = 10
    assert dog.check() == 0 and cuts == []

    idle = dog.watch(iter(Stream()), cancel=lambda: None, on_cut=cuts.append)
    idle._watch.waiting_since = 0.0
    assert dog.check() == 1 and idle.stop() is False
    closed = dog.watch(iter(Stream()), cancel=lambda: None, on_cut=cuts.append)
    closed.close()
    assert closed.stop() is False and not closed.cut


# Streams to the caller: the time a message waits for the caller to take it.


def _producer(clock: Clock, takes_s: float):
    """Messages 0, 1, 2, ...; producing each takes ``takes_s`` on ``clock``."""
    n = 0
    while True:
        clock.now += takes_s
        yield n
        n += 1


def test_a_message_the_caller_leaves_untaken_past_idle_s_is_cut_and_ends_the_stream():
    clock, cuts = Clock(), []
    dog = Watchdog(first_byte_s=1, idle_s=10, clock=clock)
    produced = _producer(clock, 0)
    delivering = dog.deliver(produced, cut=cuts.append)

    assert next(delivering) == 0  # handed to gRPC: watched from now
    assert dog.watching() == 1
    clock.now += 10  # not longer than idle_s
    assert dog.check() == 0
    clock.now += 0.5
    assert dog.check() == 1

    assert len(cuts) == 1 and "did not read a message for 10 s" in cuts[0]
    assert delivering.cut and dog.watching() == 0
    assert list(delivering) == []  # gRPC asks again: the stream ends, quietly
    assert produced.gi_frame is None  # and the handler's generator is closed
    assert dog.check() == 0 and len(cuts) == 1  # once


def test_only_the_wait_after_handing_a_message_over_counts_not_producing_it():
    # A task stream waits a long time for its next task: never cut for that; a
    # slow link taking each message within idle_s is never cut either.
    clock, cuts = Clock(), []
    dog = Watchdog(first_byte_s=1, idle_s=10, clock=clock)
    delivering = dog.deliver(_producer(clock, 1000), cut=cuts.append)
    for _ in range(5):
        next(delivering)
        assert dog.watching() == 1
        clock.now += 9
        assert dog.check() == 0
    assert cuts == [] and not delivering.cut


def test_a_delivery_whose_call_ended_is_never_cut():
    # The caller cancelled while a message was pending: gRPC asks for no more,
    # and calls forget() when the call ends.
    clock, cuts = Clock(), []
    dog = Watchdog(first_byte_s=1, idle_s=10, clock=clock)
    delivering = dog.deliver(_producer(clock, 0), cut=cuts.append)
    next(delivering)
    delivering.forget()
    clock.now += 100
    assert dog.check() == 0 and cuts == [] and dog.watching() == 0
    next(delivering)  # even were it asked again, it is not watched again
    clock.now += 100
    assert dog.check() == 0 and dog.watching() == 0


def test_a_finished_or_failing_delivery_stops_being_watched():
    clock, cuts = Clock(), []
    dog = Watchdog(first_byte_s=1, idle_s=10, clock=clock)
    assert list(dog.deliver(iter([1, 2]), cut=cuts.append)) == [1, 2]
    assert dog.watching() == 0

    def failing():
        yield 1
        raise ValueError("refused")

    delivering = dog.deliver(failing(), cut=cuts.append)
    next(delivering)
    with pytest.raises(ValueError, match="refused"):
        next(delivering)
    clock.now += 100
    assert dog.watching() == 0 and dog.check() == 0 and cuts == []
