"""``accord simulate`` and ``accord demo --model gbdt`` for gradient-boosted trees.

The tree federation is grown in this process (:mod:`accord.simulation.trees`):
``--workers`` does not apply, and a run cannot be resumed yet (``--resume`` is
refused before anything starts). Progress is one bar over the trees; the end is
the run's id, the model file and, with baselines, the comparison table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from accord.cli.ledger_setup import simulation_ledger
from accord.cli.output import comparison_table, dumps
from accord.cli.text import shown
from accord.config import FedConfig
from accord.errors import ConfigError
from accord.simulation.trees import TreesRun, simulate_trees, tree_params
from accord.store import RunStore, open_store

__all__ = ["run_trees"]


def run_trees(config: FedConfig, *, as_json: bool, resume: str | None) -> TreesRun:
    """Run a gbdt federation, record it, print the outcome."""
    if resume is not None:
        raise ConfigError(
            "a gradient-boosted tree run cannot be resumed yet; run it again "
            "without --resume (its trees take seconds to minutes)",
            key="--resume",
        )
    directory = Path(config.store.directory)
    store = open_store(config.store.url, default_dir=directory)
    console = Console(stderr=as_json, quiet=as_json)
    metric = config.evaluation.metric
    started: list[str] = []
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        ) as progress:
            bar = progress.add_task("trees", total=tree_params(config).trees, status="")

            def on_tree(number: int, central: dict[str, float] | Any) -> None:
                value = central.get(metric, math.nan)
                status = f"central {metric} {value:.4f}" if central else ""
                progress.update(bar, completed=number, status=status)

            def on_baseline(name: str) -> None:
                progress.update(bar, description="baselines", status=shown(name))

            run = simulate_trees(
                config,
                store,
                model_dir=directory / "checkpoints",
                on_tree=on_tree,
                on_baseline=on_baseline,
                on_run=started.append,
                ledger=simulation_ledger(config),
            )
        if as_json:
            typer.echo(dumps(_as_json(store, run)))
        else:
            _print(console, run)
    except KeyboardInterrupt:
        said = f"run {started[0]} stopped, marked aborted" if started else "no run"
        Console(stderr=True, highlight=False).print(
            f"\ninterrupted: {said}; a gradient-boosted tree run cannot be "
            "resumed yet: start it again",
            markup=False,
        )
        raise
    finally:
        store.close()
    return run


def _as_json(store: RunStore, run: TreesRun) -> dict[str, Any]:
    rounds = []
    for r in store.rounds(run.run_id):
        metrics = {
            f"{m.scope}.{m.name}"
            if m.participant is None
            else f"{m.scope}.{m.participant}.{m.name}": m.value
            for m in r.metrics
        }
        rounds.append(
            {
                "number": r.number,
                "status": r.status,
                "selected": len(r.selected),
                "succeeded": sum(o.status == "ok" for o in r.outcomes),
                "global_digest": r.global_digest,
                "metrics": metrics,
            }
        )
    return {
        "run_id": run.run_id,
        "kind": "gbdt",
        "model": str(run.model_path),
        "trees": len(run.booster.trees),
        "secure_sums": run.secure_sums,
        "central": dict(run.central),
        "rounds": rounds,
        "comparison": run.comparison.to_dict() if run.comparison else None,
    }


def _print(console: Console, run: TreesRun) -> None:
    console.print(
        f"\nrun [bold]{run.run_id}[/]: {len(run.booster.trees)} trees grown; "
        f"model (XGBoost JSON) {shown(run.model_path)}",
        highlight=False,
    )
    if run.secure_sums:
        console.print(
            f"{run.secure_sums} histogram and sketch sums under secure aggregation: "
            "the coordinator saw only totals"
        )
    if run.comparison is not None:
        console.print(comparison_table(run.comparison))
