"""What a model card is built from: a run's stored records, read once.

:class:`CardInputs` holds everything :func:`accord.report.card.build_card` looks
at, as the store returned it (the run, its rounds and events) plus what was
derived from the store without judgement: each ledger entry's statement read back,
whether the chain verifies, and the contribution scores when they were computed.
:mod:`accord.report.sources` fills it from a store; a test or the dashboard can
build one from records it already holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.contribution import ContributionReport
from accord.records import RoundRecord, RunEvent, RunInfo

__all__ = ["CardInputs", "LedgerCheck", "LedgerEntry"]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger entry: where it sits, its kind, digest and predicate.

    ``predicate`` is empty when the entry's statement could not be read back
    (verification then names it).
    """

    sequence: int
    kind: str
    round: int | None
    digest: str
    predicate: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """Whether the run's ledger verifies, and what that proves.

    ``verified`` is None when it was not checked (a coordinator's certificate
    signed it and no CA was given); ``how`` says what a pass proves, or why it
    was not checked; ``problems`` names each broken entry.
    """

    verified: bool | None
    how: str
    problems: tuple[str, ...] = ()
    receipts: int = 0


@dataclass(frozen=True, slots=True)
class CardInputs:
    """A run's records, as the card reads them.

    ``contributions`` is None when they were not computed; ``contributions_note``
    then says why (the run kept no updates, or nobody asked).
    """

    run: RunInfo
    rounds: tuple[RoundRecord, ...]
    events: tuple[RunEvent, ...] = ()
    ledger: tuple[LedgerEntry, ...] = ()
    check: LedgerCheck | None = None
    contributions: ContributionReport | None = None
    contributions_note: str | None = None

    def config(self, name: str) -> Mapping[str, Any]:
        """The run's recorded ``[name]`` section (empty if it has none)."""
        value = self.run.config.get(name)
        return value if isinstance(value, Mapping) else {}

    def first(self, kind: str) -> LedgerEntry | None:
        """The run's first ledger entry of ``kind``, if any."""
        return next((e for e in self.ledger if e.kind == kind), None)

    def last(self, kind: str) -> LedgerEntry | None:
        """The run's last ledger entry of ``kind``, if any."""
        return next((e for e in reversed(self.ledger) if e.kind == kind), None)
