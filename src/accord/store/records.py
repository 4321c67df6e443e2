"""The records that cross the store's interface, and what the store accepts of them.

The dataclasses themselves live in :mod:`accord.records` so that the pure round
engine can build them without importing anything of the store (or SQLAlchemy); they
are re-exported here for the store's callers. :func:`check_round` is the one place
that decides whether a round can be stored, so that every :class:`RunStore`
implementation refuses the same records with the same message, before it writes
anything; :func:`clean_event` does the same for events.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Literal, get_args

from accord.errors import StoreError
from accord.records import (
    LedgerRecord,
    MetricValue,
    NewEvent,
    OutcomeStatus,
    ParticipantOutcome,
    PrivacyLevel,
    PrivacySpent,
    ReceiptRecord,
    RoundRecord,
    RunEvent,
    RunInfo,
    RunStatus,
    UpdateScore,
    metric_name_problem,
)

__all__ = [
    "LedgerRecord",
    "MetricScope",
    "MetricValue",
    "NewEvent",
    "OutcomeStatus",
    "ParticipantOutcome",
    "PrivacyLevel",
    "PrivacySpent",
    "ReceiptRecord",
    "RoundRecord",
    "RoundStatus",
    "RunEvent",
    "RunInfo",
    "RunStatus",
    "UpdateScore",
    "check_ledger",
    "check_receipt",
    "check_round",
    "clean_event",
    "next_in_chain",
]

RoundStatus = Literal["completed", "failed"]
#: ``central``: on the coordinator's data; ``federated``: pooled over the sites'
#: holdouts; ``site``: on one site's holdout; ``train``: from one site's training.
MetricScope = Literal["central", "federated", "site", "train"]

#: Longest ``detail`` and ``participant`` of an event that are kept; longer ones are
#: cut (they often quote what a peer sent, which can be anything).
MAX_EVENT_DETAIL = 2000
MAX_EVENT_PARTICIPANT = 255
_LEDGER_KINDS = (
    "run-opened",
    "run-resumed",
    "data-contract",
    "round",
    "run-closed",
    "release",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EVENT_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")


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


def _check_privacy(where: str, spent: PrivacySpent) -> None:
    who = f"{where}, privacy of {spent.participant or 'the federation'}"
    _choice(who, "level", spent.level, get_args(PrivacyLevel))
    numbers = {
        "epsilon": spent.epsilon,
        "noise_multiplier": spent.noise_multiplier,
        "sampling_rate": spent.sampling_rate,
        **{f"details.{k}": v for k, v in spent.details.items()},
    }
    if spent.clip is not None:
        numbers["clip"] = spent.clip
    for name, value in numbers.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise StoreError(
                f"{who}: {name} is {value!r}, must be a finite number >= 0"
            )
    if not 0 < spent.delta < 1:
        raise StoreError(f"{who}: delta is {spent.delta!r}, must be in (0, 1)")


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
        problem = metric_name_problem(metric.name)
        if problem is not None:
            raise StoreError(f"{where}: {problem}")
    for spent in record.privacy:
        _check_privacy(where, spent)
    scored = [sc.participant for sc in record.scores]
    if len(set(scored)) != len(scored) or not all(scored):
        raise StoreError(
            f"{where}: scores need one distinct, non-empty participant each"
        )


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit``, without what PostgreSQL refuses in text columns.

    NUL becomes U+FFFD; lone surrogates (from bytes decoded with surrogateescape)
    become backslash escapes, since they cannot be encoded as UTF-8.
    """
    text = text.replace("\x00", "\ufffd")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def clean_event(
    *, round_number: int | None, participant: str | None, kind: str, detail: str
) -> tuple[str | None, str]:
    """Check an event's fields; return its ``participant`` and ``detail`` as stored.

    ``kind`` and ``round_number`` come from accord's own code, so a bad one is a bug
    and raises :class:`StoreError`. ``participant`` and ``detail`` may quote a peer's
    message: they are made storable (no NUL, cut to a bounded length) rather than
    refused, so that recording a refusal cannot itself fail on hostile input.
    """
    if not _EVENT_KIND.match(kind):
        raise StoreError(
            f"event kind {kind!r} is not a short identifier; use lower-case letters, "
            "digits, '_', '.' and '-' (at most 32), e.g. 'duplicate'"
        )
    if round_number is not None and round_number < 0:
        raise StoreError(f"event round is {round_number}; pass >= 0, or None")
    who = None if participant is None else _fit(participant, MAX_EVENT_PARTICIPANT)
    return who, _fit(detail, MAX_EVENT_DETAIL)


def check_ledger(entry: LedgerRecord, *, run_id: str, round_number: int | None) -> None:
    """Raise :class:`StoreError` unless ``entry`` can be stored with what it describes.

    ``round_number`` is the round stored with it (None: an entry of no round).
    Whether its sequence follows the run's last entry is the store's check, inside
    its transaction.
    """
    where = f"ledger entry {entry.sequence} of run {entry.run_id}"
    if entry.run_id != run_id:
        raise StoreError(f"{where} was given with run {run_id}; it belongs to its own")
    if entry.sequence < 0:
        raise StoreError(f"{where}: sequence numbers must be >= 0")
    _choice(where, "kind", entry.kind, _LEDGER_KINDS)
    if (entry.kind == "round") != (round_number is not None) or (
        entry.round != round_number
    ):
        raise StoreError(
            f"{where} ({entry.kind}, round {entry.round}) does not describe what it "
            f"is stored with (round {round_number}); a round's entry goes with it"
        )
    if not _HEX64.match(entry.digest) or not entry.envelope:
        raise StoreError(f"{where} has no digest or no envelope")


def check_receipt(receipt: ReceiptRecord) -> None:
    """Raise :class:`StoreError` unless ``receipt`` can be stored."""
    where = f"receipt of {receipt.participant!r} for entry {receipt.sequence}"
    if receipt.sequence < 0 or not receipt.participant:
        raise StoreError(f"{where} of run {receipt.run_id}: no entry or participant")
    if len(receipt.participant) > MAX_EVENT_PARTICIPANT:
        raise StoreError(f"{where}: the participant's name is too long")
    if not receipt.envelope or not receipt.certificate:
        raise StoreError(f"{where}: no envelope or no certificate")


def next_in_chain(entry: LedgerRecord, last: int | None) -> None:
    """Raise :class:`StoreError` unless ``entry`` follows the run's entry ``last``."""
    expected = 0 if last is None else last + 1
    if entry.sequence != expected:
        raise StoreError(
            f"ledger entry {entry.sequence} of run {entry.run_id} does not follow "
            f"the run's last entry (the next is {expected}); another process may "
            "be writing this run's ledger: nothing was stored"
        )
