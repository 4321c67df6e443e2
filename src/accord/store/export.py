"""A run's metrics as CSV or JSON text, for ``accord runs export``.

CSV is one row per metric value (``round, scope, participant, name, value``), ready
for a spreadsheet or ``pandas.read_csv``; a simulation's baselines follow as rows of
scope ``pooled`` and ``alone`` (participant: the site) at the run's last round, beside
that round's ``central`` metrics of the federated model. NaN and infinities are
written as ``nan`` and ``inf``, which Python and pandas parse back. JSON holds the
run (its summary with the baselines), its rounds, their outcomes and metrics; it is
strict JSON (other tools reject ``NaN``), so non-finite numbers become ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime
from typing import Any, Literal

from accord.errors import StoreError
from accord.store.protocol import RunStore
from accord.store.records import RoundRecord, RunInfo

__all__ = ["EXPORT_FORMAT", "export_metrics"]

#: Identifies the layout of the JSON export, for readers of older exports.
EXPORT_FORMAT = "accord-run-export/1"

CSV_COLUMNS = ("round", "scope", "participant", "name", "value")


def export_metrics(store: RunStore, run_id: str, fmt: Literal["csv", "json"]) -> str:
    """Render run ``run_id`` of ``store`` as ``fmt``; :class:`RunNotFound` if absent."""
    if fmt == "csv":
        return _csv(store, run_id)
    if fmt == "json":
        return _json(store, run_id)
    raise StoreError(f"cannot export as {fmt!r}; choose csv or json")


def _csv(store: RunStore, run_id: str) -> str:
    info = store.get_run(run_id)  # RunNotFound rather than an empty table
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    last = 0
    for number, m in store.metrics(run_id):
        writer.writerow([number, m.scope, m.participant or "", m.name, repr(m.value)])
        last = max(last, number)
    comparison = (info.summary or {}).get("comparison")
    if comparison:
        baselines = [("pooled", "", comparison["pooled"])]
        baselines += [("alone", s, m) for s, m in comparison["sites"].items()]
        for scope, site, scores in baselines:
            for name, value in scores.items():
                score = math.nan if value is None else float(value)
                writer.writerow([last, scope, site, name, repr(score)])
    return out.getvalue()


def _json(store: RunStore, run_id: str) -> str:
    document = {
        "format": EXPORT_FORMAT,
        "run": _run(store.get_run(run_id)),
        "rounds": [_round(r) for r in store.rounds(run_id)],
    }
    return json.dumps(_strict(document), indent=2, allow_nan=False, ensure_ascii=False)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _run(info: RunInfo) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "name": info.name,
        "created_at": _time(info.created_at),
        "finished_at": _time(info.finished_at),
        "status": info.status,
        "seed": info.seed,
        "rounds_planned": info.rounds_planned,
        "rounds_completed": info.rounds_completed,
        "config": dict(info.config),
        "summary": None if info.summary is None else dict(info.summary),
    }


def _round(record: RoundRecord) -> dict[str, Any]:
    return {
        "number": record.number,
        "started_at": _time(record.started_at),
        "finished_at": _time(record.finished_at),
        "status": record.status,
        "global_digest": record.global_digest,
        "selected": list(record.selected),
        "checkpoint": record.checkpoint,
        "outcomes": [
            {
                "participant": o.participant,
                "status": o.status,
                "reason": o.reason,
                "num_examples": o.num_examples,
                "update_digest": o.update_digest,
                "duration_s": o.duration_s,
                "metrics": dict(o.metrics),
            }
            for o in record.outcomes
        ],
        "metrics": [
            {
                "scope": m.scope,
                "participant": m.participant,
                "name": m.name,
                "value": m.value,
            }
            for m in record.metrics
        ],
    }


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value
