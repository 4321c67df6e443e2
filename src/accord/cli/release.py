"""``accord release RUN -o model.safetensors``: write the model only if its gates pass.

The gates are ``[gates]`` of the run's configuration, or of ``--config fed.toml``
when given (the file must describe the same federation: ``[federation]``,
``[data]``, ``[task]`` and ``[evaluation]`` as the run recorded them; only the
gates may differ). Fairness gates need the per-group counts, which are computed
by scoring the run's final model on each simulated site's holdout
(:mod:`accord.simulation.holdouts`), and summed securely when the run used secure
aggregation (:mod:`accord.simulation.fair_sum`: only the sum is recorded). The
decision is recorded as a ``release`` run event and, when the run keeps a ledger,
a signed ``release`` entry after its closing entry (signed with the store's
simulation key, or with ``--pki DIR`` for a deployed run). Exit 0 and the file
written when every gate passes; 7 with each failed gate named, and no file,
otherwise (see :mod:`accord.cli.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.output import dumps
from accord.cli.text import shown
from accord.config import FedConfig, StoreConfig, config_from_mapping, load_config
from accord.errors import ConfigError, LedgerError, ReleaseRefused, StoreError
from accord.params import Params
from accord.records import MetricValue
from accord.store.protocol import RunStore

if TYPE_CHECKING:
    from accord.evaluation.fairness import FairnessReport
    from accord.evaluation.release import ReleaseDecision
    from accord.ledger.writer import LedgerSigner

__all__ = ["FinalModel", "final_model", "gates_table", "register", "run_config"]

_STORE = typer.Option(
    None, "--store", help="SQLAlchemy URL (default: the local store)."
)
_DIR = typer.Option(Path("accord-runs"), "--dir", help="Folder of the default store.")
_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    exists=True,
    dir_okay=False,
    help="The federation's fed.toml (for its task, data and, if changed, gates).",
)
#: Sections a --config file must share with the run it is used for.
_SAME = ("federation", "data", "task", "evaluation")


def run_config(stored: dict[str, object], path: Path | None) -> FedConfig:
    """The run's configuration, or ``path``'s if it describes the same federation.

    A run of gradient-boosted trees is refused: its model is an XGBoost JSON
    file, which the commands that take this configuration do not load yet.
    """
    model = stored.get("model")
    if isinstance(model, dict) and model.get("kind") == "gbdt":
        raise ConfigError(
            "this run grew gradient-boosted trees; its model is the XGBoost JSON "
            "file its summary names (`accord runs show RUN --json`), which this "
            "command does not evaluate or release yet (docs/trees.md, section 6)",
            key="model.kind",
        )
    if path is None:
        return config_from_mapping(stored, base_dir=".")
    cfg = load_config(path)
    mine = cfg.to_json_dict()
    differ = [s for s in _SAME if mine.get(s) != stored.get(s)]
    if differ:
        raise ConfigError(
            f"{path} is not this run's federation: its [{'], ['.join(differ)}] "
            "differ from what the run recorded; pass the fed.toml the run was "
            "started with"
        )
    return cfg


@dataclass(frozen=True, slots=True)
class FinalModel:
    """A run's final model: its checkpoint file, parameters and digest."""

    path: Path
    params: Params
    digest: str


def final_model(store: RunStore, run_id: str) -> FinalModel:
    """The checkpoint of the run's last completed round, verified on load."""
    from accord.store.checkpoint import CheckpointStore

    last = store.last_completed_round(run_id)
    if last is None:
        raise StoreError(f"run {run_id} completed no round: it has no model")
    if last.checkpoint is None:
        raise StoreError(
            f"run {run_id} kept no checkpoint of round {last.number} ([store] "
            "checkpoints = false): there is no model file to evaluate or release"
        )
    path = Path(last.checkpoint)
    params = CheckpointStore(path.parent).load(path)
    named = {f"round {last.number}'s record": last.global_digest}
    closed = _closing_model(store, run_id)
    if closed is not None:
        named["the ledger's run-closed entry"] = closed
    for where, digest in named.items():
        if not params.matches(digest):
            raise StoreError(
                f"{path} holds model {params.digest()[:16]}…, but {where} names "
                f"{digest[:16]}… as run {run_id}'s final model: the checkpoint was "
                "replaced or the record altered; restore the run's own checkpoint "
                "before releasing"
            )
    return FinalModel(path, params, params.digest())


