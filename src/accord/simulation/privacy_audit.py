"""``accord audit privacy``'s engine: membership inference on a simulated run.

A simulation's sites are rebuilt from the run's own recorded configuration (the
partition is deterministic in its seed, :mod:`accord.data.federation`), checked
against the data digest the run recorded when it started, and the run's final model
(its last completed round's checkpoint, verified against the digest the store
recorded for that round) is attacked at each site with
:func:`accord.privacy.audit.audit_site`: the site's training rows are the members,
its holdout rows the non-members. Each site's (ε, δ) is what the run recorded up
to that round: the site's own at record level, the federation's at participant
level (a guarantee for a whole site covers each of its records), none (ε = ∞)
without DP.

Nothing is written: the audit reads the store and the checkpoint only. A deployed
run's sites keep their data to themselves; this engine audits simulations.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.resume import check_same_config
from accord.data.digest import EVENT_KIND, data_digest
from accord.errors import ConfigError, DatasetError, StoreError
from accord.params import Params
from accord.privacy.audit import (
    DEFAULT_SHADOWS,
    MIN_ROWS,
    AttackResult,
    ShadowTraining,
    SiteAudit,
    audit_site,
    pooled,
)
from accord.records import RoundRecord
from accord.simulation.context import build_context
from accord.store.checkpoint import CheckpointStore
from accord.store.protocol import RunStore

__all__ = ["RunAudit", "audit_run"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunAudit:
    """Every audited site's result, the attacks over all of them, and the setting."""

    run_id: str
    round: int
    level: str
    sites: tuple[SiteAudit, ...]
    overall: Mapping[str, AttackResult]
    shadows: int
    seed: int
    #: The run's largest ε over the audited sites (∞ without DP) and its δ.
    epsilon: float = math.inf
    delta: float = 0.0
    skipped: Mapping[str, str] = field(default_factory=dict)


def _final_model(
    store: RunStore, run_id: str, checkpoints: CheckpointStore
) -> tuple[RoundRecord, Params]:
    last = store.last_completed_round(run_id)
    if last is None:
        raise StoreError(
            f"run {run_id} has no completed round, so no model to audit; audit a run "
            "that trained at least one round"
        )
    path = checkpoints.path(run_id, last.number)
    if not path.is_file() and last.checkpoint:
        path = Path(last.checkpoint)  # the run kept them somewhere else
    if not path.is_file():
        raise StoreError(
            f"the checkpoint of round {last.number} of run {run_id} is not at {path}; "
            "pass --dir with the folder the run's store and checkpoints are in "
            "(the run needs [store] checkpoints = true)"
        )
    params = checkpoints.load(path)
    if params.digest() != last.global_digest:
        raise StoreError(
            f"checkpoint {path} is not the model the store recorded for round "
            f"{last.number} of run {run_id}; restore that round's checkpoint"
        )
    return last, params


def _check_data(store: RunStore, run_id: str, config: FedConfig) -> None:
    recorded = [e for e in store.events(run_id) if e.kind == EVENT_KIND]
    if not recorded:
        logger.warning(
            "run %s recorded no data digest; its data is not checked", run_id
        )
        return
    then = json.loads(recorded[0].detail)
    now = data_digest(config)
    if then.get("dataset") != now.get("dataset") or then.get("sha256") != now.get(
        "sha256"
    ):
        raise DatasetError(
            f"the data of run {run_id} changed since it ran (now {now.get('dataset')!r}"
            f"{', ' + str(now['path']) if 'path' in now else ''}): its members and "
            "non-members cannot be rebuilt; audit it with the data it trained on"
        )


