"""The tables behind :class:`~accord.store.sql.SqlStore`, and row <-> record mapping.

Portable by construction: only types every SQLAlchemy backend has (JSON lives in
``Text`` columns, encoded and decoded here), named constraints, no dialect-specific
SQL; the two column types of :mod:`accord.store.columns` smooth over what differs
(time zones, NaN).

Tables are prefixed ``accord_`` so they can share a PostgreSQL schema with others.
The tables are created and changed by the Alembic migrations in
:mod:`accord.store.migrations`, never by ``create_all``; a test checks that the
migrations produce exactly these models.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from accord.store.columns import NanFloat, UtcDateTime
from accord.store.protocol import dump_json
from accord.store.records import (
    LedgerRecord,
    MetricScope,
    MetricValue,
    OutcomeStatus,
    ParticipantOutcome,
    PrivacyLevel,
    PrivacySpent,
    ReceiptRecord,
    RoundRecord,
    RoundStatus,
    RunEvent,
    RunInfo,
    RunStatus,
    UpdateScore,
)

__all__ = [
    "Base",
    "EventRow",
    "LedgerRow",
    "MetaRow",
    "MetricRow",
    "OutcomeRow",
    "PrivacyRow",
    "ReceiptRow",
    "RoundRow",
    "RunRow",
    "ScoreRow",
    "event_from_row",
    "ledger_from_row",
    "ledger_to_row",
    "metric_from_row",
    "privacy_from_row",
    "receipt_from_row",
    "round_from_row",
    "round_to_row",
    "run_info_from_row",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of accord's tables (constraint names follow ``_NAMING``)."""

    metadata = MetaData(naming_convention=_NAMING)


class MetaRow(Base):
    """Key-value facts about the database itself.

    Its ``schema_version`` row is how accord releases from before the migrations
    recognised their tables (they accept only ``1``). Migration 0002 sets it to
    ``2`` so that such a release refuses a migrated database instead of writing to
    it; the Alembic revision is the authority now.
    """

    __tablename__ = "accord_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    """One run; ``config`` and ``summary`` are JSON text."""

    __tablename__ = "accord_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(BigInteger)
    rounds_planned: Mapped[int]
    config: Mapped[str] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'aborted')", name="status"
        ),
    )


class RoundRow(Base):
    """One round of one run; ``selected`` is a JSON list of participant names."""

    __tablename__ = "accord_rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(
        ForeignKey("accord_runs.id", ondelete="CASCADE")
    )
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    global_digest: Mapped[str] = mapped_column(String(128))
    selected: Mapped[str] = mapped_column(Text)
    checkpoint: Mapped[str | None] = mapped_column(Text)

    outcomes: Mapped[list[OutcomeRow]] = relationship(
        order_by="OutcomeRow.position", cascade="all, delete-orphan"
    )
    metrics: Mapped[list[MetricRow]] = relationship(
        order_by="MetricRow.position", cascade="all, delete-orphan"
    )
    privacy: Mapped[list[PrivacyRow]] = relationship(
        order_by="PrivacyRow.position", cascade="all, delete-orphan"
    )
    scores: Mapped[list[ScoreRow]] = relationship(
        order_by="ScoreRow.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        UniqueConstraint("run_id", "number"),
        CheckConstraint("status IN ('completed', 'failed')", name="status"),
    )


class OutcomeRow(Base):
    """What happened to one participant in one round; ``metrics`` is JSON text."""

    __tablename__ = "accord_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(
        ForeignKey("accord_rounds.id", ondelete="CASCADE")
    )
    position: Mapped[int]
    participant: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    num_examples: Mapped[int] = mapped_column(BigInteger)
    update_digest: Mapped[str | None] = mapped_column(String(128))
    duration_s: Mapped[float] = mapped_column(Double)
    metrics: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("round_id", "participant"),
        CheckConstraint(
            "status IN ('ok', 'failed', 'timeout', 'rejected', 'quarantined')",
            name="status",
        ),
        CheckConstraint("num_examples >= 0", name="num_examples"),
    )


class MetricRow(Base):
    """One metric value of one round; ``value`` NULL means NaN."""

    __tablename__ = "accord_metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(
        ForeignKey("accord_rounds.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    scope: Mapped[str] = mapped_column(String(16))
    participant: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[float] = mapped_column(NanFloat, nullable=True)

    __table_args__ = (
        CheckConstraint(
            "scope IN ('central', 'federated', 'site', 'train')", name="scope"
        ),
    )


class PrivacyRow(Base):
    """Differential privacy spent once a round is done (cumulative epsilon).

    ``participant`` NULL is the federation's account (participant level), a name
    is a site's (record level); ``details`` is JSON text of numbers.
    """

    __tablename__ = "accord_privacy"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(
        ForeignKey("accord_rounds.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    level: Mapped[str] = mapped_column(String(16))
    participant: Mapped[str | None] = mapped_column(String(255))
    epsilon: Mapped[float] = mapped_column(Double)
    delta: Mapped[float] = mapped_column(Double)
    accountant: Mapped[str] = mapped_column(String(16))
    noise_multiplier: Mapped[float] = mapped_column(Double)
    sampling_rate: Mapped[float] = mapped_column(Double)
    clip: Mapped[float | None] = mapped_column(Double)
    details: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("level IN ('participant', 'record')", name="level"),
        CheckConstraint("epsilon >= 0", name="epsilon"),
    )


class ScoreRow(Base):
    """Anomaly scores of one participant's update in one round (migration 0004).

    ``flags`` is a JSON list of the rules the update broke; NULL scores mean NaN.
    """

    __tablename__ = "accord_update_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(
        ForeignKey("accord_rounds.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    participant: Mapped[str] = mapped_column(String(255))
    norm: Mapped[float] = mapped_column(NanFloat, nullable=True)
    cosine: Mapped[float] = mapped_column(NanFloat, nullable=True)
    mean_distance: Mapped[float] = mapped_column(NanFloat, nullable=True)
    median_distance: Mapped[float] = mapped_column(NanFloat, nullable=True)
    nearest_ratio: Mapped[float] = mapped_column(NanFloat, nullable=True)
    norm_z: Mapped[float] = mapped_column(NanFloat, nullable=True)
    distance_z: Mapped[float] = mapped_column(NanFloat, nullable=True)
    flags: Mapped[str] = mapped_column(Text)
    excluded: Mapped[bool]

    __table_args__ = (UniqueConstraint("round_id", "participant"),)


class EventRow(Base):
    """Something that happened to a run outside its rounds (a refused message)."""

    __tablename__ = "accord_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(
        ForeignKey("accord_runs.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    round: Mapped[int | None]
    participant: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)


class LedgerRow(Base):
    """One signed entry of a run's ledger (a DSSE envelope as JSON text)."""

    __tablename__ = "accord_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accord_runs.id", ondelete="CASCADE")
    )
    sequence: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    round: Mapped[int | None]
    digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("run_id", "sequence"),
        CheckConstraint("sequence >= 0", name="sequence"),
    )


