"""``accord runs``: list recorded runs, show one, export its metrics.

``show`` and ``export`` take a run id, any prefix of one that names a single run, or
``latest`` (the newest run); ids are printed whole, never cut to fit the terminal.
``show`` prints what was recorded with the run (the data's digest, the deployment's
preprocessing fit) one line each, apart from the messages refused during it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.output import comparison_table, dumps
from accord.cli.personal import personal_json, personal_table
from accord.cli.scores import scores_table, show_json
from accord.cli.text import shown
from accord.coordinator.transfers import EVENT_KIND as TRANSFER
from accord.errors import ConfigError, RunNotFound
from accord.simulation.baselines import Comparison
from accord.store import (
    RoundRecord,
    RunEvent,
    RunInfo,
    RunStore,
    export_metrics,
    open_store,
)

__all__ = ["register"]

#: Characters shown of an event that records what a run used.
_RECORD_CHARS = 200


def _is_record(kind: str) -> bool:
    """Whether events of ``kind`` record what a run used, rather than a refusal.

    The data's digest, the preprocessing fit, the data contract and its drift
    flags: shown one line each, apart from the refused messages.
    """
    from accord.coordinator.contract import EVENT_KIND as CONTRACT
    from accord.coordinator.contract import FLAG_KIND as FLAG
    from accord.coordinator.preparation import EVENT_KIND as PREPROCESSING
    from accord.data.digest import EVENT_KIND as DATA

    return kind in (DATA, PREPROCESSING, CONTRACT, FLAG)


def _is_bookkeeping(kind: str) -> bool:
    """Whether events of ``kind`` are the privacy accounting's notes for a resume.

    They record what a round released before its record, not a refusal, and are
    in ``--json``'s events, not in the refused messages.
    """
    from accord.coordinator.privacy import RELEASED_EVENT
    from accord.coordinator.record_privacy import DISPATCHED_EVENT

    return kind in (RELEASED_EVENT, DISPATCHED_EVENT)


def _first_part(kind: str, detail: str) -> bool:
    """False for the second and later parts of a data contract (one line is enough)."""
    from accord.coordinator.contract import EVENT_KIND as CONTRACT

    place = detail.split(" ", 2)[1:2]
    return kind != CONTRACT or not place or place[0].startswith("1/")


def _cut(text: str) -> str:
    """``text`` cut to :data:`_RECORD_CHARS` characters (a fit spans many events)."""
    return text if len(text) <= _RECORD_CHARS else text[:_RECORD_CHARS] + "…"


def _bytes_table(events: list[RunEvent]) -> Table | None:
    """Bytes the sites' updates took per round (``[compression]`` runs), or None."""
    from accord.coordinator.transfers import per_round

    rounds = per_round(events)
    if not rounds:
        return None
    table = Table(title=f"update bytes sent ({rounds[0].method})")
    for col in ("round", "sites", "bytes sent", "dense bytes", "x fewer"):
        table.add_column(col, justify="right")
    for r in rounds:
        table.add_row(
            str(r.round), str(r.sites), str(r.sent), str(r.dense), f"{r.ratio:.1f}"
        )
    return table


runs_app = typer.Typer(
    help="Recorded runs: list, show, export.", invoke_without_command=True
)
_STORE = typer.Option(
    None, "--store", help="SQLAlchemy URL (default: the local store)."
)
_FORMAT = typer.Option("csv", "--format", "-f", help="csv or json")
_OUTPUT = typer.Option(None, "--output", "-o", help="File to write.")
_DIR = typer.Option(Path("accord-runs"), "--dir", help="Folder of the default store.")


def _open(store: str | None, directory: Path) -> RunStore:
    return open_store(store, default_dir=directory)


def resolve_run(store: RunStore, ref: str) -> str:
    """The id of the run ``ref`` names: an id, a unique prefix of one, or ``latest``.

    :class:`RunNotFound` if none matches; :class:`ConfigError` if a prefix matches
    several (listing them).
    """
    runs = store.list_runs()  # newest first
    if ref == "latest":
        if not runs:
            raise RunNotFound(ref)
        return runs[0].run_id
    if any(r.run_id == ref for r in runs):
        return ref
    matches = [r.run_id for r in runs if ref and r.run_id.startswith(ref)]
    if not matches:
        raise RunNotFound(ref)
    if len(matches) > 1:
        raise ConfigError(
            f"{ref!r} is the start of {len(matches)} run ids "
            f"({', '.join(matches[:5])}{', ...' if len(matches) > 5 else ''}); "
            "give more of the id"
        )
    return matches[0]


@runs_app.callback()
def list_runs(
    ctx: typer.Context,
    store: str | None = _STORE,
    directory: Path = _DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    with reported():
        db = _open(store, directory)
        try:
            runs = db.list_runs()
        finally:
            db.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "run_id": r.run_id,
                        "name": r.name,
                        "status": r.status,
                        "created_at": r.created_at.isoformat(),
                        "rounds_completed": r.rounds_completed,
                        "rounds_planned": r.rounds_planned,
                    }
                    for r in runs
                ],
                indent=2,
            )
        )
        return
    table = Table(title="runs")
    width = max((len(r.run_id) for r in runs), default=3)
    table.add_column("run", no_wrap=True, min_width=width)  # an id is never cut
    for col in ("name", "status", "rounds", "created (UTC)", "final"):
        table.add_column(col)
    for r in runs:
        final = (r.summary or {}).get("final", {})
        headline = ", ".join(
            f"{k} {v:.4f}"
            for k, v in final.items()
            if k.startswith("central.") and isinstance(v, float) and not math.isnan(v)
        )
        table.add_row(
            r.run_id,
            shown(r.name),
            r.status,
            f"{r.rounds_completed}/{r.rounds_planned}",
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            headline,
        )
    Console().print(table)


