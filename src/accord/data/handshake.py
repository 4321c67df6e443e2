"""The messages of the stages that fit a deployment's preprocessing (round 0).

``profile`` task: a :class:`PrepareRequest` (how to split the rows, the site's
position in the roster, the run's secure-aggregation mode, the levels declared in
``fed.toml``); the site answers with its :class:`~accord.data.profile.SiteProfile`,
or under secure aggregation with its :class:`~accord.data.profile.SiteColumns`.
``statistics`` task (secure aggregation only): a :class:`StatisticsRequest`; the
site answers with the first message of a secure sum of its statistics.
``encoding`` task: the request
again and the fitted encoder (:func:`encoding_payload`, so that a site that
restarted in between needs nothing it no longer has); the site answers with
:func:`encoding_ack`, the digest of the encoder it applied and, when the request
names a ``summary`` guard, its guarded data profile on the fitted scale
(:mod:`accord.data.summary`). All JSON, parsed and checked field by field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.data.preprocess import Encoder
from accord.data.profile import (
    MAX_COLUMNS,
    MAX_LEVELS,
    encoder_digest,
    encoder_from_json,
    encoder_to_json,
)
from accord.data.summary import (
    MAX_SUMMARY_BYTES,
    Guard,
    SiteSummary,
    guard_from_dict,
    summary_from_json,
    summary_to_json,
)
from accord.errors import DatasetError

__all__ = [
    "FairnessAsk",
    "FairnessSumRequest",
    "PrepareRequest",
    "StatisticsRequest",
    "encoding_ack",
    "encoding_payload",
    "parse_encoding",
    "parse_encoding_ack",
    "parse_encoding_summary",
]

_MODES = ("off", "masking", "ckks")
_REQUIRED = {"seed", "holdout_fraction", "index", "secure_aggregation"}
#: ``declared``, ``summary`` and ``fairness`` may be absent (a coordinator from
#: before them).
_FIELDS = _REQUIRED | {"declared", "summary", "fairness"}
#: Longest sensitive column name (or group name) a request may carry.
_MAX_NAME = 200
#: Most declared groups a fairness sum lays out (as many as a site reports).
_MAX_GROUPS = 48
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class PrepareRequest:
    """How the coordinator asks a site to split its rows and profile them.

    ``secure_aggregation`` is the run's mode, so that a site whose policy
    demands it can refuse to send its statistics in the clear. ``summary`` is the
    guard of the data profile the site adds to its ``encoding`` answer (None:
    none is asked for). ``fairness`` names the sensitive column and decision
    threshold at which the site counts its decisions per group (None: none are
    asked for): in a plain run it adds the counts to each evaluation report;
    under secure aggregation it sends nothing in the clear and answers each
    round's ``fairness`` task (:class:`FairnessSumRequest`) with the counts
    masked instead.
    """

    seed: int
    holdout_fraction: float
    index: int
    secure_aggregation: str = "off"
    declared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    summary: Guard | None = None
    fairness: FairnessAsk | None = None

    @property
    def secure(self) -> bool:
        """Whether the run's statistics are summed securely (any mode but off)."""
        return self.secure_aggregation != "off"

    def to_json(self) -> bytes:
        """Canonical JSON."""
        doc = {
            "seed": self.seed,
            "holdout_fraction": self.holdout_fraction,
            "index": self.index,
            "secure_aggregation": self.secure_aggregation,
            "declared": {k: list(v) for k, v in self.declared.items()},
        }
        if self.summary is not None:
            doc["summary"] = self.summary.to_dict()
        if self.fairness is not None:
            doc["fairness"] = {
                "column": self.fairness.column,
                "threshold": self.fairness.threshold,
            }
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> PrepareRequest:
        """Parse and check; :class:`DatasetError` says what is wrong."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise DatasetError("the preprocessing request is not valid JSON") from None
        if not isinstance(doc, dict) or not _REQUIRED <= set(doc) <= _FIELDS:
            raise DatasetError("the preprocessing request has other fields")
        seed, fraction, index = doc["seed"], doc["holdout_fraction"], doc["index"]
        mode = doc["secure_aggregation"]
        if not (_count(seed) and _count(index) and mode in _MODES):
            raise DatasetError("the preprocessing request's seed, index or mode is bad")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise DatasetError("the preprocessing request's holdout_fraction is bad")
        if not 0 <= fraction < 1:
            raise DatasetError(f"holdout_fraction {fraction} is not in [0, 1)")
        declared = _declared(doc.get("declared", {}))
        summary = _guard(doc.get("summary"))
        fairness = _fairness(doc.get("fairness"))
        return cls(seed, float(fraction), index, mode, declared, summary, fairness)


@dataclass(frozen=True, slots=True)
class FairnessAsk:
    """The sensitive column and decision threshold of the counts a site reports."""

    column: str
    threshold: float


def _fairness(value: Any) -> FairnessAsk | None:
    """What fairness counts a request asks for (None: none)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"column", "threshold"}:
        raise DatasetError("the preprocessing request's fairness is bad")
    column, threshold = value["column"], value["threshold"]
    if not isinstance(column, str) or not 0 < len(column) <= _MAX_NAME:
        raise DatasetError("the preprocessing request's sensitive column is bad")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise DatasetError("the preprocessing request's decision threshold is bad")
    if not 0 < threshold < 1:
        raise DatasetError(f"decision threshold {threshold} is not in (0, 1)")
    return FairnessAsk(column, float(threshold))


