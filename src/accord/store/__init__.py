"""Persistence of runs: rounds, events and metrics in a database, models on disk.

:class:`RunStore` is the interface the round engine, CLI and dashboard use;
:class:`SqlStore` implements it on SQLite (default, see :func:`open_store`) or any
SQLAlchemy URL, with its tables kept up to date by Alembic migrations
(:mod:`accord.store.migrate`); :class:`MemoryStore` implements it in memory. Each
leases a run to one process at a time, the one serving it (:mod:`accord.store.lease`).
:class:`CheckpointStore` keeps each round's global model as a verified safetensors
file. Importing this package imports SQLAlchemy and Alembic; the pure round engine
imports only :mod:`accord.records`.
"""

from accord.store.checkpoint import Checkpoint, CheckpointStore
from accord.store.export import export_metrics
from accord.store.memory import MemoryStore
from accord.store.protocol import FinalStatus, RunStore
from accord.store.records import (
    LedgerRecord,
    MetricScope,
    MetricValue,
    OutcomeStatus,
    ParticipantOutcome,
    PrivacySpent,
    ReceiptRecord,
    RoundRecord,
    RoundStatus,
    RunEvent,
    RunInfo,
    RunStatus,
)
from accord.store.sql import SqlStore, open_store

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "FinalStatus",
    "LedgerRecord",
    "MemoryStore",
    "MetricScope",
    "MetricValue",
    "PrivacySpent",
    "OutcomeStatus",
    "ParticipantOutcome",
    "ReceiptRecord",
    "RoundRecord",
    "RoundStatus",
    "RunEvent",
    "RunInfo",
    "RunStatus",
    "RunStore",
    "SqlStore",
    "export_metrics",
    "open_store",
]
