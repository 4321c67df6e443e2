"""``accord audit privacy RUN``: membership inference against a run's final model.

At each site of a simulated run (or only ``--site NAME ...``), the loss-threshold
attack and offline LiRA with ``--shadows`` shadow models
(:mod:`accord.simulation.privacy_audit`) try to tell the site's training rows from
its holdout rows. The table gives each attack's AUC and TPR at FPR 0.1 % and 1 %
per site and over all audited sites, beside the most any attack can reach under the
(ε, δ) the run recorded for that site; ``--json`` prints one document instead.
``--config fed.toml``: the run's fed.toml, whose folder holds its task module and
data files (without it they are looked up from the current folder); it must be
the configuration the run was started with.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from accord.cli.errors import reported
from accord.cli.text import shown

__all__ = ["attack_table", "as_document", "privacy_command", "site_document"]


def privacy_command(
    run: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or latest.")
    ],
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="Audit only this site (repeat for more)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The run's fed.toml: its folder resolves the task and data files.",
        ),
    ] = None,
    shadows: Annotated[
        int,
        typer.Option(
            "--shadows", min=0, help="LiRA's shadow models per site (0: loss only)."
        ),
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="The audit's own seed.")] = 0,
    store: Annotated[
        str | None,
        typer.Option("--store", help="SQLAlchemy URL (default: the local store)."),
    ] = None,
    directory: Annotated[
        Path,
        typer.Option("--dir", help="Folder of the default store and checkpoints."),
    ] = Path("accord-runs"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document.")
    ] = False,
) -> None:
    """Membership inference at each site against the run's final model."""
    from accord.cli.runs import resolve_run
    from accord.config import load_config
    from accord.errors import ConfigError
    from accord.simulation.privacy_audit import audit_run
    from accord.store import open_store
    from accord.store.checkpoint import CheckpointStore

    with reported():
        if shadows == 1:
            raise ConfigError("LiRA needs at least 2 shadows (or 0)", key="--shadows")
        current = None if config is None else load_config(config)
        base = Path.cwd() if config is None else config.resolve().parent
        err = Console(stderr=True, quiet=as_json, highlight=False)
        db = open_store(store, default_dir=directory)
        try:
            run_id = resolve_run(db, run)
            result = audit_run(
                db,
                run_id,
                checkpoints=CheckpointStore(directory / "checkpoints"),
                base_dir=base,
                current=current,
                sites=tuple(site or ()),
                shadows=shadows,
                seed=seed,
                on_site=lambda name: err.print(f"auditing {shown(name)} …"),
            )
        finally:
            db.close()
    if as_json:
        import json

        typer.echo(json.dumps(as_document(result), indent=2))
    else:
        _print(result)


def _num(value: float) -> float | None:
    """JSON has no infinity: ε = ∞ (no DP) is written as null."""
    return None if math.isinf(value) or math.isnan(value) else value


def _attacks(attacks: Any) -> dict[str, Any]:
    return {
        name: {
            "auc": r.auc,
            "tpr": {f"fpr_{f:g}": t for f, t in r.tpr.items()},
        }
        for name, r in attacks.items()
    }


def _bound(eps: float, delta: float) -> dict[str, Any]:
    from accord.privacy.audit import FPRS
    from accord.privacy.membership import dp_auc_bound, dp_tpr_bound

    return {
        "auc": dp_auc_bound(eps, delta),
        "tpr": {f"fpr_{f:g}": dp_tpr_bound(eps, delta, f) for f in FPRS},
    }


def site_document(s: Any) -> dict[str, Any]:
    """One site's :class:`~accord.privacy.audit.SiteAudit` as JSON data."""
    return {
        "site": s.site,
        "members": s.members,
        "nonmembers": s.nonmembers,
        "epsilon": _num(s.epsilon),
        "delta": s.delta,
        "attacks": _attacks(s.attacks),
        "bound": _bound(s.epsilon, s.delta),
    }


def as_document(result: Any) -> dict[str, Any]:
    """The audit as JSON data (the ``--json`` output)."""
    return {
        "run_id": result.run_id,
        "round": result.round,
        "level": result.level,
        "shadows": result.shadows,
        "seed": result.seed,
        "epsilon": _num(result.epsilon),
        "delta": result.delta,
        "sites": [site_document(s) for s in result.sites],
        "overall": {
            "members": sum(s.members for s in result.sites),
            "nonmembers": sum(s.nonmembers for s in result.sites),
            "attacks": _attacks(result.overall),
            "bound": _bound(result.epsilon, result.delta),
        },
        "skipped": dict(result.skipped),
    }


def attack_table(
    rows: list[tuple[str, int, float, float, Any]],
) -> Table:
    """Each ``(site, rows, ε, δ, attacks)``: AUC and TPRs beside their bounds."""
    from accord.privacy.audit import FPRS
    from accord.privacy.membership import dp_auc_bound, dp_tpr_bound

    table = Table("site", "rows", "ε", "attack", "AUC", "≤", box=None)
    for column in table.columns:
        column.no_wrap = True
    for f in FPRS:
        table.add_column(f"TPR@{f * 100:g}%", no_wrap=True)
        table.add_column("≤", no_wrap=True)

    for name, n, eps, delta, attacks in rows:
        for i, (attack, r) in enumerate(attacks.items()):
            cells = [
                shown(name) if i == 0 else "",
                str(n) if i == 0 else "",
                ("∞" if math.isinf(eps) else f"{eps:.3g}") if i == 0 else "",
                shown(attack),
                f"{r.auc:.3f}",
                f"{dp_auc_bound(eps, delta):.3f}",
            ]
            for f in FPRS:
                cells += [f"{r.tpr[f]:.3f}", f"{dp_tpr_bound(eps, delta, f):.3f}"]
            table.add_row(*cells)
    return table


def _print(result: Any) -> None:
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"run {result.run_id}: membership inference against the model of round "
        f"{result.round} (DP {result.level}; LiRA offline, {result.shadows} shadows)"
    )
    rows = [
        (s.site, s.members + s.nonmembers, s.epsilon, s.delta, s.attacks)
        for s in result.sites
    ]
    total = sum(s.members + s.nonmembers for s in result.sites)
    rows.append(("all", total, result.epsilon, result.delta, result.overall))
    out.print(attack_table(rows))
    out.print(
        "members: each site's training rows; non-members: its holdout rows, as "
        "many of each. '≤': the most any attack can reach under the site's "
        "(ε, δ) (TPR ≤ e^ε·FPR + δ); AUC 0.5 is guessing."
    )
    for name, why in result.skipped.items():
        out.print(f"not audited: {shown(name)}: {shown(why)}")
