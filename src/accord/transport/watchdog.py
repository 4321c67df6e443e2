"""First-byte and idle timeouts on the messages a caller streams to the coordinator.

gRPC Python has no per-call read timeout on the server side: a handler that asks a
client stream for its next message blocks until one arrives, the client cancels, or
the connection dies, and keepalive pings answered by the client's gRPC library keep
a silent stream alive for ever. One thread per silent stream is what the issue's
flood took. So every stream the coordinator reads is wrapped (:meth:`Watchdog.watch`):
the wrapper notes when the handler starts waiting for a message, and one background
thread (:meth:`Watchdog.start`, or :meth:`Watchdog.check` in tests, with an
injectable clock) cancels each call that kept its handler waiting longer than
``first_byte_s`` for its first message or ``idle_s`` for a later one, and reports it
(the server records it as an ``idle`` refusal); the handler's next read raises
:class:`StreamCut`, which the server lets end the call without another record.
Only time spent *waiting for the
caller* counts: a handler busy writing a chunk to disk is never cut.

The watchdog bounds the gaps between messages, not a call: what bounds an upload
is its job, whose end stops it (:meth:`Watched.stop`, called when the round gives
up on the job; see :meth:`~accord.transport.executor.GrpcExecutor.abandon`).

The same rule holds the other way (:meth:`Watchdog.deliver`): a handler streaming
messages *to* a caller (a model download, a task stream) hands each one to gRPC,
whose send blocks while the caller's flow-control window is full, that is while
the caller does not read. The time from handing a message over to being asked for
the next one is watched; past ``idle_s`` the call is cut (``cut(reason)`` cancels
and records it) and the stream ends. Time the handler spends producing a message
(waiting for the next task) never counts, nor does a slow link that still takes
each message within ``idle_s``. gRPC reports no progress inside a message, so the
unit is one message: at most a chunk (1 MiB) for a download.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Delivering", "StreamCut", "Watchdog", "Watched"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_TICK_S = 0.5


class StreamCut(Exception):
    """Raised to the reader of a call the watchdog cut (already recorded)."""


@dataclass(eq=False)
class _Watch:
    cancel: Callable[[], None]
    on_cut: Callable[[str], None]
    waiting_since: float | None = None
    messages: int = 0
    cut: bool = False
    #: A stream to the caller: ``waiting_since`` is when a message was handed over.
    sending: bool = False
    #: The stream ended: never watched again.
    done: bool = False


class Watched(Generic[T]):
    """An iterator over a caller's messages that the watchdog may cut."""

    def __init__(self, messages: Iterator[T], watch: _Watch, dog: Watchdog) -> None:
        self._messages = messages
        self._watch = watch
        self._dog = dog

    def __iter__(self) -> Watched[T]:
        return self

    def __next__(self) -> T:
        self._watch.waiting_since = self._dog.clock()
        try:
            item = next(self._messages)
        except BaseException as exc:
            if self._watch.cut:  # whatever the cancelled stream raised, or its end
                raise StreamCut("the watchdog cut this call") from exc
            raise
        finally:
            self._watch.waiting_since = None
        if self._watch.cut:
            raise StreamCut("the watchdog cut this call")
        self._watch.messages += 1
        return item

    @property
    def cut(self) -> bool:
        """Whether the watchdog cancelled the call, or :meth:`stop` was called."""
        return self._watch.cut

    def stop(self) -> bool:
        """Mark the call cut now, from any thread; False if it already ended.

        For a call that must end for another reason than silence (its job's
        deadline passed): the reader's pending or next read raises
        :class:`StreamCut`, and whoever stopped it cancels the call and records
        why. False: the reader was done (:meth:`close`), or the watchdog cut it
        first; nothing is to be done or recorded.
        """
        return self._dog.claim(self._watch)

    def close(self) -> None:
        """Stop watching (the handler is done reading)."""
        self._dog.forget(self._watch)


