"""Every message the coordinator refused, kept for the operator and the record.

A refusal is logged (one structured line: the fields are in the record's ``extra``),
kept by a :class:`RejectionLog` in memory, which the coordinator can show, and
handed to the log's ``sink``, on the RPC thread that refused it and before the peer
hears the answer. The coordinator's sink is :func:`event_recorder`, which writes the
refusal to the run store with ``record_event``: a run that aborts or is killed keeps
every kind of refusal made before. The store arrives as an :class:`EventRecorder`
(anything with ``record_event``), so this package needs no SQLAlchemy.

Repeats are aggregated, so that a caller refused thousands of times a minute grows
neither the store nor memory with each call. Refusals are grouped by (caller,
method, kind): the first of a group is logged and recorded at once, as it always
was; later ones only count (with the time of the first and the last, and the last
reason and round), and the group's running total is logged and recorded again at
most once every ``summary_every_s`` seconds, and once more by :meth:`flush` (the
coordinator calls it when the run ends). The store thus holds at most one row per
group per ``summary_every_s``, however fast the calls come; memory holds at most
``max_groups`` groups (the least recently refused group is recorded and dropped
first; the total count stays exact).

Recording is synchronous on purpose: when a peer is told "refused" for the first
time, the refusal is already durable. A sink that fails (the database is down) is
logged and does not turn the refusal into an internal error; the refusal stays in
memory.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["EventRecorder", "Rejection", "RejectionLog", "Sink", "event_recorder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Refused messages alike: who sent them (as authenticated), where, and why.

    ``count`` refusals of this (participant, method, kind) so far, the first at
    ``first_at`` (None: this one, at ``at``), the last at ``at``, with the last
    one's ``round`` and ``reason``.
    """

    participant: str | None
    method: str
    round: int
    kind: str
    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    count: int = 1
    first_at: datetime | None = None

    @property
    def first(self) -> datetime:
        """When the first of these refusals was made."""
        return self.first_at or self.at

    def to_json(self) -> dict[str, object]:
        """The refusal as JSON values."""
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["first_at"] = self.first.isoformat()
        return out

    def describe(self) -> str:
        """``METHOD: reason``, with the count and times when it repeats."""
        text = f"{self.method}: {self.reason}"
        if self.count > 1:
            text += (
                f" [{self.count} refusals of this kind from this caller, first at "
                f"{self.first:%Y-%m-%d %H:%M:%S}, last at {self.at:%H:%M:%S} UTC]"
            )
        return text


#: Called with each refusal as it is made (on the RPC thread that made it).
Sink = Callable[[Rejection], None]


class EventRecorder(Protocol):
    """The part of a run store that keeps events (:class:`~accord.store.RunStore`)."""

    def record_event(
        self,
        run_id: str,
        *,
        round: int | None,
        participant: str | None,
        kind: str,
        detail: str,
    ) -> None:
        """Store one event of ``run_id`` durably."""
        ...


def event_recorder(store: EventRecorder, run_id: str) -> Sink:
    """A sink writing each refusal to ``store`` as an event of ``run_id``.

    The event's ``kind`` is the refusal's (``duplicate``, ``stale``, ``mismatch``,
    ``unauthenticated``, ...), its ``detail`` the RPC method and the reason the peer
    was given (with the running count when it sums up repeats, see
    :meth:`Rejection.describe`); round 0 (not known yet) is stored as None.
    """

    def record(rejection: Rejection) -> None:
        store.record_event(
            run_id,
            round=rejection.round or None,
            participant=rejection.participant,
            kind=rejection.kind,
            detail=rejection.describe(),
        )

    return record


_Key = tuple[str | None, str, str]  # (participant, method, kind)


@dataclass
class _Group:
    entry: Rejection
    recorded: int  # the count when it was last logged and recorded
    recorded_at: datetime


class RejectionLog:
    """Thread-safe log of refusals, aggregated by (participant, method, kind).

    See the module docstring; ``now`` is the clock (tests pass their own).
    """

    def __init__(
        self,
        sink: Sink | None = None,
        *,
        summary_every_s: float = 60.0,
        max_groups: int = 1024,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lock = threading.Lock()
        self._groups: OrderedDict[_Key, _Group] = OrderedDict()
        self._sink = sink
        self._every = timedelta(seconds=summary_every_s)
        self._max_groups = max_groups
        self._now = now
        self._total = 0

    def add(
        self,
        *,
        participant: str | None,
        method: str,
        round: int,
        kind: str,
        reason: str,
    ) -> Rejection:
        """Count one refusal; log and pass it on if it is new or a summary is due."""
        now = self._now()
        key = (participant, method, kind)
        evicted: list[Rejection] = []
        with self._lock:
            self._total += 1
            group = self._groups.get(key)
            if group is None:
                entry = Rejection(participant, method, round, kind, reason, now)
                group = self._groups[key] = _Group(entry, 0, now)
                while len(self._groups) > self._max_groups:
                    _, gone = self._groups.popitem(last=False)
                    if gone.entry.count > gone.recorded:
                        evicted.append(gone.entry)
            else:
                last = group.entry
                entry = Rejection(
                    participant,
                    method,
                    round,
                    kind,
                    reason,
                    now,
                    last.count + 1,
                    last.first,
                )
                group.entry = entry
                self._groups.move_to_end(key)
            due = group.recorded == 0 or now - group.recorded_at >= self._every
            if due:
                group.recorded, group.recorded_at = entry.count, now
        for old_entry in evicted:
            self._record(old_entry)
        if due:
            self._record(entry)
        return entry

    def flush(self) -> int:
        """Log and pass on each group's count not yet recorded; return how many."""
        now = self._now()
        with self._lock:
            pending = [g for g in self._groups.values() if g.entry.count > g.recorded]
            for group in pending:
                group.recorded, group.recorded_at = group.entry.count, now
            entries = [g.entry for g in pending]
        for entry in entries:
            self._record(entry)
        return len(entries)

    def _record(self, entry: Rejection) -> None:
        logger.warning(
            "refused %s from %s (round %d, %s): %s%s",
            entry.method,
            entry.participant or "an unauthenticated peer",
            entry.round,
            entry.kind,
            entry.reason,
            f" ({entry.count} times since {entry.first:%H:%M:%S} UTC)"
            if entry.count > 1
            else "",
            extra={"accord_rejection": entry.to_json()},
        )
        if self._sink is not None:
            try:
                self._sink(entry)
            except Exception:
                # The peer is refused either way; the operator must learn that the
                # record of it is missing.
                logger.exception("could not record the refusal of %s", entry.method)

    def snapshot(self) -> tuple[Rejection, ...]:
        """Each group's latest refusal (with its count), least recent first."""
        with self._lock:
            return tuple(g.entry for g in self._groups.values())

    def __len__(self) -> int:
        """Every refusal so far, repeats included."""
        with self._lock:
            return self._total
