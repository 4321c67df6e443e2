"""What ``--json`` prints about a run: the same fields for simulate and coordinator."""

from __future__ import annotations

import json
import math
from typing import Any

from accord.coordinator.runner import RunResult

__all__ = ["dumps", "run_json"]


def run_json(result: RunResult) -> dict[str, Any]:
    """The run id, the final model's digest and every round, as plain data."""
    return {
        "run_id": result.run_id,
        "final_digest": result.params.digest(),
        "rounds": [
            {
                "number": r.number,
                "status": r.status,
                "selected": r.selected,
                "succeeded": r.succeeded,
                "duration_s": r.duration_s,
                "global_digest": r.global_digest,
                "metrics": dict(r.metrics),
                "reason": r.reason,
            }
            for r in result.rounds
        ],
    }


def dumps(document: Any) -> str:
    """Strict JSON: NaN and infinities (an AUC on one class) become null."""
    return json.dumps(_finite(document), indent=2, allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
