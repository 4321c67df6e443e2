"""Every message the coordinator refused, kept for the operator and the record.

A refusal is logged (one structured line: the fields are in the record's ``extra``)
and appended to a :class:`RejectionLog` in memory, which the coordinator can show
and, once the store has a place for them, persist with the round.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

__all__ = ["Rejection", "RejectionLog"]

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


class RejectionLog:
    """Thread-safe, append-only list of refusals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Rejection] = []

    def add(
        self,
        *,
        participant: str | None,
        method: str,
        round: int,
        kind: str,
        reason: str,
    ) -> Rejection:
        """Record and log one refusal."""
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
        return entry

    def snapshot(self) -> tuple[Rejection, ...]:
        """Every refusal so far, oldest first."""
        with self._lock:
            return tuple(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
