"""``accord contributions RUN``: each site's leave-one-out and Shapley score.

Reads the run's kept round updates (``[contribution] keep_updates = true``),
rebuilds the federation's sites from the run's recorded ``[data]`` to value each
coalition model on the sites' own holdouts, and prints one row per site: its
leave-one-out score, GTG-Shapley value with a 95 % interval, the rounds it took
part in, and the evaluations and seconds the whole table cost. A run that kept no
updates, or used secure aggregation, is refused with what can be computed instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.output import dumps
from accord.cli.runs import resolve_run
from accord.cli.text import shown
from accord.config import FedConfig, config_from_mapping, load_config
from accord.contribution import ContributionReport, Method, account
from accord.coordinator.resume import check_same_config
from accord.evaluation.contribution import (
    approximation_notes,
    check_scorable,
    holdout_value,
    kept_rounds,
    to_updates,
)
from accord.store import CheckpointStore, open_store

__all__ = ["contributions_command", "register"]

_METHODS = ("loo", "shapley", "both")
_CONFIG = typer.Option(
    None, "--config", help="The run's fed.toml (when its paths are relative)."
)
_STORE = typer.Option(
    None, "--store", help="SQLAlchemy URL (default: the local store)."
)
_DIR = typer.Option(
    Path("accord-runs"), "--dir", help="Folder of the store and checkpoints."
)


def _config(run_config: dict[str, object], run_id: str, fed: Path | None) -> FedConfig:
    """The run's configuration; with ``fed``, read from there (for its folder)."""
    if fed is None:
        return config_from_mapping(run_config)
    config = load_config(fed)
    check_same_config(run_id, run_config, config.to_json_dict())
    return config


def compute(
    run_ref: str,
    *,
    directory: Path,
    store_url: str | None,
    fed: Path | None,
    method: Method,
    permutations: int,
) -> tuple[str, ContributionReport]:
    """The run's id and its contribution report (the command, without printing)."""
    from accord.simulation.context import build_context

    db = open_store(store_url, default_dir=directory)
    try:
        run_id = resolve_run(db, run_ref)
        info, rounds = db.get_run(run_id), db.rounds(run_id)
    finally:
        db.close()
    config = _config(dict(info.config), run_id, fed)
    check_scorable(run_id, config)
    archive = CheckpointStore(directory / "checkpoints").updates()
    kept = kept_rounds(run_id, rounds, archive)
    context = build_context(config)
    value = holdout_value(
        context.task,
        context.data.sites,
        kept[0].base.spec,
        metric=config.evaluation.metric,
    )
    lr = config.strategy.server_lr
    report = account(
        (to_updates(k, server_lr=lr) for k in kept),
        value,
        method=method,
        permutations=permutations,
        seed=config.federation.seed,
    )
    return run_id, dataclasses.replace(report, notes=approximation_notes(config))


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"


def _table(report: ContributionReport) -> Table:
    table = Table()
    for col in ("site", "rounds", "leave-one-out", "Shapley", "95% interval"):
        table.add_column(col)
    for s in report.sites:
        ci = "" if s.ci_low is None else f"[{s.ci_low:+.4f}, {s.ci_high:+.4f}]"
        table.add_row(shown(s.site), str(s.rounds), _num(s.loo), _num(s.shapley), ci)
    return table


def contributions_command(
    run_id: str,
    method: str = typer.Option("both", "--method", help="loo, shapley or both."),
    permutations: int = typer.Option(
        20, "--permutations", min=2, help="Permutations sampled per round."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    config: Path | None = _CONFIG,
    store: str | None = _STORE,
    directory: Path = _DIR,
) -> None:
    """Each site's contribution to RUN: leave-one-out and GTG-Shapley scores.

    Needs a run with [contribution] keep_updates = true and no secure aggregation.
    RUN is a run id, a prefix of one, or ``latest``.
    """
    if method not in _METHODS:
        raise typer.BadParameter("--method must be loo, shapley or both")
    chosen: Method = (
        "loo" if method == "loo" else ("shapley" if method == "shapley" else "both")
    )
    with reported():
        run, report = compute(
            run_id,
            directory=directory,
            store_url=store,
            fed=config,
            method=chosen,
            permutations=permutations,
        )
    if as_json:
        document = dataclasses.asdict(report)
        typer.echo(dumps({"run_id": run, **document}))
        return
    console = Console()
    console.print(
        f"[bold]{run}[/]: contributions over {report.rounds} rounds "
        f"(value: the sites' holdout metric, weighted by holdout size)"
    )
    console.print(_table(report))
    console.print(
        f"total gain {report.gain:+.4f}; {report.evaluations} evaluations in "
        f"{report.seconds:.2f} s; {report.exact_rounds} rounds exact, "
        f"{report.truncated_rounds} truncated",
        highlight=False,
    )
    for note in report.notes:
        console.print(f"note: {shown(note)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``accord contributions`` to the application."""
    app.command("contributions")(contributions_command)
