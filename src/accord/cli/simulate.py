"""``accord simulate`` and ``accord demo``: run a federation on this machine.

Ctrl-C (or SIGTERM, which :mod:`accord.cli.main` turns into the same interrupt)
stops a simulation after its last recorded round: the round loop marks the run
aborted, the workers (which ignore SIGINT) are stopped, and the command prints the
run's id and the exact command that resumes it (``accord simulate fed.toml
[--rounds N --seed S --store URL] --resume RUN_ID``) on stderr, then exits 130.
Nothing of a completed round is lost; an interrupted run resumed gives the model of
an uninterrupted one.

``accord simulate fed.toml --resume RUN_ID`` continues a run that stopped (killed,
interrupted, aborted) after its last recorded round, under the same id;
``--resume auto`` finds that run itself with the coordinator's rule
(:mod:`accord.coordinator.resumable`: the federation's run left ``running``, else
its newest run if ``aborted``; a new run if neither; an error listing the ids if
several are left running). The run's stored configuration is the reference:
fed.toml, with the same overrides, must describe the same federation, or the
command stops and lists what differs. Only ``[simulation]`` and ``[store]`` may
change (more workers, a moved store), since they do not change the model. Refusing
is safer than silently taking the stored config: a fed.toml edited since is a
mistake to show, not to ignore. The same holds for the data: a run records its
data's digest when it starts (:mod:`accord.data.digest`), and a resume after the
CSV changed is refused, naming the file (exit code 2).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from accord.cli.errors import reported
from accord.cli.ledger_setup import simulation_ledger
from accord.cli.output import comparison_table, dumps, run_json
from accord.cli.progress import ProgressObserver
from accord.cli.text import shown
from accord.config import FedConfig, load_config
from accord.coordinator.resumable import interrupted_run
from accord.coordinator.summary import untrained
from accord.errors import AccordError, ConfigError, RunAborted
from accord.simulation.engine import SimulationResult, simulate
from accord.store import CheckpointStore, RunStore, open_store

__all__ = ["register"]

logger = logging.getLogger(__name__)

_WORKERS = typer.Option(
    None, "--workers", "-w", help="Worker processes; 0 runs in-process."
)
_ENGINE = typer.Option(
    None,
    "--engine",
    help='Override simulation.engine: "process" (worker processes) or "ray" '
    "(Ray actors, needs the ray extra).",
)
_ROUNDS = typer.Option(None, "--rounds", "-r", help="Override federation.rounds.")
_SEED = typer.Option(None, "--seed", help="Override federation.seed.")
_STORE = typer.Option(
    None,
    "--store",
    help="SQLAlchemy URL of the store (default: SQLite in store.directory).",
)
_CONFIG = typer.Argument(..., exists=True, dir_okay=False, help="fed.toml")
_RESUME = typer.Option(
    None,
    "--resume",
    metavar="RUN_ID|auto",
    help="Continue this run after its last recorded round (same fed.toml and "
    "options); auto: this federation's interrupted run, else a new run.",
)
_JSON = typer.Option(
    False, "--json", help="Print one JSON document instead of progress."
)


def _overrides(
    workers: int | None,
    rounds: int | None,
    seed: int | None,
    store: str | None,
    engine: str | None = None,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if workers is not None or engine is not None:
        sim: dict[str, Any] = {}
        if workers is not None:
            sim["workers"] = workers
        if engine is not None:
            sim["engine"] = engine
        out["simulation"] = sim
    if rounds is not None or seed is not None:
        fed: dict[str, Any] = {}
        if rounds is not None:
            fed["rounds"] = rounds
        if seed is not None:
            fed["seed"] = seed
        out["federation"] = fed
    if store is not None:
        out["store"] = {"url": store}
    return out


def _run(
    config: FedConfig,
    *,
    as_json: bool,
    resume: str | None = None,
    command: Sequence[str] = (),
) -> SimulationResult:
    """Run (or resume) the simulation; on Ctrl-C, say which run to resume and how.

    ``command`` is the ``accord simulate`` command line that describes this
    federation (fed.toml and the options that change it), for the resume hint.
    """
    directory = Path(config.store.directory)
    store = open_store(config.store.url, default_dir=directory)
    checkpoints = directory / "checkpoints" if config.store.checkpoints else None
    console = Console(stderr=as_json, quiet=as_json)
    started: list[str] = []  # the run's id, once the engine knows it
    try:
        with ExitStack() as lease:
            if checkpoints is not None:  # before a run is created, not after round 1
                CheckpointStore(checkpoints).check_writable()
            if resume == "auto":
                resume = _auto(store, config, lease)
            result = _with_progress(
                config,
                store,
                console,
                checkpoints=checkpoints,
                resume=resume,
                on_run=started.append,
            )
    except KeyboardInterrupt:
        _say_interrupted(store, config, started, command)
        raise
    finally:
        store.close()
    if as_json:
        typer.echo(dumps(_as_json(result)))
    else:
        _print_results(console, config, result)
    return result


def _with_progress(
    config: FedConfig,
    store: RunStore,
    console: Console,
    *,
    checkpoints: Path | None,
    resume: str | None,
    on_run: Callable[[str], None],
) -> SimulationResult:
    """The simulation, drawing a progress bar per round and for the baselines."""
    done = len(store.rounds(resume)) if resume is not None else 0
    with ProgressObserver(
        console,
        rounds=max(config.federation.rounds - done, 0),
        metric=config.evaluation.metric,
    ) as observer:
        n_baselines = config.data.sites + 1 if config.evaluation.baselines else 0

        def on_baseline(name: str) -> None:
            if name == "pooled":
                observer.finish_baselines(n_baselines)
            observer.baseline_done(name)

        return simulate(
            config,
            store=store,
            checkpoint_dir=checkpoints,
            observer=observer,
            on_baseline=on_baseline,
            resume=resume,
            on_run=on_run,
            ledger=simulation_ledger(config),
        )


def _auto(store: RunStore, config: FedConfig, lease: ExitStack) -> str | None:
    """``--resume auto``: the federation's interrupted run, leased; None: a new one.

    The coordinator's rule (:mod:`accord.coordinator.resumable`).
    """
    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(shown(text))

    found = interrupted_run(store, config.federation.name, lease, say)
    if found is None:
        say(
            f"no interrupted run of {config.federation.name!r} to resume; "
            "starting a new one"
        )
    else:
        say(f"resuming run {found} after round {len(store.rounds(found))}")
    return found


def _say_interrupted(
    store: RunStore, config: FedConfig, started: list[str], command: Sequence[str]
) -> None:
    """On stderr: the interrupted run, what the store kept, how to resume it."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if not started:
        err.print("\ninterrupted before the run started; nothing was recorded")
        return
    if not command:  # accord demo: a new run each time
        err.print(f"\ninterrupted: run {started[0]} stopped", markup=False)
        return
    run_id = started[0]
    try:
        rounds = len(store.rounds(run_id))
        kept = f"{rounds} of {config.federation.rounds} rounds recorded, marked "
        kept += store.get_run(run_id).status
    except AccordError as exc:  # the store may be why it stopped: still say the id
        logger.warning("could not read run %s back: %s", run_id, exc)
        kept = "its recorded rounds are kept"
    err.print(
        f"\ninterrupted: run {run_id} stopped ({kept}). Resume it with:", markup=False
    )
    err.print("  " + shlex.join(["accord", *command, "--resume", run_id]), markup=False)


