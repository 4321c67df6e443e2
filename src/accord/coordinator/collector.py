"""The one deadline-driven event loop every stage of a round waits in.

A plain round's updates, a federated evaluation, each stage of a masking round, a
CKKS round's uploads and its decryption all wait the same way: take events from the
executor until everyone awaited has answered or the deadline passes; then give the
late ones their outcome and tell the executor to stop waiting for them (their late
results are dropped). :func:`collect` is that loop, written once; what an event
means, and what "late" records, stay with the caller (``handle`` and ``expire``).

It needs no I/O of its own and reads time only from the ``clock`` it is given, so
it is tested with a fake clock and a scripted event source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from accord.coordinator.executor import Event

__all__ = ["EventSource", "collect"]


class EventSource(Protocol):
    """The part of an :class:`~accord.coordinator.executor.Executor` a wait uses."""

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event, or None if none arrived within ``timeout`` seconds."""
        ...

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Stop waiting for these participants' jobs."""
        ...


def collect(
    source: EventSource,
    *,
    round_number: int,
    deadline: float,
    clock: Callable[[], float],
    finished: Callable[[], bool],
    pending: Callable[[], Sequence[str]],
    handle: Callable[[Event], None],
    expire: Callable[[tuple[str, ...]], None] = lambda late: None,
) -> tuple[str, ...]:
    """Feed events to ``handle`` until ``finished()`` or ``deadline`` on ``clock``.

    ``finished`` is asked before every wait (keep it cheap); ``pending`` only once
    the deadline passed, for who is late. Those get ``expire(late)`` first (record
    their outcomes), then ``source.abandon(round_number, late)``. Returns the late
    participants, empty when everyone answered in time. A wait that returns no
    event (its timeout ran out, or nothing came yet) just loops to the next check.
    """
    while not finished():
        remaining = deadline - clock()
        if remaining <= 0:
            late = tuple(pending())
            expire(late)
            if late:
                source.abandon(round_number, late)
            return late
        event = source.next_event(remaining)
        if event is not None:
            handle(event)
    return ()