def _epsilon(r: RoundRecord) -> float | None:
    """Epsilon once round ``r`` was done (None: no DP).

    The federation's at participant level; at record level the largest of the
    sites' (each site's own is in :func:`_site_epsilons`).
    """
    central = next((p.epsilon for p in r.privacy if p.participant is None), None)
    if central is not None:
        return central
    return max((p.epsilon for p in r.privacy), default=None)


def _site_epsilons(r: RoundRecord) -> dict[str, float]:
    """Each site's epsilon (record level) once round ``r`` was done."""
    return {p.participant: p.epsilon for p in r.privacy if p.participant is not None}


def _show_json(
    info: RunInfo, rounds: list[RoundRecord], events: list[RunEvent]
) -> None:
    """The run, its rounds (outcomes, scores, privacy spent) and events as JSON."""
    document = show_json(info, rounds, events)
    document["rounds_planned"] = info.rounds_planned
    for entry, r in zip(document["rounds"], rounds, strict=True):
        entry["ok"] = sum(1 for o in r.outcomes if o.status == "ok")
        entry["epsilon"] = _epsilon(r)
        entry["sites_epsilon"] = _site_epsilons(r)
        entry["privacy"] = [dataclasses.asdict(p) for p in r.privacy]
    document["personalization"] = personal_json(rounds)
    typer.echo(dumps(document))


@runs_app.command("show")
def show_run(
    run_id: str,
    store: str | None = _STORE,
    directory: Path = _DIR,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """One run: rounds, outcomes, epsilon, update scores, refusals, baselines.

    RUN_ID is a run id, a prefix of one, or ``latest``.
    """
    with reported():
        db = _open(store, directory)
        try:
            run_id = resolve_run(db, run_id)
            info, rounds = db.get_run(run_id), db.rounds(run_id)
            events = db.events(run_id)
        finally:
            db.close()
    if as_json:
        _show_json(info, rounds, events)
        return
    console = Console()
    console.print(
        f"[bold]{info.run_id}[/] {shown(info.name)}: {info.status}, seed {info.seed}"
    )
    summary = info.summary or {}
    privacy = summary.get("privacy")
    if isinstance(privacy, dict):
        console.print(
            f"differential privacy ({privacy.get('level')} level): epsilon "
            f"{privacy.get('epsilon', math.nan):.4f} at delta {privacy.get('delta')}"
            f", budget {privacy.get('budget_epsilon') or 'none'}",
            highlight=False,
        )
        sites = privacy.get("sites")
        if isinstance(sites, dict) and sites:
            console.print(
                "epsilon of each site's records: "
                + ", ".join(f"{shown(str(k))} {v:.4f}" for k, v in sites.items()),
                highlight=False,
            )
    if summary.get("reason"):
        console.print(f"reason: {shown(str(summary['reason']))}", highlight=False)
    dp = any(r.privacy for r in rounds)
    table = Table()
    columns = ["round", "status", "ok", "not ok (reason)", "model digest"]
    record = any(p.participant is not None for r in rounds for p in r.privacy)
    label = "max site epsilon" if record else "epsilon"
    for col in columns + ([label] if dp else []):
        table.add_column(col)
    for r in rounds:
        ok = sum(1 for o in r.outcomes if o.status == "ok")
        bad = "; ".join(
            f"{shown(o.participant)} {o.status}: {shown(o.reason)}"
            for o in r.outcomes
            if o.status != "ok"
        )
        eps = _epsilon(r)
        table.add_row(
            str(r.number),
            r.status,
            f"{ok}/{len(r.selected)}",
            bad,
            r.global_digest[:16],
            *([] if not dp else ["" if eps is None else f"{eps:.4f}"]),
        )
    console.print(table)
    for e in events:  # what the run was trained on, kept with it: not refusals
        if _is_record(e.kind) and _first_part(e.kind, e.detail):
            console.print(f"{shown(e.kind)}: {shown(_cut(e.detail))}", highlight=False)
    events = [e for e in events if not _is_record(e.kind)]
    events = [e for e in events if not _is_bookkeeping(e.kind)]
    if (sent := _bytes_table(events)) is not None:
        console.print(sent)
    events = [e for e in events if e.kind != TRANSFER]
    if (personal := personal_table(rounds)) is not None:
        console.print(personal)
    if (scored := scores_table(rounds)) is not None:
        console.print(scored)
    if events:
        refused = Table(title="refused messages")
        for col in ("time (UTC)", "round", "participant", "kind", "detail"):
            refused.add_column(col)
        for e in events:
            refused.add_row(
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                "" if e.round is None else str(e.round),
                shown(e.participant or "(unauthenticated)"),
                shown(e.kind),
                shown(e.detail),  # quotes what a peer sent: no markup from it
            )
        console.print(refused)
    comparison = (info.summary or {}).get("comparison")
    if comparison:
        console.print(comparison_table(Comparison.from_dict(comparison)))


@runs_app.command("export")
def export_run(
    run_id: str,
    fmt: str = _FORMAT,
    output: Path | None = _OUTPUT,
    store: str | None = _STORE,
    directory: Path = _DIR,
) -> None:
    """Export a run's metrics (id, id prefix or ``latest``) as CSV or JSON."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("--format must be csv or json")
    kind: Literal["csv", "json"] = "csv" if fmt == "csv" else "json"
    with reported():
        db = _open(store, directory)
        try:
            text = export_metrics(db, resolve_run(db, run_id), kind)
        finally:
            db.close()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add ``accord runs`` to the application."""
    app.add_typer(runs_app, name="runs")
