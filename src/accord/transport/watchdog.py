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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["StreamCut", "Watchdog", "Watched"]

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
