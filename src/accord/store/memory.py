"""A :class:`RunStore` that keeps everything in process memory.

For tests and ``accord simulate --store memory``: nothing touches the disk and
everything is lost when the process ends. It follows the SQL store's contract to the
letter (same validation, same errors, same normalisation of what it returns), which
the shared test suite checks, so code tested against it behaves the same on SQLite.
Its run leases are exclusive within the process, which is all it spans.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from accord.errors import RunNotFound, StoreError
from accord.store.lease import Leases, in_process
from accord.store.protocol import (
    FinalStatus,
    check_finish,
    check_new_run,
    check_reopen,
    dump_json,
    new_run_id,
    utc_now,
)
from accord.store.records import (
    LedgerRecord,
    MetricValue,
    NewEvent,
    ReceiptRecord,
    RoundRecord,
    RunEvent,
    RunInfo,
    RunStatus,
    check_ledger,
    check_receipt,
    check_round,
    clean_event,
    next_in_chain,
)

__all__ = ["MemoryStore"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Run:
    run_id: str
    name: str
    created_at: datetime
    seed: int
    rounds_planned: int
    config_json: str
    status: RunStatus = "running"
    finished_at: datetime | None = None
    summary_json: str | None = None
    rounds: dict[int, RoundRecord] = field(default_factory=dict)
    events: list[RunEvent] = field(default_factory=list)
    ledger: list[LedgerRecord] = field(default_factory=list)
    receipts: dict[tuple[int, str], ReceiptRecord] = field(default_factory=dict)

    def chain(self, entry: LedgerRecord) -> None:
        next_in_chain(entry, self.ledger[-1].sequence if self.ledger else None)

    def info(self) -> RunInfo:
        completed = sum(r.status == "completed" for r in self.rounds.values())
        summary = None if self.summary_json is None else json.loads(self.summary_json)
        return RunInfo(
            run_id=self.run_id,
            name=self.name,
            created_at=self.created_at,
            finished_at=self.finished_at,
            status=self.status,
            seed=self.seed,
            rounds_planned=self.rounds_planned,
            rounds_completed=completed,
            config=json.loads(self.config_json),
            summary=summary,
        )


def _normalised(record: RoundRecord) -> RoundRecord:
    """The record as a database would give it back: UTC times, plain dicts."""
    outcomes = tuple(
        replace(o, metrics=json.loads(dump_json(o.metrics, what="outcome metrics")))
        for o in record.outcomes
    )
    metrics = tuple(replace(m, value=float(m.value)) for m in record.metrics)
    privacy = tuple(
        replace(p, details={k: float(v) for k, v in p.details.items()})
        for p in record.privacy
    )
    return replace(
        record,
        started_at=record.started_at.astimezone(UTC),
        finished_at=record.finished_at.astimezone(UTC),
        selected=tuple(record.selected),
        outcomes=outcomes,
        metrics=metrics,
        privacy=privacy,
    )


class MemoryStore:
    """In-memory :class:`~accord.store.protocol.RunStore`; thread-safe, not durable.

    ``clock`` returns the current UTC time; tests pass a fake one to control the
    ordering of runs.
    """

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._leases = Leases(in_process)
        self._closed = False

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, run_id: str) -> _Run:
        if self._closed:
            raise StoreError("the store is closed; open a new one")
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    def create_run(
        self, *, name: str, config: Mapping[str, Any], seed: int, rounds_planned: int
    ) -> str:
        """Start a run with status ``running``; return its new id."""
        check_new_run(name=name, seed=seed, rounds_planned=rounds_planned)
        config_json = dump_json(config, what="the run's config")
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed; open a new one")
            now = self._clock().astimezone(UTC)
            run_id = new_run_id(now)
            while run_id in self._runs:
                run_id = new_run_id(now)
            self._runs[run_id] = _Run(
                run_id=run_id,
                name=name,
                created_at=now,
                seed=seed,
                rounds_planned=rounds_planned,
                config_json=config_json,
            )
        logger.info("created run %s (%s)", run_id, name)
        return run_id

    def record_round(
        self, record: RoundRecord, *, ledger: LedgerRecord | None = None
    ) -> None:
        """Store one round (and its ledger entry); all checks run before either."""
        check_round(record)
        if ledger is not None:
            check_ledger(ledger, run_id=record.run_id, round_number=record.number)
        stored = _normalised(record)
        with self._lock:
            run = self._run(record.run_id)
            if record.number in run.rounds:
                raise StoreError(
                    f"round {record.number} of run {record.run_id} is already "
                    "recorded; a round is recorded once"
                )
            names = [o.participant for o in record.outcomes]
            if len(set(names)) != len(names):
                raise StoreError(
                    f"round {record.number} of run {record.run_id} lists a "
                    "participant's outcome twice; nothing of the round was stored"
                )
            if ledger is not None:
                run.chain(ledger)
                run.ledger.append(ledger)
            run.rounds[record.number] = stored

    def append_ledger(self, entry: LedgerRecord) -> None:
        """Keep a ledger entry of no round, after the run's last one."""
        check_ledger(entry, run_id=entry.run_id, round_number=None)
        with self._lock:
            run = self._run(entry.run_id)
            run.chain(entry)
            run.ledger.append(entry)

    def ledger(self, run_id: str) -> list[LedgerRecord]:
        """The run's ledger entries, by sequence number."""
        with self._lock:
            return list(self._run(run_id).ledger)

    def record_receipt(self, receipt: ReceiptRecord) -> None:
        """Keep a site's receipt; one already kept is ignored."""
        check_receipt(receipt)
        with self._lock:
            held = self._run(receipt.run_id).receipts
            held.setdefault((receipt.sequence, receipt.participant), receipt)

    def receipts(self, run_id: str) -> list[ReceiptRecord]:
        """The run's receipts, by entry and participant."""
        with self._lock:
            held = self._run(run_id).receipts
            return [held[k] for k in sorted(held)]

    def record_event(
        self,
        run_id: str,
        *,
        round: int | None,
        participant: str | None,
        kind: str,
        detail: str,
    ) -> None:
        """Keep one event of the run (a refused message)."""
        self.record_events(run_id, [NewEvent(round, participant, kind, detail)])

    def record_events(self, run_id: str, events: Sequence[NewEvent]) -> None:
        """Keep several events of the run, in order: all of them or none."""
        cleaned = [
            (
                e,
                clean_event(
                    round_number=e.round,
                    participant=e.participant,
                    kind=e.kind,
                    detail=e.detail,
                ),
            )
            for e in events
        ]
        with self._lock:
            run = self._run(run_id)
            at = self._clock().astimezone(UTC)
            run.events.extend(
                RunEvent(run_id, at, e.round, who, e.kind, text)
                for e, (who, text) in cleaned
            )

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's events, in the order they were recorded."""
        with self._lock:
            return list(self._run(run_id).events)

    def finish_run(
        self,
        run_id: str,
        *,
        status: FinalStatus,
        summary: Mapping[str, Any] | None,
        ledger: LedgerRecord | None = None,
    ) -> None:
        """Mark a run as ended (and keep its closing ledger entry, atomically)."""
        check_finish(status)
        if ledger is not None:
            check_ledger(ledger, run_id=run_id, round_number=None)
        summary_json = None if summary is None else dump_json(summary, what="summary")
        with self._lock:
            run = self._run(run_id)
            if ledger is not None:
                run.chain(ledger)
                run.ledger.append(ledger)
            run.status = status
            run.finished_at = self._clock().astimezone(UTC)
            run.summary_json = summary_json

    def reopen_run(self, run_id: str) -> RunInfo:
        """Mark a run that did not complete as ``running`` again, to resume it."""
        with self._lock:
            run = self._run(run_id)
            check_reopen(run_id, run.status)
            run.status = "running"
            run.finished_at = None
            run.summary_json = None
            return run.info()

    def lease_run(self, run_id: str) -> AbstractContextManager[None]:
        """Hold the run's lease in the block; :class:`RunBusy` if it is taken."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed; open a new one")
        return self._leases.hold(run_id)

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed; open a new one")
            runs = sorted(
                self._runs.values(),
                key=lambda r: (r.created_at, r.run_id),
                reverse=True,
            )
            return [r.info() for r in runs]

    def get_run(self, run_id: str) -> RunInfo:
        """One run; :class:`~accord.errors.RunNotFound` if there is none."""
        with self._lock:
            return self._run(run_id).info()

    def rounds(self, run_id: str) -> list[RoundRecord]:
        """The run's recorded rounds, by round number."""
        with self._lock:
            run = self._run(run_id)
            return [run.rounds[n] for n in sorted(run.rounds)]

    def last_completed_round(self, run_id: str) -> RoundRecord | None:
        """The highest-numbered round with status ``completed``."""
        done = [r for r in self.rounds(run_id) if r.status == "completed"]
        return done[-1] if done else None

    def metrics(self, run_id: str) -> list[tuple[int, MetricValue]]:
        """Every metric of the run as ``(round number, value)``, in round order."""
        return [(r.number, m) for r in self.rounds(run_id) for m in r.metrics]

    def close(self) -> None:
        """Drop everything; later calls raise :class:`StoreError`."""
        with self._lock:
            self._closed = True
            self._runs.clear()
        self._leases.release_all()
