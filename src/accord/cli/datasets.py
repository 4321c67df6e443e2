"""``accord datasets``: the bundled datasets that work offline."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.data import list_datasets

__all__ = ["register"]


def datasets_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the datasets accord can federate without a download."""
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


def register(app: typer.Typer) -> None:
    """Add ``accord datasets`` to the application."""
    app.command("datasets")(datasets_command)
