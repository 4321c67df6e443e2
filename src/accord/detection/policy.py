"""The quarantine policy: a site flagged ``after`` times is excluded for good.

State is explicit and immutable (``step(state, scores) -> state``), so that the
coordinator can rebuild it on resume by replaying the stored scores of the rounds
already recorded (:func:`replay`): nothing about quarantine lives only in memory.
A site quarantined at the end of round ``r`` is excluded from round ``r + 1`` on:
round ``r``'s aggregate was already computed when its scores (which need that
aggregate) were known.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", MappingProxyType(dict(self.flags)))
        object.__setattr__(self, "since", MappingProxyType(dict(self.since)))

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
        flags = dict(self.flags)
        since = dict(self.since)
        newly: list[str] = []
        for score in scores:
            if not score.flagged:
                continue
            who = score.participant
            flags[who] = flags.get(who, 0) + 1
            if self.after is not None and who not in since and flags[who] >= self.after:
                since[who] = round_number + 1
                newly.append(who)
        return QuarantineState(self.after, flags, since), tuple(newly)

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
