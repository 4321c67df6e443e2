"""``accord profile fed.toml``: each site's guarded data profile, and drift flags.

Each simulated site profiles its own training rows exactly as a deployed site
does before round 1 (:mod:`accord.simulation.profiling`), under ``[profile]``'s
guard (counts under ``min_count`` suppressed, optional DP noise); the command
prints, per site, its rows and label counts, per column its missing count, mean,
standard deviation and quartiles (numeric) or level counts (categorical), then
every drift flag with its measure and threshold, and the data contract's digest.
``--json`` prints one JSON document instead. A table that does not fit the
schema (``[data] site_files``) exits 2 naming the site and the column, as does a
flagged federation with ``[profile] refuse = true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.output import dumps
from accord.cli.text import shown
from accord.config import load_config

__all__ = ["register"]

_CONFIG = typer.Argument(..., exists=True, dir_okay=False, help="fed.toml")
_JSON = typer.Option(False, "--json", help="Print one JSON document.")
#: Levels shown per categorical column in the table (all are in --json).
_LEVELS = 6


def profile_command(config: Path = _CONFIG, as_json: bool = _JSON) -> None:
    """Profile every site's data as it would be before round 1; flag drift."""
    from accord.coordinator.contract import refuse_if_flagged
    from accord.data.contract import profile_document
    from accord.simulation.profiling import simulated_contract

    with reported():
        cfg = load_config(config)
        contract = simulated_contract(cfg, warn=False)  # the table says them
        document = profile_document(contract)
    if as_json:
        typer.echo(dumps(document))
    else:
        _print(document, contract.guard.min_count if contract.guard else 1)
    with reported():
        refuse_if_flagged(cfg, contract)


def _shown(value: Any, k: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print(document: dict[str, Any], k: int) -> None:
    console = Console()
    sites = Table(title="sites (training rows)")
    for column in ("site", "rows", "labels"):
        sites.add_column(column)
    for name, site in document["sites"].items():
        labels = ", ".join(f"{c}: {_shown(n, k)}" for c, n in site["labels"].items())
        sites.add_row(shown(name), _shown(site["rows"], k), shown(labels))
    console.print(sites)
    columns = Table(
        title=f"columns per site (–: suppressed, a count under {k} or the one that "
        "would reveal it)"
    )
    for column in ("site", "column", "missing", "mean", "std", "quartiles / levels"):
        columns.add_column(column)
    for name, site in document["sites"].items():
        for col, c in site["numeric"].items():
            quartiles = " / ".join(_shown(q, k) for q in c["quartiles"])
            columns.add_row(
                shown(name),
                shown(col),
                _shown(c["missing"], k),
                _shown(c["mean"], k),
                _shown(c["std"], k),
                quartiles,
            )
        for col, levels in site["categorical"].items():
            items = list(levels.items())
            text = ", ".join(f"{v}: {_shown(n, k)}" for v, n in items[:_LEVELS])
            if len(items) > _LEVELS:
                text += f", … {len(items) - _LEVELS} more"
            columns.add_row(shown(name), shown(col), "", "", "", shown(text))
    console.print(columns)
    flags = Table(title=shown("drift flags (warnings unless [profile] refuse = true)"))
    for column in ("site", "column", "measure", "value", "threshold"):
        flags.add_column(column)
    for f in document["flags"]:
        flags.add_row(
            shown(f["site"]),
            shown(f["column"]),
            f["measure"],
            f"{f['value']:.4g}",
            f"{f['threshold']:.4g}",
        )
    if document["flags"]:
        console.print(flags)
    else:
        console.print("no drift flags")
    guard = document["guard"] or {}
    noise = guard.get("noise", "off")
    privacy = (
        "no DP noise" if noise == "off" else f"{noise} noise, ε = {guard['epsilon']}"
    )
    console.print(
        f"data contract {document['contract'][:16]}… (preprocessing "
        f"{document['preprocessing'][:16]}…); counts under {k} suppressed, {privacy}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``accord profile`` to the application."""
    app.command("profile")(profile_command)
