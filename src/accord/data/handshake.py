"""The messages of the stages that fit a deployment's preprocessing (round 0).

``profile`` task: a :class:`PrepareRequest` (how to split the rows, the site's
position in the roster, the run's secure-aggregation mode); the site answers with
its :class:`~accord.data.profile.SiteProfile`. ``encoding`` task: the request
again and the fitted encoder (:func:`encoding_payload`, so that a site that
restarted in between needs nothing it no longer has); the site answers with
:func:`encoding_ack`, the digest of the encoder it applied. All JSON, parsed and
checked field by field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from accord.data.preprocess import Encoder
from accord.data.profile import encoder_digest, encoder_from_json, encoder_to_json
from accord.errors import DatasetError

__all__ = [
    "PrepareRequest",
    "encoding_ack",
    "encoding_payload",
    "parse_encoding",
    "parse_encoding_ack",
]

_MODES = ("off", "masking", "ckks")


@dataclass(frozen=True, slots=True)
class PrepareRequest:
    """How the coordinator asks a site to split its rows and profile them.

    ``secure_aggregation`` is the run's mode, so that a site whose policy
    demands it can refuse to send its statistics in the clear.
    """

    seed: int
    holdout_fraction: float
    index: int
    secure_aggregation: str = "off"

    def to_json(self) -> bytes:
        """Canonical JSON."""
        doc = {
            "seed": self.seed,
            "holdout_fraction": self.holdout_fraction,
            "index": self.index,
            "secure_aggregation": self.secure_aggregation,
        }
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> PrepareRequest:
        """Parse and check; :class:`DatasetError` says what is wrong."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise DatasetError("the preprocessing request is not valid JSON") from None
        if not isinstance(doc, dict) or set(doc) != {
            "seed",
            "holdout_fraction",
            "index",
            "secure_aggregation",
        }:
            raise DatasetError("the preprocessing request has other fields")
        seed, fraction, index = doc["seed"], doc["holdout_fraction"], doc["index"]
        mode = doc["secure_aggregation"]
        if not (_count(seed) and _count(index) and mode in _MODES):
            raise DatasetError("the preprocessing request's seed, index or mode is bad")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise DatasetError("the preprocessing request's holdout_fraction is bad")
        if not 0 <= fraction < 1:
            raise DatasetError(f"holdout_fraction {fraction} is not in [0, 1)")
        return cls(seed, float(fraction), index, mode)


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


def encoding_ack(encoder: Encoder, features: int) -> bytes:
    """A site's answer to ``encoding``: what it applied."""
    doc = {"digest": encoder_digest(encoder), "features": features}
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def parse_encoding_ack(payload: bytes) -> str:
    """The encoder digest a site says it applied."""
    doc = _object(payload, "encoding answer", {"digest", "features"})
    digest = doc["digest"]
    if not isinstance(digest, str) or len(digest) != 64:
        raise DatasetError("the encoding answer's digest is not a SHA-256 hex digest")
    return digest


def _object(payload: bytes | str, what: str, keys: set[str]) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise DatasetError(f"the {what} is not valid JSON") from None
    if not isinstance(doc, dict) or set(doc) != keys:
        raise DatasetError(f"the {what} must be an object with exactly {sorted(keys)}")
    return doc
