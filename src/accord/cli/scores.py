"""How ``accord runs show`` presents a run's robustness record.

The per-update anomaly scores of each scored round (one table, flagged updates
marked with the rules they broke) and the run as one JSON document for
``accord runs show --json``: every round with its outcomes (``quarantined``
included) and scores, and the refused messages.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from rich.table import Table

from accord.cli.text import shown
from accord.store import RoundRecord, RunEvent, RunInfo

__all__ = ["scores_table", "show_json"]


def _num(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def scores_table(rounds: list[RoundRecord]) -> Table | None:
    """Each scored update's scores, round by round; None when nothing was scored."""
    scored = [r for r in rounds if r.scores]
    if not scored:
        return None
    table = Table(title="update scores (norm z and distance z: robust, per round)")
    for col in (
        "round",
        "participant",
        "norm",
        "norm z",
        "cosine",
        "mean dist",
        "median dist",
        "dist z",
        "nearest",
        "flagged",
    ):
        table.add_column(col)
    for r in scored:
        for s in r.scores:
            mark = "; ".join(s.flags)
            if s.excluded:
                mark = f"quarantined{'; ' if mark else ''}{mark}"
            table.add_row(
                str(r.number),
                shown(s.participant),
                _num(s.norm),
                _num(s.norm_z),
                _num(s.cosine),
                _num(s.mean_distance),
                _num(s.median_distance),
                _num(s.distance_z),
                _num(s.nearest_ratio),
                mark,
            )
    return table


def _value(value: Any) -> Any:
    """Infinities as "inf"/"-inf" (a z-score can be), NaN as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def show_json(
    info: RunInfo, rounds: list[RoundRecord], events: list[RunEvent]
) -> dict[str, Any]:
    """The run, its rounds (outcomes, metrics, scores) and events as plain data."""
    return {
        "run_id": info.run_id,
        "name": info.name,
        "status": info.status,
        "seed": info.seed,
        "rounds": [
            {
                "number": r.number,
                "status": r.status,
                "global_digest": r.global_digest,
                "selected": list(r.selected),
                "outcomes": [asdict(o) for o in r.outcomes],
                "metrics": [asdict(m) for m in r.metrics],
                "scores": [
                    {k: _value(v) for k, v in asdict(s).items()} for s in r.scores
                ],
            }
            for r in rounds
        ],
        "events": [asdict(e) for e in events],
        "summary": info.summary,
    }