def _closing_model(store: RunStore, run_id: str) -> str | None:
    """The final model the run's ledger names, if its last opening was closed."""
    from accord.ledger.dsse import Envelope
    from accord.ledger.statement import parse_statement

    for entry in reversed(store.ledger(run_id)):
        if entry.kind in ("run-opened", "run-resumed"):
            return None  # running again since its last closing
        if entry.kind == "run-closed":
            statement = parse_statement(Envelope.from_json(entry.envelope).payload)
            model = statement.predicate.get("model")
            return model if isinstance(model, str) else None
    return None


def _announced(store: RunStore, run_id: str) -> str | None:
    """The key id the run's last opening (or resuming) entry names as its signer."""
    from accord.ledger.dsse import Envelope
    from accord.ledger.statement import parse_statement

    opening = [
        e for e in store.ledger(run_id) if e.kind in ("run-opened", "run-resumed")
    ]
    if not opening:
        return None
    statement = parse_statement(Envelope.from_json(opening[-1].envelope).payload)
    signer = statement.predicate.get("signer")
    keyid = signer.get("keyid") if isinstance(signer, dict) else None
    return keyid if isinstance(keyid, str) else None


def _signer(
    store: RunStore, run_id: str, cfg: FedConfig, pki: Path | None
) -> LedgerSigner | None:
    """Who signs the release entry: the run's own signer, or None (no ledger)."""
    from accord.cli.ledger_setup import key_folder
    from accord.ledger.writer import (
        SIMULATION_KEY,
        certificate_signer,
        simulation_signer,
    )

    announced = _announced(store, run_id)
    if announced is None:
        return None
    if pki is not None:
        try:
            signer = certificate_signer(
                (pki / "key.pem").read_bytes(), (pki / "cert.pem").read_bytes()
            )
        except OSError as exc:
            raise LedgerError(
                f"cannot read the coordinator's key.pem and cert.pem in {pki}: "
                f"{exc.strerror or exc}"
            ) from exc
    else:
        folder = key_folder(cfg)
        if folder is None or not (folder / SIMULATION_KEY).is_file():
            raise LedgerError(
                f"run {run_id} keeps a ledger, but its store has no {SIMULATION_KEY} "
                "to sign the release with; a deployed run's is signed with the "
                "coordinator's certificate: pass --pki DIR"
            )
        signer = simulation_signer(folder)
    if signer.signer.keyid != announced:
        raise LedgerError(
            f"run {run_id}'s ledger is signed by {announced[:16]}…, not by "
            f"{signer.signer.keyid[:16]}…: release it with the key that signed the "
            "run (the store's own folder, or the coordinator's --pki DIR)"
        )
    return signer


