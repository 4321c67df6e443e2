"""Every message the coordinator refused, kept for the operator and the record.

A refusal is logged (one structured line: the fields are in the record's ``extra``),
appended to a :class:`RejectionLog` in memory, which the coordinator can show, and
handed to the log's ``sink`` at once, on the RPC thread that refused it and before
the peer hears the answer. The coordinator's sink is :func:`event_recorder`, which
writes the refusal to the run store with ``record_event``: a run that aborts or is
killed keeps every refusal made before. The store arrives as an
:class:`EventRecorder` (anything with ``record_event``), so this package needs no
SQLAlchemy.

Recording is synchronous on purpose: when a peer is told "refused", the refusal is
already durable. A sink that fails (the database is down) is logged and does not
turn the refusal into an internal error; the refusal stays in memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["EventRecorder", "Rejection", "RejectionLog", "Sink", "event_recorder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused message: who sent it (as authenticated), where, and why."""

    participant: str | None
    method: str
    round: int
    kind: str
    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, object]:
        """The refusal as JSON values."""
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


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
    was given; round 0 (not known yet) is stored as None.
    """

    def record(rejection: Rejection) -> None:
        store.record_event(
            run_id,
            round=rejection.round or None,
            participant=rejection.participant,
            kind=rejection.kind,
            detail=f"{rejection.method}: {rejection.reason}",
        )

    return record


class RejectionLog:
    """Thread-safe, append-only list of refusals, each also handed to ``sink``."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._lock = threading.Lock()
        self._items: list[Rejection] = []
        self._sink = sink

    def add(
        self,
        *,
        participant: str | None,
        method: str,
        round: int,
        kind: str,
        reason: str,
    ) -> Rejection:
        """Keep, log and pass on one refusal."""
        entry = Rejection(participant, method, round, kind, reason)
        with self._lock:
            self._items.append(entry)
        logger.warning(
            "refused %s from %s (round %d, %s): %s",
            method,
            participant or "an unauthenticated peer",
            round,
            kind,
            reason,
            extra={"accord_rejection": entry.to_json()},
        )
        if self._sink is not None:
            try:
                self._sink(entry)
            except Exception:
                # The peer is refused either way; the operator must learn that the
                # record of it is missing.
                logger.exception("could not record the refusal of %s", method)
        return entry

    def snapshot(self) -> tuple[Rejection, ...]:
        """Every refusal so far, oldest first."""
        with self._lock:
            return tuple(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