class Delivering(Generic[T]):
    """The messages a handler streams to its caller, cut if the caller stops reading.

    gRPC's server asks this iterator for a message, sends it, and asks for the
    next one only once the send is done: the gap between the two is the time
    the caller took to take the message (:meth:`Watchdog.deliver`). Cut, the
    stream ends (``StopIteration``) rather than raising, so that gRPC, whose
    call is already cancelled with the reason, logs no traceback.
    """

    def __init__(self, messages: Iterator[T], watch: _Watch, dog: Watchdog) -> None:
        self._messages = messages
        self._watch = watch
        self._dog = dog

    def __iter__(self) -> Delivering[T]:
        return self

    def __next__(self) -> T:
        self._dog.forget(self._watch)  # asked again: the last message went out
        self._watch.waiting_since = None
        if self._watch.cut:
            self.close()
            raise StopIteration
        try:
            item = next(self._messages)
        except BaseException:
            self.close()
            raise
        self._watch.messages += 1
        self._dog.enlist(self._watch)
        return item

    @property
    def cut(self) -> bool:
        """Whether the watchdog cut the call."""
        return self._watch.cut

    def forget(self) -> None:
        """Stop watching for good: the call ended, from any thread.

        :meth:`~.gate.Gate.deliver` has gRPC call it when the call ends, so
        that a call its caller cancelled while a message was pending is not
        cut, and recorded, later.
        """
        self._dog.retire(self._watch)

    def close(self) -> None:
        """Stop watching, and close the messages' generator (the stream ended).

        From the handler's thread only (``yield from`` calls it when the
        handler's generator is closed): a generator cannot be closed while it
        runs.
        """
        self.forget()
        close = getattr(self._messages, "close", None)
        if close is not None:
            close()


class Watchdog:
    """Cancels calls whose caller keeps the coordinator waiting; see the module."""

    def __init__(
        self,
        *,
        first_byte_s: float,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_byte_s = first_byte_s
        self.idle_s = idle_s
        self.clock = clock
        self._lock = threading.Lock()
        self._watches: set[_Watch] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(
        self,
        messages: Iterator[T],
        *,
        cancel: Callable[[], None],
        on_cut: Callable[[str], None],
    ) -> Watched[T]:
        """Wrap ``messages``; on a timeout call ``cancel``, then ``on_cut(reason)``."""
        watch = _Watch(cancel, on_cut)
        with self._lock:
            self._watches.add(watch)
        return Watched(messages, watch, self)

    def deliver(
        self, messages: Iterator[T], *, cut: Callable[[str], None]
    ) -> Delivering[T]:
        """Wrap ``messages``, which a handler streams to its caller; see the module.

        A message the caller leaves untaken for more than ``idle_s`` calls
        ``cut(reason)``, which must cancel the call (the handler's thread is
        blocked in gRPC's send until it is) and record why.
        """
        return Delivering(messages, _Watch(lambda: None, cut, sending=True), self)

    def enlist(self, watch: _Watch) -> None:
        """Watch ``watch`` from now (a message handed over), unless it is done."""
        with self._lock:
            if not watch.done and not watch.cut:
                watch.waiting_since = self.clock()
                self._watches.add(watch)

    def retire(self, watch: _Watch) -> None:
        """Stop watching ``watch`` for good."""
        with self._lock:
            watch.done = True
            self._watches.discard(watch)

    def claim(self, watch: _Watch) -> bool:
        """Stop watching ``watch`` and mark it cut, unless it is no longer watched."""
        with self._lock:
            if watch not in self._watches:
                return False
            self._watches.discard(watch)
            watch.cut = True
            return True

    def forget(self, watch: _Watch) -> None:
        """Stop watching ``watch``."""
        with self._lock:
            self._watches.discard(watch)

    def check(self) -> int:
        """Cut every call waited on too long; return how many were cut."""
        now = self.clock()
        expired: list[tuple[_Watch, str]] = []
        with self._lock:
            for w in self._watches:
                since = w.waiting_since
                if since is None:
                    continue
                if w.sending:
                    if now - since > self.idle_s:
                        expired.append((w, _unread(self.idle_s)))
                    continue
                first = w.messages == 0
                limit = self.first_byte_s if first else self.idle_s
                if now - since > limit:
                    what = "no first message" if first else "no message"
                    expired.append((w, f"{what} for {limit:g} s; the call was cut"))
            for w, _ in expired:
                self._watches.discard(w)
        for w, reason in expired:
            w.cut = True
            try:
                w.cancel()
            finally:
                w.on_cut(reason)
        return len(expired)

    def watching(self) -> int:
        """Calls watched now."""
        with self._lock:
            return len(self._watches)

    def start(self, tick_s: float = _TICK_S) -> Watchdog:
        """Check every ``tick_s`` seconds on a daemon thread until :meth:`close`."""

        def run() -> None:
            while not self._stop.wait(tick_s):
                try:
                    self.check()
                except Exception:  # the next tick tries again
                    logger.exception("the stream watchdog failed")

        self._thread = threading.Thread(target=run, name="accord-watchdog", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the checking thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def _unread(idle_s: float) -> str:
    return (
        f"the caller did not read a message for {idle_s:g} s (its flow-control "
        "window stayed full); the call was cut"
    )
