"""What the dashboard's pages and JSON show, computed from a run's stored records.

Pure functions: no I/O, no web framework. The run page is the run's model card
(:func:`accord.report.card.build_card`) with two sections the card does not have:
the messages refused (each with its reason) and the federated model beside the
pooled and site-alone baselines when the simulation trained them. Its plots are
named as :func:`accord.report.html.plot_id` names them, so the live figures of
:func:`live` redraw exactly the elements the page holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from accord.records import RoundRecord, RunEvent, RunInfo
from accord.report.card import RECORD_EVENTS, build_card
from accord.report.document import (
    Block,
    Facts,
    ModelCard,
    Note,
    Plot,
    Section,
    Series,
    Table,
    not_recorded,
)
from accord.report.inputs import CardInputs

__all__ = [
    "comparison_section",
    "live",
    "page_sections",
    "plots_by_id",
    "progress",
    "refusals_section",
    "run_row",
]


def _when(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def run_row(run: RunInfo) -> dict[str, Any]:
    """One run of the runs list, as JSON values."""
    return {
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "rounds_planned": run.rounds_planned,
        "rounds_completed": run.rounds_completed,
        "created_at": _when(run.created_at),
        "finished_at": _when(run.finished_at),
    }


def progress(run: RunInfo, rounds: Sequence[RoundRecord]) -> dict[str, Any]:
    """Where a run stands: its status, rounds done of planned, its last round."""
    done = sum(1 for r in rounds if r.status == "completed")
    last = rounds[-1] if rounds else None
    out = {
        **run_row(run),
        "rounds_recorded": len(rounds),
        "rounds_completed": done,
        "rounds_failed": len(rounds) - done,
        "fraction": done / run.rounds_planned if run.rounds_planned else 0.0,
        "last_round": None,
    }
    if last is not None:
        out["last_round"] = {
            "number": last.number,
            "status": last.status,
            "finished_at": _when(last.finished_at),
            "selected": len(last.selected),
            "accepted": sum(1 for o in last.outcomes if o.status == "ok"),
            "outcomes": {o.participant: o.status for o in last.outcomes},
        }
    return out


def refusals_section(events: Sequence[RunEvent]) -> Section:
    """Every message the run refused, with round, sender and reason."""
    refused = [e for e in events if e.kind not in RECORD_EVENTS]
    if not refused:
        return Section(
            "refusals", "Messages refused", (Note("No message was refused."),)
        )
    rows = tuple(
        (
            str(e.round) if e.round is not None else "-",
            e.participant or "-",
            e.kind,
            e.detail,
            _when(e.at) or "",
        )
        for e in refused
    )
    table = Table(("round", "from", "kind", "reason", "at"), rows)
    return Section("refusals", "Messages refused", (table,))


def _score(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def comparison_section(summary: Mapping[str, Any] | None) -> Section:
    """The final model beside the pooled one and each site's own, if trained.

    ``summary["comparison"]`` is what the simulation records when
    ``[evaluation] baselines`` is on: one score per measure for the federated,
    the pooled and each site-alone model, on the same test set.
    """
    title = "Federated, pooled and site-alone models"
    doc = (summary or {}).get("comparison")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("federated"), Mapping):
        why = (
            "the run trained no baselines: a simulation with [evaluation] "
            "baselines = true and a test set records them when it ends"
        )
        return Section("comparison", title, (not_recorded(why),))
    models: list[tuple[str, Mapping[str, Any]]] = [("federated", doc["federated"])]
    if isinstance(doc.get("pooled"), Mapping):
        models.append(("pooled", doc["pooled"]))
    sites = doc.get("sites")
    if isinstance(sites, Mapping):
        models += [
            (f"alone: {name}", v)
            for name, v in sorted(sites.items())
            if isinstance(v, Mapping)
        ]
    measures = sorted({str(k) for _, scores in models for k in scores})
    metric = str(doc.get("metric", ""))
    shown = [metric] if metric in measures else measures[:1]
    names = tuple(name for name, _ in models)
    series = tuple(
        Series(m, names, tuple(_score(scores.get(m)) for _, scores in models))
        for m in shown
    )
    rows = tuple(
        (name, *(_format(_score(scores.get(m))) for m in measures))
        for name, scores in models
    )
    blocks: list[Block] = [
        Table(("model", *measures), rows, "scores on the test set"),
        Plot(
            "comparison",
            f"Final {', '.join(shown)}: federated, pooled, site alone",
            "model",
            ", ".join(shown),
            "bar",
            series,
        ),
    ]
    ratio = _score(doc.get("ratio_to_pooled"))
    if ratio is not None:
        blocks.insert(0, Facts((("federated / pooled", f"{ratio:.3f}"),)))
    return Section("comparison", title, tuple(blocks))


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def page_sections(card: ModelCard, inputs: CardInputs) -> tuple[Section, ...]:
    """The run page's sections: the card, then refusals and the comparison."""
    return (
        *card.sections,
        refusals_section(inputs.events),
        comparison_section(inputs.run.summary),
    )


def plots_by_id(sections: Sequence[Section]) -> dict[str, Plot]:
    """Each plot of ``sections`` by the element id the page gives it."""
    from accord.report.html import plot_id

    counts: dict[str, int] = {}
    return {
        plot_id(block.key, counts): block
        for section in sections
        for block in section.blocks
        if isinstance(block, Plot)
    }


def live(inputs: CardInputs) -> dict[str, Any]:
    """The live view of a run: its progress and every plot's Plotly figure.

    ``inputs`` need not hold the ledger (the plots do not read it), so a page
    polling this every few seconds does not verify the chain each time.
    """
    from accord.report.html import figure_json

    sections = page_sections(build_card(inputs), inputs)
    figures = {
        ident: json.loads(figure_json(plot))
        for ident, plot in plots_by_id(sections).items()
    }
    return {**progress(inputs.run, inputs.rounds), "figures": figures}
