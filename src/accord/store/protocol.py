"""The narrow interface the round engine, CLI and dashboard use to persist runs.

:class:`RunStore` is a :class:`typing.Protocol`: :class:`~accord.store.sql.SqlStore`
(SQLite or any SQLAlchemy URL) and :class:`~accord.store.memory.MemoryStore` (tests,
``--store memory``) implement it without inheriting from anything. The functions
below hold the parts of the contract every implementation must apply the same way
(how run ids look, which arguments are valid, how JSON is normalised), so that both
behave identically under the same test suite.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from accord.errors import StoreError
from accord.store.records import (
    LedgerRecord,
    MetricValue,
    NewEvent,
    ReceiptRecord,
    RoundRecord,
    RunEvent,
    RunInfo,
)

__all__ = [
    "FinalStatus",
    "RunStore",
    "check_finish",
    "check_new_run",
    "check_reopen",
    "dump_json",
    "new_run_id",
    "utc_now",
]

FinalStatus = Literal["completed", "failed", "aborted"]

_INT64 = 2**63


@runtime_checkable
class RunStore(Protocol):
    """Where runs, their rounds and their metrics are kept.

    A round passed to :meth:`record_round` is durable when the call returns, and is
    written all at once or not at all: readers never see half a round. So is an
    event passed to :meth:`record_event`.
    """

    def create_run(
        self, *, name: str, config: Mapping[str, Any], seed: int, rounds_planned: int
    ) -> str:
        """Start a run with status ``running``; return its new id."""
        ...

    def record_round(
        self, record: RoundRecord, *, ledger: LedgerRecord | None = None
    ) -> None:
        """Store one round atomically; :class:`StoreError` if it is already stored.

        ``ledger`` is the round's ledger entry, stored in the same transaction:
        there is never a round without its entry, nor an entry without its round.
        """
        ...

    def append_ledger(self, entry: LedgerRecord) -> None:
        """Store a ledger entry of no round (a run opened, resumed).

        Every entry (here, with a round, with a run's end) must follow the run's
        last one (:func:`~accord.store.records.next_in_chain`): StoreError if not.
        """
        ...

    def ledger(self, run_id: str) -> list[LedgerRecord]:
        """The run's ledger entries, by sequence number."""
        ...

    def record_receipt(self, receipt: ReceiptRecord) -> None:
        """Store a site's receipt for an entry; a second one of it is ignored."""
        ...

    def receipts(self, run_id: str) -> list[ReceiptRecord]:
        """The run's receipts, by entry and participant."""
        ...

    def record_event(
        self,
        run_id: str,
        *,
        round: int | None,
        participant: str | None,
        kind: str,
        detail: str,
    ) -> None:
        """Store something that happened outside the rounds, e.g. a refused message.

        ``kind`` is a short identifier (``duplicate``, ``stale``,
        ``unauthenticated``, ``malformed``, ...); ``detail`` says why, readably.
        ``participant`` and ``detail`` may quote a peer and are stored cut to a
        bounded length (see :func:`~accord.store.records.clean_event`).
        """
        ...

    def record_events(self, run_id: str, events: Sequence[NewEvent]) -> None:
        """Store several events of the run at once, in order: all of them or none.

        What :meth:`record_event` does for each, in one transaction (a round's
        per-site transfer counts are one write, not one per site).
        """
        ...

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's events, in the order they were recorded."""
        ...

    def finish_run(
        self,
        run_id: str,
        *,
        status: FinalStatus,
        summary: Mapping[str, Any] | None,
        ledger: LedgerRecord | None = None,
    ) -> None:
        """Mark a run as ended with ``status`` and an optional JSON ``summary``.

        ``ledger`` (the run's closing entry) is stored in the same transaction.
        """
        ...

    def reopen_run(self, run_id: str) -> RunInfo:
        """Mark a run that did not complete as ``running`` again; return it.

        For resuming after a crash or an interruption: the finish time and summary
        are cleared, recorded rounds are kept. A completed run is refused with
        :class:`StoreError`: there is nothing left to run.
        """
        ...

    def lease_run(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """Hold the run's lease inside the ``with`` block: serve it alone.

        Whoever runs or resumes a run holds its lease, so that a second process
        serving the same run is refused before it does anything:
        :class:`~accord.errors.RunBusy`, naming the holder where known. The lease
        is re-entrant in the thread that holds it (on the same store object) and is
        freed when the block ends or the holder dies, however it dies
        (:mod:`accord.store.lease`). The run need not exist.
        """
        ...

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        ...

    def get_run(self, run_id: str) -> RunInfo:
        """One run; :class:`~accord.errors.RunNotFound` if there is none."""
        ...

    def rounds(self, run_id: str) -> list[RoundRecord]:
        """The run's recorded rounds, by round number."""
        ...

    def last_completed_round(self, run_id: str) -> RoundRecord | None:
        """The highest-numbered round with status ``completed`` (where to resume)."""
        ...

    def metrics(self, run_id: str) -> list[tuple[int, MetricValue]]:
        """Every metric of the run as ``(round number, value)``, in round order."""
        ...

    def close(self) -> None:
        """Release connections, files and leases; the store is unusable afterwards."""
        ...


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC (the only zone the store keeps)."""
    return datetime.now(UTC)


def new_run_id(now: datetime) -> str:
    """A short id that sorts by creation time: ``20261122-163301-ab12cd``.

    The time part is ``now`` in UTC to the second; six random hex digits make ids
    made in the same second distinct.
    """
    stamp = now.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def dump_json(value: Mapping[str, Any], *, what: str) -> str:
    """Encode ``value`` as JSON text, or raise :class:`StoreError` saying why not.

    Non-finite floats are allowed (Python reads them back); key order is kept.
    """
    try:
        return json.dumps(dict(value), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"{what} cannot be stored as JSON ({exc}); pass only dicts, lists, str, "
            "int, float, bool and None"
        ) from exc


def check_new_run(*, name: str, seed: int, rounds_planned: int) -> None:
    """Validate :meth:`RunStore.create_run` arguments the same way in every store."""
    if not name:
        raise StoreError("a run needs a non-empty name")
    if not -_INT64 <= seed < _INT64:
        raise StoreError(
            f"seed {seed} does not fit in a signed 64-bit integer; pick a smaller seed"
        )
    if rounds_planned < 0:
        raise StoreError(f"rounds_planned is {rounds_planned}; must be >= 0")


def check_finish(status: str) -> None:
    """Validate the final status given to :meth:`RunStore.finish_run`."""
    allowed = get_args(FinalStatus)
    if status not in allowed:
        raise StoreError(
            f"cannot finish a run with status {status!r}; use one of "
            f"{', '.join(allowed)}"
        )


def check_reopen(run_id: str, status: str) -> None:
    """Refuse to reopen a run that completed (what :meth:`RunStore.reopen_run` does)."""
    if status == "completed":
        raise StoreError(
            f"run {run_id} completed all its rounds; there is nothing to resume. "
            "Start a new run instead"
        )