def _as_json(result: SimulationResult) -> dict[str, Any]:
    comparison = result.comparison.to_dict() if result.comparison else None
    return {**run_json(result.run), "comparison": comparison}


def _print_results(
    console: Console, config: FedConfig, result: SimulationResult
) -> None:
    run = result.run
    done = sum(1 for r in run.rounds if r.status == "completed")
    console.print(
        f"\nrun [bold]{run.run_id}[/]: {done}/{len(run.rounds)} rounds completed; "
        f"final model {run.params.digest()[:16]}"
    )
    if run.stopped is not None:  # exit 0: the budget did what it was set to do
        console.print(f"[yellow]stopped:[/] {shown(run.stopped)}", highlight=False)
    if result.comparison is not None:
        console.print(comparison_table(result.comparison))


def simulate_command(
    config: Path = _CONFIG,
    workers: int | None = _WORKERS,
    rounds: int | None = _ROUNDS,
    seed: int | None = _SEED,
    store: str | None = _STORE,
    resume: str | None = _RESUME,
    as_json: bool = _JSON,
    engine: str | None = _ENGINE,
) -> None:
    """Run the federation described by a fed.toml on this machine.

    Ctrl-C stops it after its last recorded round, prints the run's id and the
    command that resumes it, and exits 130; ``--resume auto`` continues that run.
    """
    with reported():
        cfg = load_config(config, **_overrides(workers, rounds, seed, store, engine))
        if cfg.model.kind == "gbdt":
            from accord.cli.trees import run_trees

            if rounds is not None:  # one tree per round: --rounds sets the trees
                more = {
                    **_overrides(workers, rounds, seed, store, engine),
                    "trees": {"trees": rounds},
                }
                cfg = load_config(config, **more)
            run_trees(cfg, as_json=as_json, resume=resume)
            return
        command = _command(config, rounds=rounds, seed=seed, store=store)
        result = _run(cfg, as_json=as_json, resume=resume, command=command)
        if (reason := untrained(result.run)) is not None:
            raise RunAborted(f"run {result.run.run_id} failed: {reason}")


def _command(
    config: Path, *, rounds: int | None, seed: int | None, store: str | None
) -> list[str]:
    """``simulate FED.TOML`` with the options that make it this federation."""
    out = ["simulate", str(config)]
    for option, value in (("--rounds", rounds), ("--seed", seed), ("--store", store)):
        if value is not None:
            out += [option, str(value)]
    return out


_MODEL = typer.Option(
    "logreg",
    "--model",
    help="logreg: logistic regression by federated averaging; gbdt: "
    "gradient-boosted trees from summed histograms (compared with pooled XGBoost).",
)
_DEMOS = {"logreg": "covid.toml", "gbdt": "covid_gbdt.toml"}


def demo_command(
    workers: int | None = _WORKERS,
    store: str | None = _STORE,
    as_json: bool = _JSON,
    model: str = _MODEL,
) -> None:
    """Federate COVID-19 test results across hospital clinics, then compare."""
    with reported():
        if model not in _DEMOS:
            raise ConfigError(
                f"is {model!r}; choose one of {', '.join(_DEMOS)}", key="--model"
            )
        demo = resources.files("accord.demo").joinpath(_DEMOS[model])
        with resources.as_file(demo) as path:
            cfg = load_config(path, **_overrides(workers, None, None, store))
        if cfg.model.kind == "gbdt":
            from accord.cli.trees import run_trees

            run_trees(cfg, as_json=as_json, resume=None)
            return
        _run(cfg, as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add the commands to the application."""
    app.command("simulate")(simulate_command)
    app.command("demo")(demo_command)