class ReceiptRow(Base):
    """A site's countersignature of a ledger entry, with its identity certificate."""

    __tablename__ = "accord_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accord_runs.id", ondelete="CASCADE")
    )
    sequence: Mapped[int]
    participant: Mapped[str] = mapped_column(String(255))
    envelope: Mapped[str] = mapped_column(Text)
    certificate: Mapped[str] = mapped_column(Text)  # base64 DER

    __table_args__ = (UniqueConstraint("run_id", "sequence", "participant"),)


def ledger_to_row(record: LedgerRecord) -> LedgerRow:
    """The row of one ledger entry."""
    return LedgerRow(
        run_id=record.run_id,
        sequence=record.sequence,
        kind=record.kind,
        round=record.round,
        digest=record.digest,
        envelope=record.envelope,
    )


def ledger_from_row(row: LedgerRow) -> LedgerRecord:
    """The record of one ledger row."""
    return LedgerRecord(
        row.run_id, row.sequence, row.kind, row.round, row.digest, row.envelope
    )


def receipt_from_row(row: ReceiptRow) -> ReceiptRecord:
    """The record of one receipt row."""
    return ReceiptRecord(
        run_id=row.run_id,
        sequence=row.sequence,
        participant=row.participant,
        envelope=row.envelope,
        certificate=base64.b64decode(row.certificate),
    )


def event_from_row(row: EventRow) -> RunEvent:
    """The record of one event row."""
    return RunEvent(
        run_id=row.run_id,
        at=row.at,
        round=row.round,
        participant=row.participant,
        kind=row.kind,
        detail=row.detail,
    )


