"""The bytes each site sent for its update, per round, kept as run events.

With ``[compression]`` the executor measures what each participant actually sent
(the compressed payload); the round loop records one ``update_bytes`` event per
site and round, beside the size the dense update would have had, so that
``accord runs show`` can say how many times fewer bytes travelled. Events rather
than a column of the outcomes table: no schema migration, and the count is a
fact about the transfer, not about the participant's training.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accord.records import NewEvent

if TYPE_CHECKING:  # the store's implementations pull in SQLAlchemy
    from accord.records import RunEvent
    from accord.store.protocol import RunStore

__all__ = ["EVENT_KIND", "RoundTransfer", "per_round", "record_transfers"]

logger = logging.getLogger(__name__)

EVENT_KIND = "update_bytes"


def record_transfers(
    store: RunStore,
    run_id: str,
    number: int,
    sent: Mapping[str, int],
    *,
    method: str,
    dense: int,
) -> None:
    """Record what each site in ``sent`` sent in round ``number`` (bytes)."""
    # one transaction for the round (a commit per site cost a 20-site secure
    # round of 100k parameters 15 % of its CPU)
    store.record_events(
        run_id,
        [
            NewEvent(
                round=number,
                participant=participant,
                kind=EVENT_KIND,
                detail=json.dumps({"method": method, "bytes": nbytes, "dense": dense}),
            )
            for participant, nbytes in sorted(sent.items())
        ],
    )
    if sent:
        total = sum(sent.values())
        logger.info(
            "round %d: %d bytes sent by %d sites (%s; %.1fx fewer than dense)",
            number,
            total,
            len(sent),
            method,
            dense * len(sent) / max(total, 1),
        )


@dataclass(frozen=True, slots=True)
class RoundTransfer:
    """One round's updates: sites counted, bytes sent, bytes if dense."""

    round: int
    method: str
    sites: int
    sent: int
    dense: int

    @property
    def ratio(self) -> float:
        """How many times fewer bytes than the dense updates."""
        return self.dense / self.sent if self.sent else float("inf")


def per_round(events: Iterable[RunEvent]) -> list[RoundTransfer]:
    """The ``update_bytes`` events of a run, summed per round, in round order."""
    rounds: dict[int, RoundTransfer] = {}
    for e in events:
        if e.kind != EVENT_KIND or e.round is None:
            continue
        try:
            d = json.loads(e.detail)
            method, sent, dense = str(d["method"]), int(d["bytes"]), int(d["dense"])
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable %s event in round %s", EVENT_KIND, e.round)
            continue
        was = rounds.get(e.round, RoundTransfer(e.round, method, 0, 0, 0))
        rounds[e.round] = RoundTransfer(
            e.round, method, was.sites + 1, was.sent + sent, was.dense + dense
        )
    return [rounds[r] for r in sorted(rounds)]