def _guard(value: Any) -> Guard | None:
    """The guard a request asks a data profile under (None: no profile)."""
    if value is None:
        return None
    return guard_from_dict(value)


def _declared(value: Any) -> dict[str, tuple[str, ...]]:
    """The declared levels of a request: column to level names, all text."""
    if not isinstance(value, dict) or len(value) > MAX_COLUMNS:
        raise DatasetError("the preprocessing request's declared levels are bad")
    out: dict[str, tuple[str, ...]] = {}
    for column, levels in value.items():
        if (
            not isinstance(levels, list)
            or len(levels) > MAX_LEVELS
            or not all(isinstance(v, str) for v in levels)
        ):
            raise DatasetError(f"the declared levels of {column[:40]!r} are bad")
        out[column] = tuple(levels)
    return out


@dataclass(frozen=True, slots=True)
class StatisticsRequest:
    """The ``statistics`` task: sum the site's statistics under secure aggregation.

    ``columns`` are the federation's numeric columns in its order (the layout of
    :func:`~accord.data.sums.statistics_vector`); ``secure_json`` is the secure
    sum's :class:`~accord.secagg.session.SecureJob` as JSON, opaque here (the site
    parses and checks it, and the coordinator's transport bounds the stages by it).
    """

    request: PrepareRequest
    columns: tuple[str, ...]
    secure_json: str

    def to_json(self) -> bytes:
        """Canonical JSON."""
        doc = {
            "request": json.loads(self.request.to_json()),
            "columns": list(self.columns),
            "secure": self.secure_json,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, payload: bytes) -> StatisticsRequest:
        """Parse and check; :class:`DatasetError` says what is wrong."""
        doc = _object(payload, "statistics message", {"request", "columns", "secure"})
        request = PrepareRequest.from_json(json.dumps(doc["request"]))
        columns, secure = doc["columns"], doc["secure"]
        if (
            not isinstance(columns, list)
            or len(columns) > MAX_COLUMNS
            or not all(isinstance(c, str) for c in columns)
            or len(set(columns)) != len(columns)
            or not isinstance(secure, str)
        ):
            raise DatasetError("the statistics message's columns or job are bad")
        return cls(request, tuple(columns), secure)


