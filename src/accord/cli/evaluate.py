"""``accord evaluate``: robustness to attacks, and a run's models on each site.

``accord evaluate run RUN --sites A,B``: the models x sites matrix of a recorded
run, without retraining: each chosen round's global model (``--rounds``, default
the final one) from the checkpoint store, scored on each simulated site's holdout
(:mod:`accord.simulation.holdouts`), in the federation's ``[evaluation] metric``.

``accord evaluate robustness fed.toml``: the attack x defence matrix.

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
from accord.cli.text import shown
from accord.config import load_config
from accord.errors import ConfigError
from accord.simulation.robustness import NO_ATTACK, Cell, run_matrix
from accord.store import open_store

__all__ = ["register"]

evaluate_app = typer.Typer(
    help="Evaluate a federation: a run's models on each site; robustness to attacks."
)

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
            shown(c.attack),
            shown(c.defence),
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
                    f"{shown(cell.attack)} x {shown(cell.defence)}: {cell.metric} "
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
    out.print(f"plot: {shown(written)}")


def _rounds(text: str | None, recorded: dict[int, str | None]) -> list[int]:
    """The rounds ``--rounds`` names (numbers or ``final``); default the final one."""
    if not recorded:
        raise ConfigError("the run recorded no completed round: it has no model")
    final = max(recorded)
    chosen = []
    for name in _names(text or "final", "--rounds"):
        number = final if name == "final" else None
        if number is None:
            try:
                number = int(name)
            except ValueError:
                raise typer.BadParameter(
                    f"--rounds takes round numbers or 'final', not {name!r}"
                ) from None
        if number not in recorded:
            raise ConfigError(
                f"round {number} is not a completed round of this run; it has "
                f"{min(recorded)} to {final}"
            )
        if recorded[number] is None:
            raise ConfigError(
                f"round {number} has no checkpoint ([store] checkpoints = false)"
            )
        chosen.append(number)
    return chosen


def _model_matrix(
    run: str,
    *,
    sites: str | None,
    rounds: str | None,
    config: Path | None,
    store: str | None,
    directory: Path,
) -> dict[str, object]:
    from accord.cli.release import run_config
    from accord.cli.runs import resolve_run
    from accord.simulation.holdouts import score_sites
    from accord.store.checkpoint import CheckpointStore

    db = open_store(store, default_dir=directory)
    try:
        run_id = resolve_run(db, run)
        cfg = run_config(dict(db.get_run(run_id).config), config)
        recorded = {
            r.number: r.checkpoint for r in db.rounds(run_id) if r.status == "completed"
        }
    finally:
        db.close()
    chosen = _rounds(rounds, recorded)
    names = _names(sites, "--sites") if sites else None
    models = []
    for number in chosen:
        path = Path(str(recorded[number]))
        params = CheckpointStore(path.parent).load(path)
        scores = score_sites(cfg, params, sites=names)
        models.append(
            {
                "model": f"global round {number}",
                "round": number,
                "digest": params.digest(),
                "sites": {s.site: s.metrics for s in scores},
            }
        )
    return {"run": run_id, "metric": cfg.evaluation.metric, "models": models}


def _matrix_table(matrix: dict[str, object]) -> Table:
    metric = str(matrix["metric"])
    models = matrix["models"]
    assert isinstance(models, list)
    sites = list(models[0]["sites"]) if models else []
    table = Table(
        title=f"run {matrix['run']}: {metric} of each model on each site's holdout"
    )
    table.add_column("model", no_wrap=True)
    for site in sites:
        table.add_column(shown(site), justify="right")
    for m in models:
        table.add_row(m["model"], *(_num(m["sites"][s][metric], metric) for s in sites))
    return table


@evaluate_app.command("run")
def run_command(
    run: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or latest.")
    ],
    sites: Annotated[
        str | None, typer.Option(help="Comma-separated sites (default: all).")
    ] = None,
    rounds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated rounds whose global model to score, "
            "or 'final' (the default)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            exists=True,
            dir_okay=False,
            help="The federation's fed.toml (where its task and data are).",
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="SQLAlchemy URL of the store.")
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder of the default store.")
    ] = Path("accord-runs"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the matrix as JSON.")
    ] = False,
) -> None:
    """Score a run's global models on each site's holdout, without retraining."""
    with reported():
        matrix = _model_matrix(
            run,
            sites=sites,
            rounds=rounds,
            config=config,
            store=store,
            directory=directory,
        )
    if as_json:
        typer.echo(dumps(matrix))
        return
    out = Console()
    out.width = max(out.width, 132)
    out.print(_matrix_table(matrix))


def register(app: typer.Typer) -> None:
    """Add ``accord evaluate`` to the application."""
    app.add_typer(evaluate_app, name="evaluate")
