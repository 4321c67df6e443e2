"""What a run reports of its rounds: summaries, the run's result, and their reading.

The round loop (:mod:`accord.coordinator.runner`) makes a :class:`RoundSummary` per
round; a resumed run rebuilds those of its recorded rounds with :func:`summary_of`
so that its result, its abort rule and its final metrics read as if it had never
stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from accord.params import Params
from accord.records import RoundRecord

__all__ = [
    "RoundSummary",
    "RunResult",
    "failed_in_a_row",
    "last_metrics",
    "summary_of",
    "untrained",
]


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """What the CLI shows and the caller gets back for each round."""

    number: int
    status: Literal["completed", "failed"]
    selected: int
    succeeded: int
    duration_s: float
    global_digest: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None
    epsilon: float | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of a whole run."""

    run_id: str
    params: Params
    rounds: tuple[RoundSummary, ...]
    stopped: str | None = None


def last_metrics(summaries: Sequence[RoundSummary]) -> dict[str, float]:
    """The run-level metrics of the last completed round (empty if none)."""
    for summary in reversed(summaries):
        if summary.status == "completed":
            return dict(summary.metrics)
    return {}


def failed_in_a_row(summaries: Sequence[RoundSummary]) -> int:
    """How many of the last rounds failed, to carry the abort rule across a resume."""
    count = 0
    for summary in reversed(summaries):
        if summary.status != "failed":
            break
        count += 1
    return count


def summary_of(record: RoundRecord) -> RoundSummary:
    """A recorded round as the loop would have summarised it (its reason is lost)."""
    return RoundSummary(
        number=record.number,
        status=record.status,
        selected=len(record.selected),
        succeeded=sum(o.status == "ok" for o in record.outcomes),
        duration_s=(record.finished_at - record.started_at).total_seconds(),
        global_digest=record.global_digest,
        metrics={
            f"{m.scope}.{m.name}": m.value
            for m in record.metrics
            if m.participant is None
        },
        epsilon=next(
            (p.epsilon for p in record.privacy if p.participant is None), None
        ),
    )


def untrained(result: RunResult) -> str | None:
    """Why ``result`` trained nothing (none of its rounds completed); None if it did.

    Such a run is not "completed", whatever the abort rule let it run to: the
    store records it as failed and the CLI exits 1 with this reason.
    """
    if any(s.status == "completed" for s in result.rounds):
        return None
    last = result.rounds[-1].reason if result.rounds else None
    return (
        f"none of its {len(result.rounds)} round(s) completed (last: {last}), so "
        "the model is still the initial one; see `accord runs show "
        f"{result.run_id}` for each participant's failure"
    )
