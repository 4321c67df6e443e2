"""``accord report RUN``: the run's model card, as Markdown, JSON or one HTML file.

The card (:mod:`accord.report.card`) is built from what the store recorded of the
run; ``--html`` adds the plots, in one self-contained file that fetches nothing
when opened. ``--contributions`` computes each site's leave-one-out and Shapley
scores first, as ``accord contributions RUN`` does (the run must have kept its
updates); ``--trust ca/`` checks a deployed run's ledger against the
federation's CA (a simulation ledger is checked for integrity without it).
Exit 0 with the card written; 2 for an unknown run id or unusable option, 3 when
the ``report`` extra (plotly) is missing for ``--html``, 4 when the store cannot
be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from accord.cli.errors import reported
from accord.cli.text import shown
from accord.errors import ContributionUnavailable, StoreError

__all__ = ["register", "report_command"]

_STORE = typer.Option(
    None, "--store", help="SQLAlchemy URL (default: the local store)."
)
_DIR = typer.Option(
    Path("accord-runs"), "--dir", help="Folder of the store and checkpoints."
)


def _contributions(
    run_id: str, directory: Path, store: str | None, config: Path | None
) -> tuple[Any, str | None]:
    """The run's contribution report, or None and why it cannot be computed."""
    from accord.cli.contributions import compute

    try:
        _, report = compute(
            run_id,
            directory=directory,
            store_url=store,
            fed=config,
            method="both",
            permutations=20,
        )
    except ContributionUnavailable as exc:
        return None, str(exc)
    return report, None


def _write(text: str, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StoreError(
            f"cannot write the report to {out}: {exc.strerror or exc}; choose a "
            "writable path with --out"
        ) from exc


def report_command(
    run: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or latest.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write (default: stdout; with --html, RUN.html here).",
        ),
    ] = None,
    as_html: Annotated[
        bool, typer.Option("--html", help="One self-contained HTML file, with plots.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The card as one JSON document.")
    ] = False,
    contributions: Annotated[
        bool,
        typer.Option(
            "--contributions",
            help="Compute each site's LOO and Shapley score (needs kept updates).",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The run's fed.toml, for --contributions when its paths are relative.",
        ),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust", help="The federation's CA (folder with ca.pem, or the file)."
        ),
    ] = None,
    store: str | None = _STORE,
    directory: Path = _DIR,
) -> None:
    """The model card of RUN: Markdown (default), --json, or --html with plots."""
    from accord.cli.audit import trust_anchors
    from accord.cli.runs import resolve_run
    from accord.report.card import build_card
    from accord.report.document import card_json
    from accord.report.markdown import render_markdown
    from accord.report.sources import gather
    from accord.store import open_store

    if as_html and as_json:
        raise typer.BadParameter("choose one of --html and --json")
    with reported():
        anchors = None if trust is None else trust_anchors(trust)
        db = open_store(store, default_dir=directory)
        try:
            run_id = resolve_run(db, run)
        finally:
            db.close()
        scores, note = (
            _contributions(run_id, directory, store, config)
            if contributions
            else (None, None)
        )
        db = open_store(store, default_dir=directory)
        try:
            inputs = gather(
                db,
                run_id,
                anchors=anchors,
                contributions=scores,
                contributions_note=note,
            )
        finally:
            db.close()
        card = build_card(inputs)
        if as_html:
            from accord.report.html import render_html

            text = render_html(card)
            out = out or Path(f"{run_id}.html")
        elif as_json:
            text = json.dumps(card_json(card), indent=2, allow_nan=False) + "\n"
        else:
            text = render_markdown(card)
        if out is None:
            typer.echo(text, nl=False)
            return
        _write(text, out)
    Console(stderr=True).print(
        f"wrote the model card of run {run_id} to {shown(str(out))}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``accord report`` to the application."""
    app.command("report")(report_command)
