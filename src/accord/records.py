"""What a run leaves behind: per-participant outcomes, metrics and round records.

Plain frozen dataclasses shared by the round engine (which produces them) and the store
(which persists them); neither side needs the other's dependencies to use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "MetricValue",
    "OutcomeStatus",
    "ParticipantOutcome",
    "RoundRecord",
    "RunEvent",
    "RunInfo",
    "RunStatus",
]

OutcomeStatus = Literal["ok", "failed", "timeout", "rejected"]
RunStatus = Literal["running", "completed", "failed", "aborted"]


@dataclass(frozen=True, slots=True)
class ParticipantOutcome:
    """How one selected participant's round ended, and why if it did not succeed."""

    participant: str
    status: OutcomeStatus
    reason: str | None
    num_examples: int
    update_digest: str | None
    duration_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One measured value; ``scope`` is central, federated, site or train."""

    scope: str
    participant: str | None
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """Everything about one finished round, written to the store in one transaction."""

    run_id: str
    number: int
    started_at: datetime
    finished_at: datetime
    status: Literal["completed", "failed"]
    global_digest: str
    selected: tuple[str, ...]
    outcomes: tuple[ParticipantOutcome, ...]
    metrics: tuple[MetricValue, ...]
    checkpoint: str | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as listed by ``accord runs``."""

    run_id: str
    name: str
    created_at: datetime
    finished_at: datetime | None
    status: RunStatus
    seed: int
    rounds_planned: int
    rounds_completed: int
    config: Mapping[str, Any]
    summary: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something that happened to a run outside any round's outcomes.

    Chiefly a message refused before it reached a round (a replay, a duplicate, an
    unauthenticated or malformed submission): it changes nothing else, but operators
    and auditors must be able to see that it was tried. ``kind`` is a short
    identifier (``duplicate``, ``stale``, ``unauthenticated``, ...), ``detail`` a
    readable reason; ``round`` and ``participant`` are None when unknown.
    """

    run_id: str
    at: datetime
    round: int | None
    participant: str | None
    kind: str
    detail: str
