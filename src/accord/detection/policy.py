"""The quarantine policy: a site flagged ``after`` times is excluded for good.

State is explicit and immutable (``step(state, scores) -> state``), so that the
coordinator can rebuild it on resume by replaying the stored scores of the rounds
already recorded (:func:`replay`): nothing about quarantine lives only in memory.
A site quarantined at the end of round ``r`` is excluded from round ``r + 1`` on:
round ``r``'s aggregate was already computed when its scores (which need that
aggregate) were known.

The policy never quarantines half or more of the sites it has scored: a majority
cannot be the outliers of a robust score, and a round must still reach its quorum.
A site that reaches ``after`` flags while that cap is full stays in, and is
quarantined at a later flag if a place is left (none is ever freed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from accord.records import RoundRecord, UpdateScore

__all__ = ["QuarantineState", "replay"]


@dataclass(frozen=True, slots=True)
class QuarantineState:
    """Flags counted per site, and since which round each quarantined site is out.

    ``after`` None counts flags but quarantines nobody.
    """

    after: int | None
    flags: Mapping[str, int] = field(default_factory=dict)
    since: Mapping[str, int] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", MappingProxyType(dict(self.flags)))
        object.__setattr__(self, "since", MappingProxyType(dict(self.since)))

    @property
    def limit(self) -> int:
        """The most sites that may be quarantined: fewer than half of those seen."""
        return (len(self.seen) - 1) // 2

    @property
    def quarantined(self) -> frozenset[str]:
        """Sites excluded from aggregation."""
        return frozenset(self.since)

    def step(
        self, round_number: int, scores: Iterable[UpdateScore]
    ) -> tuple[QuarantineState, tuple[str, ...]]:
        """Count round ``round_number``'s flags; the new state and who was just put out.

        The newly quarantined are excluded from round ``round_number + 1`` on.
        """
        scores = tuple(scores)
        flags = dict(self.flags)
        since = dict(self.since)
        seen = self.seen | {s.participant for s in scores}
        limit = (len(seen) - 1) // 2
        newly: list[str] = []
        for score in scores:
            if not score.flagged:
                continue
            who = score.participant
            flags[who] = flags.get(who, 0) + 1
            due = self.after is not None and flags[who] >= self.after
            if due and who not in since and len(since) < limit:
                since[who] = round_number + 1
                newly.append(who)
        return QuarantineState(self.after, flags, since, seen), tuple(newly)

    def reason(self, participant: str) -> str:
        """Why ``participant``'s updates are not aggregated (it must be quarantined)."""
        return (
            f"quarantined since round {self.since[participant]} (flagged "
            f"{self.after} times: robustness.quarantine_after); scored and "
            "recorded, not aggregated"
        )


def replay(after: int | None, rounds: Iterable[RoundRecord]) -> QuarantineState:
    """The state after the recorded ``rounds`` (in order): what resume continues."""
    state = QuarantineState(after)
    for record in rounds:
        state, _ = state.step(record.number, record.scores)
    return state
