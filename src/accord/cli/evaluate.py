"""``accord evaluate robustness fed.toml``: the attack x defence matrix.

Each cell is a seeded ``accord simulate`` run, recorded in the store; the command
prints one table (the clean score, the score under attack and its drop, in the
federation's ``[evaluation] metric``; backdoor success; attackers and honest sites
flagged) and writes a plot (the ``report``
extra). See :mod:`accord.simulation.robustness` for the names it takes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.output import dumps
from accord.config import load_config
from accord.simulation.robustness import NO_ATTACK, Cell, run_matrix
from accord.store import open_store

__all__ = ["register"]

evaluate_app = typer.Typer(help="Evaluate a federation: robustness to attacks.")

_ATTACKS = "alie,ipm,min_max,scaling,sign_flip,label_flip,scaling+backdoor"
_DEFENCES = "mean,median,trimmed_mean,median+quarantine"


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise typer.BadParameter(f"{option} needs at least one name")
    return names


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def _num(value: float, metric: str) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if metric == "loss" else f"{100 * value:.1f}"


def matrix_table(cells: list[Cell]) -> Table:
    """The matrix, one row per cell; the drop is against the defence's clean run.

    The headline is the federation's ``[evaluation] metric`` (in % but for the
    loss); accuracy gets its own column when the metric is another.
    """
    metric = cells[0].metric if cells else "accuracy"
    clean = {c.defence: c.score for c in cells if c.attack == NO_ATTACK}
    table = Table(
        title=f"robustness: final central {metric}, its drop from the defence's "
        "attack-free run, backdoor success (%); sites flagged at least once"
    )
    columns = ["attack", "defence", "clean", "attacked", "drop"]
    if metric != "accuracy":
        columns.append("accuracy")
    columns += ["backdoor", "flagged bad", "flagged honest", "run"]
    for col in columns:
        table.add_column(col, no_wrap=True)
    for c in cells:
        base = clean.get(c.defence, math.nan)
        row = [
            c.attack,
            c.defence,
            _num(base, metric),
            _num(c.score, metric),
            _num(base - c.score, metric),
        ]
        if metric != "accuracy":
            row.append(_pct(c.accuracy))
        row += [
            _pct(c.backdoor_success),
            str(c.flagged_attackers),
            str(c.flagged_honest),
            c.run_id if c.aborted is None else f"{c.run_id} (aborted)",
        ]
        table.add_row(*row)
    return table


@evaluate_app.command("robustness")
def robustness_command(
    config: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="fed.toml")
    ],
    attacks: Annotated[
        str,
        typer.Option(help="Comma-separated attack kinds ('+backdoor' adds one)."),
    ] = _ATTACKS,
    defences: Annotated[
        str,
        typer.Option(
            help="Comma-separated aggregation rules ('+quarantine' adds the policy)."
        ),
    ] = _DEFENCES,
    malicious: Annotated[
        int | None,
        typer.Option(help="Malicious sites (default: [attack] in fed.toml, else 2)."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option("--rounds", "-r", help="Override federation.rounds.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", help="Worker processes; 0 in-process."),
    ] = None,
    plot: Annotated[
        Path, typer.Option(help="Figure to write (.png, .svg or .pdf).")
    ] = Path("robustness.png"),
    store: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the store.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the cells as JSON.")
    ] = False,
) -> None:
    """Run the attack x defence matrix in simulation; print a table, write a plot."""
    with reported():
        overrides: dict[str, dict[str, object]] = {}
        if rounds is not None:
            overrides["federation"] = {"rounds": rounds}
        if workers is not None:
            overrides["simulation"] = {"workers": workers}
        if store is not None:
            overrides["store"] = {"url": store}
        cfg = load_config(config, **overrides)
        console = Console(stderr=True, quiet=as_json)
        db = open_store(cfg.store.url, default_dir=Path(cfg.store.directory))
        try:

            def done(cell: Cell) -> None:
                console.print(
                    f"{cell.attack} x {cell.defence}: {cell.metric} "
                    f"{_num(cell.score, cell.metric)}"
                )

            cells = run_matrix(
                cfg,
                attacks=_names(attacks, "--attacks"),
                defences=_names(defences, "--defences"),
                store=db,
                malicious=malicious,
                on_cell=done,
            )
        finally:
            db.close()
        from accord.report.robustness import plot_matrix

        written = plot_matrix(cells, plot, title=cfg.federation.name)
    if as_json:
        typer.echo(dumps({"cells": [c.to_dict() for c in cells], "plot": str(written)}))
        return
    out = Console()
    out.width = max(out.width, 132)  # a run id is never cut; pipes get 132 columns
    out.print(matrix_table(cells))
    out.print(f"plot: {written}")


def register(app: typer.Typer) -> None:
    """Add ``accord evaluate`` to the application."""
    app.add_typer(evaluate_app, name="evaluate")
