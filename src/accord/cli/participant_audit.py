"""``accord participant audit-privacy``: a site audits a released model by itself.

The site's privacy officer runs the membership-inference audit of ``accord audit
privacy`` at the site, against the model the federation released (``--model``, a
file from ``accord release``), with the site's own data (``--data`` and
``--data-option`` as for ``accord participant``) and its own records: the privacy
ledger and the site log in ``--identity`` (or ``--privacy-ledger``,
``--site-log``). No coordinator, store or other site is needed
(:mod:`accord.participant.privacy_audit` says where each input comes from). The
table gives each attack's AUC and TPR at FPR 0.1 % and 1 % beside the most any
attack can reach under the epsilon the site's ledger records for the model's run;
``--json`` prints one document instead. With the same ``--shadows`` and
``--seed`` the figures are those ``accord audit privacy RUN --site NAME`` gives
for a simulated site.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from accord.cli.errors import reported
from accord.cli.text import shown
from accord.errors import ConfigError

if TYPE_CHECKING:
    from accord.participant.data import LocalData
    from accord.participant.privacy_audit import LocalAudit, TrainSettings
    from accord.participant.privacy_ledger import PrivacyLedger
    from accord.participant.table import SiteTable
    from accord.task.protocol import Task

__all__ = ["audit_privacy_command"]


def audit_privacy_command(
    model: Annotated[
        Path,
        typer.Option("--model", help="The released model (from `accord release`)."),
    ],
    data: Annotated[str, typer.Option("--data", help="csv:PATH or sim:FED.TOML#SITE.")],
    task: Annotated[
        str | None, typer.Option("--task", help="module:object of the task.")
    ] = None,
    data_option: Annotated[
        list[str] | None,
        typer.Option("--data-option", help="KEY=VALUE for csv data, e.g. target=y."),
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity",
            help="This site's folder: its privacy-ledger.json and site-log.jsonl.",
        ),
    ] = None,
    privacy_ledger: Annotated[
        Path | None,
        typer.Option("--privacy-ledger", help="This site's privacy ledger."),
    ] = None,
    site_log: Annotated[
        Path | None, typer.Option("--site-log", help="This site's site log.")
    ] = None,
    dp_delta: Annotated[
        float,
        typer.Option("--delta", help="The delta the site's ledger accounts at."),
    ] = 1e-5,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            min=1,
            help="Rounds this site trained the model for (default: its records).",
        ),
    ] = None,
    shadows: Annotated[
        int,
        typer.Option("--shadows", min=0, help="LiRA's shadow models (0: loss only)."),
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="The audit's own seed.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document.")
    ] = False,
) -> None:
    """Membership inference against a released model, with this site's own data."""
    from accord.cli.participant import parse_options
    from accord.data.digest import file_sha256
    from accord.participant.data import load_local_data
    from accord.participant.privacy_audit import (
        audit_released_model,
        audited_rows,
        model_run,
        run_history,
    )

    with reported():
        if shadows == 1:
            raise ConfigError("LiRA needs at least 2 shadows (or 0)", key="--shadows")
        ledger = _ledger(privacy_ledger, identity, dp_delta)
        log = site_log or (identity / "site-log.jsonl" if identity else None)
        if site_log is not None and not site_log.is_file():
            raise ConfigError(f"no site log at {site_log}", key="--site-log")
        entries = _entries(log)
        run_id, _ = model_run(model)
        history = run_history(entries, run_id)
        source = load_local_data(data, options=parse_options(data_option or []))
        csv = Path(data.removeprefix("csv:")) if data.startswith("csv:") else None
        rows = audited_rows(
            source, history, data_sha256=file_sha256(csv) if csv else None
        )
        err = Console(stderr=True, quiet=as_json, highlight=False)
        err.print(f"auditing {shown(rows.name)} against run {run_id}'s model …")
        result = audit_released_model(
            _task(rows, task),
            model,
            site=rows.name,
            members=rows.train,
            nonmembers=rows.holdout,
            history=history,
            ledger=ledger,
            fallback=_simulated_settings(data, source),
            rounds=rounds,
            shadows=shadows,
            seed=seed,
        )
    if as_json:
        from accord.cli.output import dumps

        typer.echo(dumps(as_document(result)))
    else:
        _print(result)


