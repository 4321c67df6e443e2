"""The data contract a federation agrees on before round 1, and the federated profile.

The contract is what every site's table was checked against and what the model
will be trained on: the schema (numeric columns, categorical columns with the
federation's levels, classes), the digest of the fitted preprocessing
(:func:`~accord.data.profile.encoder_digest`), the SHA-256 of each site's
guarded profile (:mod:`accord.data.summary`) as it was sent, the guard those
profiles were made under, and the drift flags the coordinator raised
(:mod:`accord.data.drift`). Its canonical JSON's SHA-256 (:attr:`DataContract.digest`)
is the subject of the ledger's ``data-contract`` entry; the profiles themselves
are stored with the run (:mod:`accord.coordinator.contract`).

:func:`profile_table` lays the profiles out for people: per site, its rows and
label shares, and per column its missing share, mean, std and quartiles (read
back from the sketch) or its level shares, with suppressed values shown as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from accord.data.drift import DriftThresholds, Flag, drift_flags
from accord.data.histogram import estimate, quantiles
from accord.data.preprocess import Encoder
from accord.data.profile import encoder_digest
from accord.data.summary import Guard, SiteSummary, summary_to_json

__all__ = ["DataContract", "agree", "profile_document"]

#: The quantiles a profile table shows.
QUANTILES = (0.25, 0.5, 0.75)


@dataclass(frozen=True, slots=True)
class DataContract:
    """The agreed contract (see the module docstring) and the profiles behind it."""

    encoder: Encoder
    classes: tuple[str, ...]
    summaries: tuple[tuple[str, SiteSummary], ...]
    flags: tuple[Flag, ...]
    guard: Guard | None
    thresholds: DriftThresholds

    def to_dict(self) -> dict[str, Any]:
        """The contract as the ledger records it (JSON-able)."""
        return {
            "schema": {
                "numeric": list(self.encoder.numeric_names),
                "categorical": {c: list(v) for c, v in self.encoder.levels},
                "classes": list(self.classes),
            },
            "preprocessing": encoder_digest(self.encoder),
            "profiles": {
                site: hashlib.sha256(summary_to_json(s)).hexdigest()
                for site, s in self.summaries
            },
            "guard": None if self.guard is None else self.guard.to_dict(),
            "flags": [f.to_dict() for f in self.flags],
        }

    @property
    def digest(self) -> str:
        """SHA-256 of :meth:`to_dict` as canonical JSON (the ledger's subject)."""
        text = json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def agree(
    encoder: Encoder,
    classes: Sequence[str],
    summaries: Sequence[tuple[str, SiteSummary]],
    *,
    guard: Guard | None,
    thresholds: DriftThresholds,
) -> DataContract:
    """The contract of ``summaries`` (may be empty: profiles not collected)."""
    flags = drift_flags(summaries, thresholds)
    return DataContract(
        encoder=encoder,
        classes=tuple(classes),
        summaries=tuple(summaries),
        flags=tuple(flags),
        guard=guard,
        thresholds=thresholds,
    )


def profile_document(contract: DataContract) -> dict[str, Any]:
    """The federated profile for people and ``--json``: per site, per column."""
    enc = contract.encoder
    sites: dict[str, Any] = {}
    for site, s in contract.summaries:
        k = s.guard.min_count
        numeric: dict[str, Any] = {}
        for j, name in enumerate(enc.numeric_names):
            col = s.numeric[name]
            counts = (
                estimate(col.bins, None, k)
                if any(b is not None for b in col.bins)
                else np.zeros(len(col.bins))
            )
            qs = quantiles(counts, QUANTILES)
            numeric[name] = {
                "missing": col.missing,
                "mean": col.mean,
                "std": col.std,
                "quartiles": [
                    None if q is None else float(enc.mean[j] + q * enc.scale[j])
                    for q in qs
                ],
                "bins": list(col.bins),
            }
        sites[site] = {
            "rows": s.rows,
            "labels": dict(s.labels),
            "numeric": numeric,
            "categorical": {c: dict(v) for c, v in s.categorical.items()},
        }
    return {
        "contract": contract.digest,
        "preprocessing": encoder_digest(enc),
        "guard": None if contract.guard is None else contract.guard.to_dict(),
        "thresholds": {
            name: getattr(contract.thresholds, name)
            for name in contract.thresholds.__dataclass_fields__
        },
        "sites": sites,
        "flags": [f.to_dict() for f in contract.flags],
    }
