"""What the commands print about a run, the same for every command.

The ``--json`` fields (simulate and coordinator), and the federated-vs-baselines
table that ``accord simulate`` and ``accord runs show`` both draw.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rich.table import Table

from accord.cli.text import shown
from accord.coordinator.runner import RunResult
from accord.simulation.baselines import Comparison

__all__ = ["comparison_table", "dumps", "run_json"]


def run_json(result: RunResult) -> dict[str, Any]:
    """The run id, the final model's digest and every round, as plain data.

    ``epsilon`` is the differential privacy spent once the round was done (None
    without DP); ``stopped`` says why a run ended before its planned rounds
    without failing (its privacy budget was spent), else None.
    """
    return {
        "run_id": result.run_id,
        "final_digest": result.params.digest(),
        "stopped": result.stopped,
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
                "epsilon": r.epsilon,
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


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def comparison_table(c: Comparison) -> Table:
    """Federated against pooled and each site alone, on the central test set.

    The last column is each baseline at its best pass by its own holdout rows (so
    an overfitting baseline does not flatter the federated model).
    """
    table = Table(title="Federated vs pooled vs each site alone (central test set)")
    table.add_column("model")
    for metric in ("auc", "accuracy", "loss"):
        table.add_column(metric, justify="right")
    table.add_column(f"{c.metric} at best pass", justify="right")
    rows: list[tuple[str, str | None, dict[str, float]]] = [
        ("[bold]federated[/]", None, dict(c.federated)),
        ("pooled data", "pooled", dict(c.pooled)),
    ]
    rows += [(f"  {shown(n)} alone", n, dict(m)) for n, m in c.sites.items()]
    for label, baseline, m in rows:
        best = c.best.get(baseline, {}) if baseline is not None else {}
        at_best = (
            f"{_fmt(best.get(c.metric, math.nan))} (pass {int(best['pass'])})"
            if "pass" in best
            else ""
        )
        table.add_row(
            label,
            *(_fmt(m.get(k, math.nan)) for k in ("auc", "accuracy", "loss")),
            at_best,
        )
    table.caption = (
        f"federated {c.metric} = {100 * c.ratio_to_pooled:.1f}% of pooled; "
        f"median site alone {_fmt(c.median_site)}"
    )
    pooled_best = c.best.get("pooled", {}).get(c.metric, math.nan)
    if math.isfinite(pooled_best) and pooled_best != 0:
        ratio = c.federated[c.metric] / pooled_best
        table.caption += f"; {100 * ratio:.1f}% of pooled at its best pass"
    for name, reason in c.failed.items():
        table.caption += f"\nbaseline {shown(name)} failed: {shown(reason)}"
    return table