def _entries(log: Path | None) -> list[dict[str, Any]]:
    """The site log's entries (none without one); ConfigError if unreadable."""
    from accord.participant.sitelog import SiteLog

    if log is None or not log.is_file():
        return []
    try:
        return SiteLog.read(log)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the site log {log}: {exc}; pass the site log the "
            "participant wrote",
            key="--site-log",
        ) from None


def _ledger(
    path: Path | None, identity: Path | None, delta: float
) -> PrivacyLedger | None:
    """The site's privacy ledger if it keeps one (never created here)."""
    from accord.participant.privacy_ledger import LEDGER_FILE, PrivacyLedger

    if path is not None and not path.is_file():
        raise ConfigError(f"no privacy ledger at {path}", key="--privacy-ledger")
    where = path or (identity / LEDGER_FILE if identity is not None else None)
    if where is None or not where.is_file():
        return None
    if not 0 < delta < 1:
        raise ConfigError(f"must be in (0, 1), got {delta}", key="--delta")
    return PrivacyLedger(where, delta=delta)


def _task(rows: LocalData, reference: str | None) -> Task:
    """The task for the site's rows, without a simulated site's privacy guard.

    The guard would enter the shadows' training in the site's ledger: they are
    the auditor's, not the site's.
    """
    from accord.participant.data import build_task
    from accord.simulation.site_policy import GuardedTask

    built = build_task(rows, reference)
    return built.task if isinstance(built, GuardedTask) else built


def _simulated_settings(
    data: str, source: LocalData | SiteTable
) -> TrainSettings | None:
    """fed.toml's ``[train]`` for ``sim:`` data (a simulated site keeps no log)."""
    from accord.participant.data import LocalData
    from accord.participant.privacy_audit import TrainSettings

    if not isinstance(source, LocalData) or not data.startswith("sim:"):
        return None
    from accord.config import load_config

    train = load_config(data.removeprefix("sim:").rpartition("#")[0]).train
    return TrainSettings(
        epochs=train.epochs,
        batch_size=train.batch_size,
        learning_rate=train.learning_rate,
        options=dict(train.options),
    )


def as_document(result: LocalAudit) -> dict[str, Any]:
    """The audit as JSON data (the ``--json`` output)."""
    from accord.cli.privacy_audit import site_document

    dp = result.training.dp
    return {
        "run_id": result.run_id,
        "round": result.round,
        "shadows": result.audit.shadows,
        "seed": result.seed,
        "passes": result.passes,
        "dp_sgd": None if dp is None else {"noise_multiplier": dp[0], "clip": dp[1]},
        "privacy_ledger": result.ledger,
        **site_document(result.audit),
    }


def _print(result: LocalAudit) -> None:
    from accord.cli.privacy_audit import attack_table

    a = result.audit
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"{shown(a.site)}: membership inference against run {result.run_id}'s model of "
        f"round {result.round} (LiRA offline, {a.shadows} shadows trained here, "
        f"{result.passes} pass(es) each)"
    )
    out.print(
        attack_table(
            [(a.site, a.members + a.nonmembers, a.epsilon, a.delta, a.attacks)]
        )
    )
    if math.isinf(a.epsilon):
        where = shown(result.ledger) if result.ledger else "no privacy ledger"
        out.print(
            f"ε = ∞: {where} records no record-level DP of this site in run "
            f"{result.run_id}, so no attack is ruled out"
        )
    else:
        out.print(
            f"ε = {a.epsilon:.4g} at δ = {a.delta:g}, as {shown(result.ledger)} "
            f"records for run {result.run_id}"
        )
    out.print(
        "members: this site's training rows; non-members: its holdout rows, as "
        "many of each. '≤': the most any attack can reach under that (ε, δ) "
        "(TPR ≤ e^ε·FPR + δ); AUC 0.5 is guessing."
    )
