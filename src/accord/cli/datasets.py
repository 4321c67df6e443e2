"""``accord datasets``: the bundled datasets, and the quality check of a table.

``accord datasets check fed.toml`` profiles the table that ``[data]`` names (each
column's kind, missing, non-finite and distinct values) and lists every problem that
``accord simulate`` would refuse, so a user can fix the file before a run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.text import shown
from accord.config import load_config
from accord.data import list_datasets
from accord.data.datasets import check_table
from accord.data.quality import QualityReport

__all__ = ["register"]

datasets_app = typer.Typer(
    help="Datasets that work offline, and the quality check of your own.",
    invoke_without_command=True,
)


@datasets_app.callback()
def datasets_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the datasets accord can federate without a download."""
    if ctx.invoked_subcommand is not None:
        return
    with reported():
        entries = list_datasets()
    if as_json:
        rows: list[Any] = [asdict(e) if is_dataclass(e) else e for e in entries]
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="datasets (offline)")
    for col in ("name", "rows", "features", "classes", "natural sites", "description"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            *(
                str(getattr(e, f, ""))
                for f in ("name", "rows", "features", "classes", "sites", "description")
            )
        )
    Console().print(table)


_CONFIG = typer.Argument(..., exists=True, dir_okay=False, help="fed.toml")
_JSON = typer.Option(False, "--json", help="Print JSON.")


@datasets_app.command("check")
def check_command(config: Path = _CONFIG, as_json: bool = _JSON) -> None:
    """Profile the table a fed.toml names; exit 2 if training would refuse it."""
    with reported():
        cfg = load_config(config)
        dataset, options = cfg.data.dataset, dict(cfg.data.options)
        if dataset.startswith("csv:"):
            path = Path(dataset.removeprefix("csv:"))
            dataset = f"csv:{path if path.is_absolute() else config.parent / path}"
        report = check_table(dataset, **options)
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        _print(report)
    if report.problems:
        raise typer.Exit(2)


def _print(report: QualityReport) -> None:
    console = Console()
    table = Table(title=f"{shown(report.source)}: {report.rows:,} rows")
    table.add_column("column", no_wrap=True)  # the name to look for in the file
    table.add_column("role")
    for col in ("kind", "missing", "non-finite", "distinct"):
        table.add_column(col, justify="right")
    table.add_column("largest |value|", justify="right")
    for c in report.columns:
        largest = "" if c.largest is None else f"{c.largest:.4g}"
        table.add_row(
            shown(c.name),
            c.role,
            c.kind,
            f"{c.missing:,}",
            f"{c.non_finite:,}",
            f"{c.distinct:,}",
            largest,
        )
    console.print(table)
    for note in report.notes:
        console.print(f"note: {shown(note)}")
    for problem in report.problems:
        console.print(f"[bold red]problem:[/] {shown(problem)}")
    if not report.problems:
        console.print("no problems: the table can be trained on as it is")


def register(app: typer.Typer) -> None:
    """Add ``accord datasets`` to the application."""
    app.add_typer(datasets_app, name="datasets")
