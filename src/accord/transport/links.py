"""Who is connected: one task stream per participant, and when each one left.

A participant's ``Subscribe`` call is a long-lived stream; :class:`Links` keeps a
queue per open stream that the coordinator pushes tasks into, and remembers when a
participant's stream closed so that its open jobs can fail after a grace period
(a participant that reconnects within it gets them again). A second stream with the
same identity replaces the first, whose holder is told so and stops: that ends the
ping-pong two processes sharing a certificate would otherwise play. A participant
removed from the run (its certificate revoked) has its stream ended at once with an
error (:meth:`Links.expel`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from accord.errors import AuthenticationFailed
from accord.transport.messages import Goodbye, TaskOrder, Welcome

__all__ = ["Expelled", "Link", "Links"]

logger = logging.getLogger(__name__)

_POLL_S = 0.25


@dataclass(frozen=True)
class Expelled:
    """Ends a stream with an error: its holder was removed from the run."""

    reason: str


Item = TaskOrder | Goodbye | Expelled | None


@dataclass(eq=False)
class Link:
    """One open task stream; None in the queue wakes its handler to check the call."""

    name: str
    tasks: queue.Queue[Item] = field(default_factory=queue.Queue)


class Links:
    """Open task streams by participant name (thread-safe)."""

    def __init__(self, run_id: str, clock: Callable[[], float]) -> None:
        self._run_id = run_id
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._open: dict[str, Link] = {}
        self._gone_since: dict[str, float] = {}
        self._closed: Goodbye | None = None
        # A stream's generator may be finalised at interpreter exit, when the
        # module's globals are already gone: the drop logs through this reference.
        self._log = logger

    def send(self, name: str, order: TaskOrder) -> bool:
        """Queue ``order`` on ``name``'s stream; False if it has none."""
        with self._lock:
            link = self._open.get(name)
        if link is None:
            return False
        link.tasks.put(order)
        return True

    def connected(self) -> frozenset[str]:
        """Names with an open stream."""
        with self._lock:
            return frozenset(self._open)

    def gone_longer_than(self, seconds: float) -> list[str]:
        """Names whose stream closed more than ``seconds`` ago and never reopened."""
        now = self._clock()
        with self._lock:
            return [n for n, t in self._gone_since.items() if now - t > seconds]

    def open(self, name: str) -> Link:
        """Register a new stream of ``name``; the one it replaces is told to stop."""
        link = Link(name)
        with self._lock:
            if self._closed is not None:
                link.tasks.put(self._closed)
                return link
            old = self._open.get(name)
            self._open[name] = link
            self._gone_since.pop(name, None)
            self._changed.notify_all()
        if old is not None:
            old.tasks.put(
                Goodbye(self._run_id, "a newer connection with this identity took over")
            )
        logger.info("%s connected", name)
        return link

    def stream(
        self,
        link: Link,
        first: Iterable[Welcome | TaskOrder],
        is_active: Callable[[], bool],
    ) -> Iterator[TaskOrder | Goodbye | Welcome]:
        """Yield ``first``, then what is sent to ``link``, until a goodbye."""
        try:
            yield from first
            while is_active():
                try:
                    item = link.tasks.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is None:
                    continue  # woken up: look at is_active() again
                if isinstance(item, Expelled):
                    raise AuthenticationFailed(item.reason, name=link.name)
                yield item
                if isinstance(item, Goodbye):
                    return
        finally:
            self._drop(link)

    def wake(self, name: str) -> None:
        """Wake ``name``'s handler (its call was cancelled)."""
        with self._lock:
            link = self._open.get(name)
        if link is not None:
            link.tasks.put(None)

    def expel(self, name: str, reason: str) -> bool:
        """End ``name``'s stream at once with ``reason``; nothing more is sent to it.

        Its departure does not start a grace period: its jobs are failed already.
        Return whether it had a stream open.
        """
        with self._lock:
            link = self._open.pop(name, None)
            self._gone_since.pop(name, None)
            self._changed.notify_all()
        if link is None:
            return False
        link.tasks.put(Expelled(reason))
        logger.info("%s's task stream was closed: %s", name, reason)
        return True

    def _drop(self, link: Link) -> None:
        with self._lock:
            if self._open.get(link.name) is link:
                del self._open[link.name]
                self._gone_since[link.name] = self._clock()
                self._log.info("%s disconnected", link.name)
            self._changed.notify_all()

    def wait_for(self, names: Sequence[str], timeout: float) -> frozenset[str]:
        """Block until all ``names`` are connected or ``timeout`` passes."""
        wanted = frozenset(names)
        deadline = self._clock() + timeout
        with self._lock:
            while True:
                connected = wanted & frozenset(self._open)
                remaining = deadline - self._clock()
                if connected == wanted or remaining <= 0 or self._closed:
                    return connected
                self._changed.wait(min(remaining, _POLL_S))

    def close(self, goodbye: Goodbye) -> None:
        """Send ``goodbye`` on every stream; later subscribers get it at once."""
        with self._lock:
            self._closed = goodbye
            links = list(self._open.values())
            self._changed.notify_all()
        for link in links:
            link.tasks.put(goodbye)
