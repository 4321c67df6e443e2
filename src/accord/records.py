"""What a run leaves behind: per-participant outcomes, metrics and round records.

Plain frozen dataclasses shared by the round engine (which produces them) and the store
(which persists them); neither side needs the other's dependencies to use them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "MAX_METRIC_NAME",
    "LedgerRecord",
    "MetricValue",
    "NewEvent",
    "OutcomeStatus",
    "ParticipantOutcome",
    "PrivacyLevel",
    "PrivacySpent",
    "ReceiptRecord",
    "RoundRecord",
    "RunEvent",
    "RunInfo",
    "RunStatus",
    "UpdateScore",
    "metric_name_problem",
    "plain_text",
]

#: ``quarantined``: a valid update from a site the robustness policy excluded
#: from aggregation for the rest of the run (scored, recorded, never folded).
OutcomeStatus = Literal["ok", "failed", "timeout", "rejected", "quarantined"]
RunStatus = Literal["running", "completed", "failed", "aborted"]
PrivacyLevel = Literal["participant", "record"]

#: The most characters a metric's name may have (the store's column holds 255).
MAX_METRIC_NAME = 200


def plain_text(text: str) -> str:
    """``text`` with control and format characters replaced by U+FFFD.

    For free text another party wrote (a site's failure reason): escape
    sequences would otherwise reach an operator's terminal (a hidden hyperlink,
    a cleared screen) and NUL a PostgreSQL text column. Tabs and newlines stay.
    """
    if text.isprintable():
        return text
    return "".join(
        c
        if c in "\t\n" or unicodedata.category(c) not in ("Cc", "Cf", "Cs")
        else "\ufffd"
        for c in text
    )


def metric_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a stored metric, or None if it can.

    A site names the metrics it reports, and every name ends up in a round's
    record: an empty one, an overlong one, or one with control characters (NUL,
    which PostgreSQL's text refuses) or unpaired surrogates (not encodable) would
    make recording the round fail, so such names are refused where they arrive.
    """
    if not name:
        return "a metric has an empty name"
    if len(name) > MAX_METRIC_NAME:
        return f"a metric name is longer than {MAX_METRIC_NAME} characters"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return (
            f"metric name {name[:60]!r} contains control characters or unpaired "
            "surrogates"
        )
    return None


@dataclass(frozen=True, slots=True)
class ParticipantOutcome:
    """How one selected participant's round ended, and why if it did not succeed."""

    participant: str
    status: OutcomeStatus
    reason: str | None
    num_examples: int
    update_digest: str | None
    duration_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One measured value; ``scope`` is central, federated, site or train."""

    scope: str
    participant: str | None
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class PrivacySpent:
    """The differential privacy a run has spent once a round is done.

    ``epsilon`` is cumulative (every round so far, this one included) at
    ``delta``, as ``accountant`` (``pld`` or ``rdp``) computes it. ``participant``
    is None for the federation's (participant-level) account, a site's name for
    its records (record level). ``noise_multiplier``, ``sampling_rate`` and
    ``clip`` are this round's mechanism; ``details`` holds what a mechanism adds
    (adaptive clipping's next clip, DP-SGD's steps), all numbers.
    """

    level: PrivacyLevel
    participant: str | None
    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    sampling_rate: float
    clip: float | None
    details: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpdateScore:
    """Anomaly scores of one participant's update in one plain round.

    ``norm``: L2 norm of the update; ``cosine``: cosine similarity to the round's
    aggregate; ``mean_distance``: mean L2 distance to the other updates;
    ``median_distance``: L2 distance to the coordinate-wise median;
    ``nearest_ratio``: distance to the nearest other update over the round's median
    of those (near 0: a copy of another site's update). ``norm_z`` and
    ``distance_z`` are robust z-scores (median and MAD across the round) of the norm
    and of the distance to the median. ``flags`` names the rules it broke (empty:
    not flagged); ``excluded``: the update was not aggregated (quarantined).
    """

    participant: str
    norm: float
    cosine: float
    mean_distance: float
    median_distance: float
    nearest_ratio: float
    norm_z: float
    distance_z: float
    flags: tuple[str, ...] = ()
    excluded: bool = False

    @property
    def flagged(self) -> bool:
        """True when the update broke some flag rule."""
        return bool(self.flags)


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """Everything about one finished round, written to the store in one transaction."""

    run_id: str
    number: int
    started_at: datetime
    finished_at: datetime
    status: Literal["completed", "failed"]
    global_digest: str
    selected: tuple[str, ...]
    outcomes: tuple[ParticipantOutcome, ...]
    metrics: tuple[MetricValue, ...]
    checkpoint: str | None
    privacy: tuple[PrivacySpent, ...] = ()
    #: Per-participant anomaly scores (plain rounds with [robustness] scoring on).
    scores: tuple[UpdateScore, ...] = ()


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as listed by ``accord runs``."""

    run_id: str
    name: str
    created_at: datetime
    finished_at: datetime | None
    status: RunStatus
    seed: int
    rounds_planned: int
    rounds_completed: int
    config: Mapping[str, Any]
    summary: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to record: a :class:`RunEvent` before the store dates it.

    :meth:`~accord.store.RunStore.record_events` takes a batch of them.
    """

    round: int | None
    participant: str | None
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something that happened to a run outside any round's outcomes.

    Chiefly a message refused before it reached a round (a replay, a duplicate, an
    unauthenticated or malformed submission): it changes nothing else, but operators
    and auditors must be able to see that it was tried. ``kind`` is a short
    identifier (``duplicate``, ``stale``, ``unauthenticated``, ...), ``detail`` a
    readable reason; ``round`` and ``participant`` are None when unknown.
    """

    run_id: str
    at: datetime
    round: int | None
    participant: str | None
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One signed entry of a run's ledger, as the store keeps it.

    ``envelope`` is the DSSE envelope's JSON (:mod:`accord.ledger.dsse`) and
    ``digest`` its SHA-256, which the next entry names; ``sequence`` is its place
    in the run's chain (0 first), ``kind`` its type (``run-opened``, ``round``, ...)
    and ``round`` the round it describes, if any.
    """

    run_id: str
    sequence: int
    kind: str
    round: int | None
    digest: str
    envelope: str


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A site's receipt for the ledger entry ``sequence`` of a run.

    ``envelope`` is the DSSE envelope's JSON (:mod:`accord.ledger.receipt`);
    ``certificate`` the DER identity certificate whose key signed it.
    """

    run_id: str
    sequence: int
    participant: str
    envelope: str
    certificate: bytes
