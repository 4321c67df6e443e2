"""The records that cross the store's interface, and what the store accepts of them.

The dataclasses themselves live in :mod:`accord.records` so that the pure round
engine can build them without importing anything of the store (or SQLAlchemy); they
are re-exported here for the store's callers. :func:`check_round` is the one place
that decides whether a round can be stored, so that every :class:`RunStore`
implementation refuses the same records with the same message, before it writes
anything.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal, get_args

from accord.errors import StoreError
from accord.records import (
    MetricValue,
    OutcomeStatus,
    ParticipantOutcome,
    RoundRecord,
    RunInfo,
    RunStatus,
)

__all__ = [
    "MetricScope",
    "MetricValue",
    "OutcomeStatus",
    "ParticipantOutcome",
    "RoundRecord",
    "RoundStatus",
    "RunInfo",
    "RunStatus",
    "check_round",
]

RoundStatus = Literal["completed", "failed"]
#: ``central``: on the coordinator's data; ``federated``: pooled over the sites'
#: holdouts; ``site``: on one site's holdout; ``train``: from one site's training.
MetricScope = Literal["central", "federated", "site", "train"]


def _choice(where: str, field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise StoreError(
            f"{where}: {field} is {value!r}, expected one of {', '.join(allowed)}"
        )


def _aware(where: str, field: str, value: datetime) -> None:
    if value.utcoffset() is None:
        raise StoreError(
            f"{where}: {field} is a naive datetime; pass a timezone-aware one, "
            "e.g. datetime.now(timezone.utc)"
        )


def _check_outcome(where: str, outcome: ParticipantOutcome) -> None:
    who = f"{where}, outcome of {outcome.participant!r}"
    if not outcome.participant:
        raise StoreError(f"{where}: an outcome has an empty participant name")
    _choice(who, "status", outcome.status, get_args(OutcomeStatus))
    if outcome.num_examples < 0:
        raise StoreError(f"{who}: num_examples is {outcome.num_examples}, must be >= 0")
    if not (math.isfinite(outcome.duration_s) and outcome.duration_s >= 0):
        raise StoreError(f"{who}: duration_s is {outcome.duration_s}, must be >= 0")


def check_round(record: RoundRecord) -> None:
    """Raise :class:`StoreError` unless every field of ``record`` can be stored.

    Duplicate participants among the outcomes are *not* checked here: that is the
    store's own constraint, enforced inside its transaction.
    """
    where = f"round {record.number} of run {record.run_id}"
    if record.number < 0:
        raise StoreError(f"{where}: round numbers must be >= 0")
    _choice(where, "status", record.status, get_args(RoundStatus))
    _aware(where, "started_at", record.started_at)
    _aware(where, "finished_at", record.finished_at)
    for outcome in record.outcomes:
        _check_outcome(where, outcome)
    for metric in record.metrics:
        _choice(where, "metric scope", metric.scope, get_args(MetricScope))
        if not metric.name:
            raise StoreError(f"{where}: a metric has an empty name")