def round_to_row(record: RoundRecord) -> RoundRow:
    """Build the round's row with its outcome and metric rows attached."""
    return RoundRow(
        run_id=record.run_id,
        number=record.number,
        started_at=record.started_at,
        finished_at=record.finished_at,
        status=record.status,
        global_digest=record.global_digest,
        selected=json.dumps(list(record.selected), ensure_ascii=False),
        checkpoint=record.checkpoint,
        outcomes=[
            OutcomeRow(
                position=i,
                participant=o.participant,
                status=o.status,
                reason=o.reason,
                num_examples=o.num_examples,
                update_digest=o.update_digest,
                duration_s=o.duration_s,
                metrics=dump_json(o.metrics, what="outcome metrics"),
            )
            for i, o in enumerate(record.outcomes)
        ],
        metrics=[
            MetricRow(
                position=i,
                scope=m.scope,
                participant=m.participant,
                name=m.name,
                value=m.value,
            )
            for i, m in enumerate(record.metrics)
        ],
        privacy=[
            PrivacyRow(
                position=i,
                level=p.level,
                participant=p.participant,
                epsilon=p.epsilon,
                delta=p.delta,
                accountant=p.accountant,
                noise_multiplier=p.noise_multiplier,
                sampling_rate=p.sampling_rate,
                clip=p.clip,
                details=dump_json(p.details, what="privacy details"),
            )
            for i, p in enumerate(record.privacy)
        ],
        scores=[
            ScoreRow(
                position=i,
                participant=sc.participant,
                norm=sc.norm,
                cosine=sc.cosine,
                mean_distance=sc.mean_distance,
                median_distance=sc.median_distance,
                nearest_ratio=sc.nearest_ratio,
                norm_z=sc.norm_z,
                distance_z=sc.distance_z,
                flags=json.dumps(list(sc.flags), ensure_ascii=False),
                excluded=sc.excluded,
            )
            for i, sc in enumerate(record.scores)
        ],
    )


def score_from_row(row: ScoreRow) -> UpdateScore:
    """The record of one score row."""
    return UpdateScore(
        participant=row.participant,
        norm=row.norm,
        cosine=row.cosine,
        mean_distance=row.mean_distance,
        median_distance=row.median_distance,
        nearest_ratio=row.nearest_ratio,
        norm_z=row.norm_z,
        distance_z=row.distance_z,
        flags=tuple(json.loads(row.flags)),
        excluded=row.excluded,
    )


def metric_from_row(row: MetricRow) -> MetricValue:
    """The record of one metric row."""
    return MetricValue(
        scope=cast(MetricScope, row.scope),
        participant=row.participant,
        name=row.name,
        value=row.value,
    )


def round_from_row(row: RoundRow) -> RoundRecord:
    """The record of a round row whose outcomes and metrics are loaded."""
    return RoundRecord(
        run_id=row.run_id,
        number=row.number,
        started_at=row.started_at,
        finished_at=row.finished_at,
        status=cast(RoundStatus, row.status),
        global_digest=row.global_digest,
        selected=tuple(json.loads(row.selected)),
        outcomes=tuple(
            ParticipantOutcome(
                participant=o.participant,
                status=cast(OutcomeStatus, o.status),
                reason=o.reason,
                num_examples=o.num_examples,
                update_digest=o.update_digest,
                duration_s=o.duration_s,
                metrics=json.loads(o.metrics),
            )
            for o in row.outcomes
        ),
        metrics=tuple(metric_from_row(m) for m in row.metrics),
        checkpoint=row.checkpoint,
        scores=tuple(score_from_row(sc) for sc in row.scores),
        privacy=tuple(privacy_from_row(p) for p in row.privacy),
    )


def privacy_from_row(row: PrivacyRow) -> PrivacySpent:
    """The record of one privacy row."""
    return PrivacySpent(
        level=cast(PrivacyLevel, row.level),
        participant=row.participant,
        epsilon=row.epsilon,
        delta=row.delta,
        accountant=row.accountant,
        noise_multiplier=row.noise_multiplier,
        sampling_rate=row.sampling_rate,
        clip=row.clip,
        details=json.loads(row.details),
    )


def run_info_from_row(row: RunRow, *, rounds_completed: int) -> RunInfo:
    """The record of a run row; ``rounds_completed`` is counted by the caller."""
    summary: dict[str, Any] | None = (
        None if row.summary is None else json.loads(row.summary)
    )
    return RunInfo(
        run_id=row.id,
        name=row.name,
        created_at=row.created_at,
        finished_at=row.finished_at,
        status=cast(RunStatus, row.status),
        seed=row.seed,
        rounds_planned=row.rounds_planned,
        rounds_completed=rounds_completed,
        config=json.loads(row.config),
        summary=summary,
    )