@dataclass(frozen=True, slots=True)
class FairnessSumRequest:
    """The ``fairness`` task: sum the site's per-group counts of one model securely.

    Sent after a round's evaluation in a deployment under secure aggregation
    (:mod:`accord.coordinator.group_sum`). ``model_digest`` names the global model
    whose decisions the site counts (the one it just evaluated); ``groups`` are
    the federation's declared groups of the sensitive column, the layout of
    :func:`~accord.evaluation.group_sums.counts_vector`; ``secure_json`` is the
    sum's :class:`~accord.secagg.session.SecureJob` as JSON, opaque here.
    """

    model_digest: str
    groups: tuple[str, ...]
    secure_json: str

    def to_json(self) -> bytes:
        """Canonical JSON."""
        doc = {
            "model": self.model_digest,
            "groups": list(self.groups),
            "secure": self.secure_json,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, payload: bytes) -> FairnessSumRequest:
        """Parse and check; :class:`DatasetError` says what is wrong."""
        doc = _object(payload, "fairness message", {"model", "groups", "secure"})
        model, groups, secure = doc["model"], doc["groups"], doc["secure"]
        if not isinstance(model, str) or not _DIGEST.fullmatch(model):
            raise DatasetError("the fairness message's model digest is bad")
        if (
            not isinstance(groups, list)
            or not 0 < len(groups) <= _MAX_GROUPS
            or not all(isinstance(g, str) and 0 < len(g) <= _MAX_NAME for g in groups)
            or len(set(groups)) != len(groups)
        ):
            raise DatasetError(
                f"the fairness message's groups are bad (1 to {_MAX_GROUPS} "
                f"distinct names of at most {_MAX_NAME} characters)"
            )
        if not isinstance(secure, str):
            raise DatasetError("the fairness message's job is bad")
        return cls(model, tuple(groups), secure)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encoding_payload(request: PrepareRequest, encoder: Encoder) -> bytes:
    """The ``encoding`` task's message: the split request and the encoder."""
    doc = {
        "request": json.loads(request.to_json()),
        "encoder": json.loads(encoder_to_json(encoder)),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_encoding(payload: bytes) -> tuple[PrepareRequest, Encoder]:
    """The request and encoder of an ``encoding`` message, checked."""
    doc = _object(payload, "encoding message", {"request", "encoder"})
    request = PrepareRequest.from_json(json.dumps(doc["request"]))
    encoder = encoder_from_json(json.dumps(doc["encoder"]).encode("utf-8"))
    return request, encoder


def encoding_ack(
    encoder: Encoder, features: int, summary: SiteSummary | None = None
) -> bytes:
    """A site's answer to ``encoding``: what it applied, and its data profile."""
    doc: dict[str, Any] = {"digest": encoder_digest(encoder), "features": features}
    if summary is not None:
        doc["summary"] = json.loads(summary_to_json(summary))
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def parse_encoding_ack(payload: bytes) -> str:
    """The encoder digest a site says it applied."""
    doc = _ack(payload)
    digest = doc["digest"]
    if not isinstance(digest, str) or len(digest) != 64:
        raise DatasetError("the encoding answer's digest is not a SHA-256 hex digest")
    return digest


def parse_encoding_summary(payload: bytes) -> SiteSummary | None:
    """The data profile of a site's ``encoding`` answer (None: it sent none)."""
    doc = _ack(payload)
    if "summary" not in doc:
        return None
    return summary_from_json(json.dumps(doc["summary"]).encode("utf-8"))


def _ack(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_SUMMARY_BYTES + 4096:
        raise DatasetError("the encoding answer is larger than any profile")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise DatasetError("the encoding answer is not valid JSON") from None
    keys = {"digest", "features"}
    if not isinstance(doc, dict) or not keys <= set(doc) <= keys | {"summary"}:
        raise DatasetError(
            "the encoding answer must be an object with digest, features and, "
            "if asked for, summary"
        )
    return doc


def _object(payload: bytes | str, what: str, keys: set[str]) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise DatasetError(f"the {what} is not valid JSON") from None
    if not isinstance(doc, dict) or set(doc) != keys:
        raise DatasetError(f"the {what} must be an object with exactly {sorted(keys)}")
    return doc