def _privacy(
    rounds: Sequence[RoundRecord], upto: int
) -> tuple[str, dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """The level, each account's latest (ε, δ), each site's DP-SGD (z, clip)."""
    level, spent, mechanism = "off", {}, {}
    for record in rounds:
        if record.number > upto:
            break
        for p in record.privacy:
            level = p.level
            key = p.participant or "*"
            spent[key] = (p.epsilon, p.delta)
            if p.level == "record" and p.participant and p.clip is not None:
                mechanism[p.participant] = (p.noise_multiplier, p.clip)
    return level, spent, mechanism


def _passes(rounds: Sequence[RoundRecord], site: str, upto: int) -> int:
    trained = sum(
        1
        for r in rounds
        if r.number <= upto and r.status == "completed"
        for o in r.outcomes
        if o.participant == site and o.status == "ok"
    )
    return max(1, trained)


def _config(
    stored: Mapping[str, Any], run_id: str, base_dir: Path, current: FedConfig | None
) -> FedConfig:
    if current is not None:
        check_same_config(run_id, stored, current.to_json_dict())
    config = config_from_mapping(stored, base_dir=base_dir)
    # The sites' own policies guard training against their ledgers: the audit's
    # shadow models are the auditor's, and must not spend a site's budget.
    return config.model_copy(
        update={"privacy": config.privacy.model_copy(update={"sites": {}})}
    )


def audit_run(
    store: RunStore,
    run_id: str,
    *,
    checkpoints: CheckpointStore,
    base_dir: Path,
    current: FedConfig | None = None,
    sites: Sequence[str] = (),
    shadows: int = DEFAULT_SHADOWS,
    seed: int = 0,
    on_site: Callable[[str], None] | None = None,
) -> RunAudit:
    """Attack the final model of ``run_id`` at each site (``sites``: only these).

    ``base_dir`` resolves the run's task module and data files (the folder of its
    fed.toml); ``current``, the fed.toml as loaded now, must match the run's.
    """
    info = store.get_run(run_id)
    config = _config(info.config, run_id, base_dir, current)
    last, params = _final_model(store, run_id, checkpoints)
    _check_data(store, run_id, config)
    ctx = build_context(config)
    names = list(sites) or list(ctx.participants)
    unknown = sorted(set(names) - set(ctx.participants))
    if unknown:
        raise ConfigError(
            f"run {run_id} has no site {', '.join(unknown)}; its sites are "
            f"{', '.join(ctx.participants)}",
            key="--site",
        )
    rounds = store.rounds(run_id)
    level, spent, mechanism = _privacy(rounds, last.number)
    delta = config.privacy.delta if level != "off" else 0.0
    results, skipped = [], {}
    for index, name in enumerate(names):
        if on_site is not None:
            on_site(name)
        eps, dlt = spent.get(name, spent.get("*", (math.inf, delta)))
        if level == "record" and name not in spent:
            eps, dlt = 0.0, delta  # the site never trained: its rows were not used
        site = ctx.site(name)
        training = ShadowTraining(
            epochs=config.train.epochs,
            batch_size=config.train.batch_size,
            learning_rate=config.train.learning_rate,
            passes=_passes(rounds, name, last.number),
            options=dict(config.train.options),
            dp=mechanism.get(name) if level == "record" else None,
        )
        if min(len(site.train), len(site.holdout)) < MIN_ROWS:
            skipped[name] = (
                f"{len(site.train)} training and {len(site.holdout)} holdout rows; "
                f"an audit needs {MIN_ROWS} of each (raise data.holdout_fraction)"
            )
            logger.warning("site %s not audited: %s", name, skipped[name])
            continue
        results.append(
            audit_site(
                ctx.task,
                params,
                site=name,
                members=site.train,
                nonmembers=site.holdout,
                training=training,
                epsilon=eps,
                delta=dlt,
                shadows=shadows,
                seed=seed + index,
            )
        )
    if not results:
        raise DatasetError(
            f"no site of run {run_id} could be audited: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    return RunAudit(
        run_id=run_id,
        round=last.number,
        level=level,
        sites=tuple(results),
        overall=pooled(results),
        shadows=shadows,
        seed=seed,
        epsilon=max(r.epsilon for r in results),
        delta=max(r.delta for r in results),
        skipped=skipped,
    )