def _fairness(
    cfg: FedConfig,
    model: FinalModel,
    recorded: Sequence[MetricValue],
    secure_sum: str | None = None,
) -> FairnessReport | None:
    """The fairness report of the final model, if a gate needs one.

    ``recorded`` are the final round's metrics: a deployed run's counts are
    there (summed as the ``federated`` scope; under secure aggregation by the
    round's secure sum, whose record is ``secure_sum``); a simulated run's are
    counted now, securely under secure aggregation.
    """
    if not cfg.gates.fairness:
        return None
    from accord.evaluation.fairness import fairness_report, sum_counts
    from accord.evaluation.group_sums import counts_from_metrics
    from accord.simulation.holdouts import score_sites

    counts = counts_from_metrics(
        {m.name: m.value for m in recorded if m.scope == "federated"}
    )
    if not counts and secure_sum is not None:
        raise ConfigError(
            "the final round's per-group counts were not summed securely, so the "
            f"fairness gates cannot be judged: {_why_not_summed(secure_sum)}; see "
            "`accord runs show RUN`, and run again with every site online"
        )
    if not counts and cfg.secure_aggregation.mode != "off":
        from accord.simulation.fair_sum import secure_group_counts

        counts = secure_group_counts(cfg, model.params)
    elif not counts:
        counts = sum_counts(
            s.groups for s in score_sites(cfg, model.params, fairness=True)
        )
    column = cfg.evaluation.sensitive
    assert column is not None  # a fairness gate needs it (config check)
    return fairness_report(
        counts,
        column=column,
        threshold=cfg.evaluation.decision_threshold,
    )


def _why_not_summed(detail: str) -> str:
    """The reason a round's secure fairness sum recorded for not closing."""
    try:
        reason = json.loads(detail).get("reason")
    except (ValueError, AttributeError):
        reason = None
    return str(reason) if reason else "no reason recorded"


def _secure_sum(db: RunStore, run_id: str, number: int | None) -> str | None:
    """The record of round ``number``'s secure fairness sum (None: it had none)."""
    if number is None:
        return None
    from accord.coordinator.group_sum import EVENT_KIND

    found = [
        e.detail
        for e in db.events(run_id)
        if e.kind == EVENT_KIND and e.round == number
    ]
    return found[-1] if found else None


def gates_table(decision: ReleaseDecision) -> Table:
    """One row per gate: pass or fail, figure, bound and reason."""
    table = Table(title=f"release gates of run {decision.run_id}")
    for col in ("gate", "result", "reason"):
        table.add_column(col)
    for r in decision.results:
        mark = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
        table.add_row(shown(r.name), mark, shown(r.reason))
    return table


def release_command(
    run: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or latest.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model file to write.")
    ],
    config: Path | None = _CONFIG,
    pki: Annotated[
        Path | None,
        typer.Option(
            "--pki", help="The coordinator's folder (key.pem, cert.pem): deployed runs."
        ),
    ] = None,
    store: str | None = _STORE,
    directory: Path = _DIR,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the decision as JSON.")
    ] = False,
) -> None:
    """Judge the run's final model by its [gates]; write it only if all pass."""
    from accord.cli.runs import resolve_run
    from accord.evaluation.release import release_model
    from accord.store import open_store

    with reported():
        db = open_store(store, default_dir=directory)
        try:
            run_id = resolve_run(db, run)
            cfg = run_config(dict(db.get_run(run_id).config), config)
            keys = cfg.model_copy(
                update={"store": StoreConfig(url=store, directory=str(directory))}
            )
            signer = _signer(db, run_id, keys, pki)
            model = final_model(db, run_id)
            last = db.last_completed_round(run_id)
            recorded = last.metrics if last is not None else []
            decision = release_model(
                db,
                run_id,
                checkpoint=model.path,
                model=model.digest,
                gates=cfg.gates,
                metric=cfg.evaluation.metric,
                output=output,
                signer=signer,
                fairness=_fairness(
                    cfg,
                    model,
                    recorded,
                    _secure_sum(db, run_id, last.number if last else None),
                ),
            )
        finally:
            db.close()
        if as_json:
            typer.echo(dumps(decision.to_dict()))
        else:
            out = Console()
            out.width = max(out.width, 132)
            out.print(gates_table(decision))
        if not decision.passed:
            failed = tuple(
                f"{r.name}: {r.reason}" for r in decision.results if not r.passed
            )
            raise ReleaseRefused(run_id, failed)
    Console(stderr=True).print(
        f"released run {run_id}'s model {decision.model[:16]}… to "
        f"{shown(str(output))} (sha256 {decision.output_sha256})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``accord release`` to the application."""
    app.command("release")(release_command)
