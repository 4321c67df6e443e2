"""A :class:`RunStore` on any SQLAlchemy database: SQLite by default, PostgreSQL by URL.

Every write is one transaction: a round, its outcomes and its metrics are committed
together or not at all, and are durable when :meth:`SqlStore.record_round` returns
(SQLite runs with ``synchronous=FULL``, see :mod:`accord.store.engine`). Reads open a
short session each, so a dashboard in another process sees each round whole as soon
as it is committed. Opening a store brings the database's tables to this accord's
schema (:mod:`accord.store.migrate`). A run's lease (:meth:`SqlStore.lease_run`) is a
lock the operating system (SQLite) or the server (PostgreSQL) drops when its holder
dies: see :mod:`accord.store.lease`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import URL, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from accord.errors import RunNotFound, StoreError
from accord.store import engine as engines
from accord.store import lease, migrate
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
    check_ledger,
    check_receipt,
    check_round,
    clean_event,
    next_in_chain,
)
from accord.store.schema import (
    EventRow,
    LedgerRow,
    MetricRow,
    ReceiptRow,
    RoundRow,
    RunRow,
    event_from_row,
    ledger_from_row,
    ledger_to_row,
    metric_from_row,
    receipt_from_row,
    round_from_row,
    round_to_row,
    run_info_from_row,
)

__all__ = ["SqlStore", "open_store"]

logger = logging.getLogger(__name__)

_ID_ATTEMPTS = 5


class SqlStore:
    """:class:`~accord.store.protocol.RunStore` over SQLAlchemy; migrates its tables.

    ``url`` is any SQLAlchemy URL (``sqlite:///runs/accord.db``,
    ``postgresql://user@host/db``). ``clock`` returns the current UTC time; tests pass
    a fake one. Raises :class:`StoreError` if the database cannot be opened or was
    written by a newer accord.
    """

    def __init__(
        self, url: str | URL, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._url = engines.parse_url(url)
        self._where = engines.describe(self._url)
        self._clock = clock
        self._engine = engines.connect(self._url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._leases = lease.Leases(
            lease.acquirer(self._url, self._engine, where=self._where)
        )
        self._closed = False
        try:
            migrate.upgrade(self._engine, where=self._where)
        except BaseException:
            self._engine.dispose()
            raise
        logger.info("opened run store: %s", self._where)

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The database, described for people (file path or URL without password)."""
        return self._where

    @contextmanager
    def _session(self, action: str, *, write: bool = False) -> Iterator[Session]:
        """A session (in a transaction if ``write``); database errors -> StoreError."""
        if self._closed:
            raise StoreError("the store is closed; open a new one")
        with engines.translated(action, self._where), self._sessions() as session:
            if not write:
                yield session
                return
            with session.begin():
                yield session

    def create_run(
        self, *, name: str, config: Mapping[str, Any], seed: int, rounds_planned: int
    ) -> str:
        """Start a run with status ``running``; return its new id."""
        check_new_run(name=name, seed=seed, rounds_planned=rounds_planned)
        config_json = dump_json(config, what="the run's config")
        now = self._clock().astimezone(UTC)
        for attempt in range(_ID_ATTEMPTS):
            run_id = new_run_id(now)
            row = RunRow(
                id=run_id,
                name=name,
                created_at=now,
                status="running",
                seed=seed,
                rounds_planned=rounds_planned,
                config=config_json,
            )
            try:
                with self._session(f"creating run {name!r}", write=True) as session:
                    session.add(row)
            except StoreError as exc:
                # Two ids made in one second may collide; retry with fresh random.
                if isinstance(exc.__cause__, IntegrityError) and (
                    attempt < _ID_ATTEMPTS - 1
                ):
                    continue
                raise
            logger.info("created run %s (%s)", run_id, name)
            return run_id
        raise AssertionError("unreachable")  # pragma: no cover

    def record_round(
        self, record: RoundRecord, *, ledger: LedgerRecord | None = None
    ) -> None:
        """Store a round, its outcomes, metrics and ledger entry in one transaction."""
        check_round(record)
        if ledger is not None:
            check_ledger(ledger, run_id=record.run_id, round_number=record.number)
        action = f"recording round {record.number} of run {record.run_id}"
        row = round_to_row(record)
        with self._session(action, write=True) as session:
            if session.get(RunRow, record.run_id) is None:
                raise RunNotFound(record.run_id)
            existing = session.scalar(
                select(RoundRow.id).where(
                    RoundRow.run_id == record.run_id, RoundRow.number == record.number
                )
            )
            if existing is not None:
                raise StoreError(
                    f"round {record.number} of run {record.run_id} is already "
                    "recorded; a round is recorded once"
                )
            session.add(row)
            if ledger is not None:
                self._chain(session, ledger)
        logger.debug("recorded round %d of run %s", record.number, record.run_id)

    @staticmethod
    def _chain(session: Session, entry: LedgerRecord) -> None:
        """Add ``entry`` in ``session``'s transaction, after the run's last one."""
        last = session.scalar(
            select(func.max(LedgerRow.sequence)).where(LedgerRow.run_id == entry.run_id)
        )
        next_in_chain(entry, last)
        session.add(ledger_to_row(entry))

    def append_ledger(self, entry: LedgerRecord) -> None:
        """Store a ledger entry of no round, after the run's last one."""
        check_ledger(entry, run_id=entry.run_id, round_number=None)
        action = f"recording ledger entry {entry.sequence} of run {entry.run_id}"
        with self._session(action, write=True) as session:
            self._existing(session, entry.run_id)
            self._chain(session, entry)

    def ledger(self, run_id: str) -> list[LedgerRecord]:
        """The run's ledger entries, by sequence number."""
        stmt = (
            select(LedgerRow)
            .where(LedgerRow.run_id == run_id)
            .order_by(LedgerRow.sequence)
        )
        with self._session(f"reading the ledger of run {run_id}") as session:
            self._existing(session, run_id)
            return [ledger_from_row(row) for row in session.scalars(stmt)]

    def record_receipt(self, receipt: ReceiptRecord) -> None:
        """Store a site's receipt; one the store holds already is ignored."""
        check_receipt(receipt)
        action = f"recording a receipt of run {receipt.run_id}"
        with self._session(action, write=True) as session:
            self._existing(session, receipt.run_id)
            held = session.scalar(
                select(ReceiptRow.id).where(
                    ReceiptRow.run_id == receipt.run_id,
                    ReceiptRow.sequence == receipt.sequence,
                    ReceiptRow.participant == receipt.participant,
                )
            )
            if held is None:
                session.add(
                    ReceiptRow(
                        run_id=receipt.run_id,
                        sequence=receipt.sequence,
                        participant=receipt.participant,
                        envelope=receipt.envelope,
                        certificate=base64.b64encode(receipt.certificate).decode(),
                    )
                )

    def receipts(self, run_id: str) -> list[ReceiptRecord]:
        """The run's receipts, by entry and participant."""
        stmt = (
            select(ReceiptRow)
            .where(ReceiptRow.run_id == run_id)
            .order_by(ReceiptRow.sequence, ReceiptRow.participant)
        )
        with self._session(f"reading receipts of run {run_id}") as session:
            self._existing(session, run_id)
            return [receipt_from_row(row) for row in session.scalars(stmt)]

    def record_event(
        self,
        run_id: str,
        *,
        round: int | None,
        participant: str | None,
        kind: str,
        detail: str,
    ) -> None:
        """Store one event of the run (a refused message), durably."""
        self.record_events(run_id, [NewEvent(round, participant, kind, detail)])

    def record_events(self, run_id: str, events: Sequence[NewEvent]) -> None:
        """Store several events of the run in one transaction, in order."""
        at = self._clock().astimezone(UTC)
        rows = []
        for event in events:
            who, text = clean_event(
                round_number=event.round,
                participant=event.participant,
                kind=event.kind,
                detail=event.detail,
            )
            rows.append(
                EventRow(
                    run_id=run_id,
                    at=at,
                    round=event.round,
                    participant=who,
                    kind=event.kind,
                    detail=text,
                )
            )
        if not rows:
            return
        with self._session(f"recording events of run {run_id}", write=True) as s:
            self._existing(s, run_id)
            s.add_all(rows)

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's events, in the order they were recorded."""
        stmt = select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id)
        with self._session(f"reading events of run {run_id}") as session:
            self._existing(session, run_id)
            return [event_from_row(row) for row in session.scalars(stmt)]

    def finish_run(
        self,
        run_id: str,
        *,
        status: FinalStatus,
        summary: Mapping[str, Any] | None,
        ledger: LedgerRecord | None = None,
    ) -> None:
        """Mark a run as ended (and store its closing ledger entry, atomically)."""
        check_finish(status)
        if ledger is not None:
            check_ledger(ledger, run_id=run_id, round_number=None)
        summary_json = None if summary is None else dump_json(summary, what="summary")
        with self._session(f"finishing run {run_id}", write=True) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(run_id)
            row.status = status
            row.finished_at = self._clock().astimezone(UTC)
            row.summary = summary_json
            if ledger is not None:
                self._chain(session, ledger)

    def reopen_run(self, run_id: str) -> RunInfo:
        """Mark a run that did not complete as ``running`` again, to resume it."""
        with self._session(f"reopening run {run_id}", write=True) as session:
            row = self._existing(session, run_id)
            check_reopen(run_id, row.status)
            row.status = "running"
            row.finished_at = None
            row.summary = None
        logger.info("reopened run %s", run_id)
        return self.get_run(run_id)

    def lease_run(self, run_id: str) -> AbstractContextManager[None]:
        """Hold the run's lease in the block; :class:`RunBusy` if it is taken."""
        if self._closed:
            raise StoreError("the store is closed; open a new one")
        return self._leases.hold(run_id)

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        done = (
            select(func.count(RoundRow.id))
            .where(RoundRow.run_id == RunRow.id, RoundRow.status == "completed")
            .correlate(RunRow)
            .scalar_subquery()
        )
        stmt = select(RunRow, done).order_by(RunRow.created_at.desc(), RunRow.id.desc())
        with self._session("listing runs") as session:
            return [
                run_info_from_row(row, rounds_completed=int(count))
                for row, count in session.execute(stmt)
            ]

    def get_run(self, run_id: str) -> RunInfo:
        """One run; :class:`~accord.errors.RunNotFound` if there is none."""
        with self._session(f"reading run {run_id}") as session:
            row = self._existing(session, run_id)
            count = session.scalar(
                select(func.count(RoundRow.id)).where(
                    RoundRow.run_id == run_id, RoundRow.status == "completed"
                )
            )
            return run_info_from_row(row, rounds_completed=int(count or 0))

    def rounds(self, run_id: str) -> list[RoundRecord]:
        """The run's recorded rounds, by round number."""
        with self._session(f"reading rounds of run {run_id}") as session:
            self._existing(session, run_id)
            stmt = (
                select(RoundRow)
                .where(RoundRow.run_id == run_id)
                .order_by(RoundRow.number)
                .options(
                    selectinload(RoundRow.outcomes),
                    selectinload(RoundRow.metrics),
                    selectinload(RoundRow.privacy),
                    selectinload(RoundRow.scores),
                )
            )
            return [round_from_row(row) for row in session.scalars(stmt)]

    def last_completed_round(self, run_id: str) -> RoundRecord | None:
        """The highest-numbered round with status ``completed`` (where to resume)."""
        with self._session(f"reading rounds of run {run_id}") as session:
            self._existing(session, run_id)
            stmt = (
                select(RoundRow)
                .where(RoundRow.run_id == run_id, RoundRow.status == "completed")
                .order_by(RoundRow.number.desc())
                .limit(1)
                .options(
                    selectinload(RoundRow.outcomes),
                    selectinload(RoundRow.metrics),
                    selectinload(RoundRow.privacy),
                    selectinload(RoundRow.scores),
                )
            )
            row = session.scalars(stmt).first()
            return None if row is None else round_from_row(row)

    def metrics(self, run_id: str) -> list[tuple[int, MetricValue]]:
        """Every metric of the run as ``(round number, value)``, in round order."""
        stmt = (
            select(RoundRow.number, MetricRow)
            .join(MetricRow, MetricRow.round_id == RoundRow.id)
            .where(RoundRow.run_id == run_id)
            .order_by(RoundRow.number, MetricRow.position)
        )
        with self._session(f"reading metrics of run {run_id}") as session:
            self._existing(session, run_id)
            return [
                (number, metric_from_row(row)) for number, row in session.execute(stmt)
            ]

    def close(self) -> None:
        """Release leases, close connections; later calls raise :class:`StoreError`."""
        if not self._closed:
            self._closed = True
            self._leases.release_all()
            self._engine.dispose()

    @staticmethod
    def _existing(session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return row


def open_store(url: str | None, *, default_dir: Path) -> SqlStore:
    """Open the store at ``url``, or ``{default_dir}/accord.db`` (SQLite) if ``None``.

    ``default_dir`` is created when needed; an explicit URL's directory is not, so a
    mistyped path fails loudly instead of starting an empty store somewhere else.
    """
    if url is not None:
        return SqlStore(url)
    try:
        default_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the store directory {default_dir}: {exc.strerror or exc}; "
            "choose another with --store URL"
        ) from exc
    return SqlStore(URL.create("sqlite", database=str(default_dir / "accord.db")))
