"""The attack x defence matrix: one seeded simulation per cell, all recorded.

``accord evaluate robustness fed.toml`` names attacks and defences; each cell is
``fed.toml`` with ``[attack]`` replaced by the cell's attack and
``[strategy] aggregation`` by the cell's rule, simulated with the file's seed, and
recorded in the store like any run (named ``<name>|<attack>|<defence>``). The
attack ``none`` is always run: it gives each defence's clean score. A cell's score
is the final central ``[evaluation] metric`` (accuracy, AUC or loss) of its run.

Names:

- an attack is an ``[attack] kind`` (``alie``, ``scaling``, ...), optionally with
  ``+backdoor`` (the trigger of ``[attack.backdoor]``, or its defaults): e.g.
  ``scaling+backdoor`` is Bagdasaryan et al.'s model replacement. Who is malicious,
  and every other attack parameter, come from the file's ``[attack]`` (without
  one: ``count = malicious``, 2 by default).
- a defence is an aggregation rule name as ``[strategy] aggregation`` accepts it
  (so rules added there work here unchanged), optionally with ``+quarantine``:
  scoring and quarantine as the file's ``[robustness]`` sets them, or
  :data:`DEFAULT_POLICY` if it sets no flag rule. Without it the same flag rules
  still score and flag every update (so that the table shows what detection
  would have caught), but nobody is quarantined.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from accord.config import FedConfig, config_from_mapping
from accord.errors import ConfigError, RunAborted
from accord.simulation.engine import simulate
from accord.store.protocol import RunStore

__all__ = ["DEFAULT_POLICY", "Cell", "cell_config", "run_matrix"]

logger = logging.getLogger(__name__)

#: ``+quarantine`` when fed.toml's ``[robustness]`` has no flag rule: a norm more
#: than 3.5 robust deviations out, or a near copy of another site's update,
#: flagged twice.
DEFAULT_POLICY: dict[str, Any] = {
    "max_norm_z": 3.5,
    "min_nearest_ratio": 0.05,
    "quarantine_after": 2,
}
NO_ATTACK = "none"


@dataclass(frozen=True, slots=True)
class Cell:
    """One simulated cell: its run and final central scores (NaN: not measured)."""

    attack: str
    defence: str
    run_id: str
    accuracy: float
    backdoor_success: float
    flagged_attackers: int
    flagged_honest: int
    #: Why the cell's run stopped before its last round (None: it completed).
    aborted: str | None = None
    #: ``[evaluation] metric`` and its final central value (the table's headline).
    metric: str = "accuracy"
    score: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain data (NaN kept as None by the JSON writer)."""
        return {
            "attack": self.attack,
            "defence": self.defence,
            "run_id": self.run_id,
            "accuracy": self.accuracy,
            "metric": self.metric,
            "score": self.score,
            "backdoor_success": self.backdoor_success,
            "flagged_attackers": self.flagged_attackers,
            "flagged_honest": self.flagged_honest,
            "aborted": self.aborted,
        }


def _attack_section(
    config: FedConfig, attack: str, malicious: int | None
) -> dict[str, Any] | None:
    if attack == NO_ATTACK:
        return None
    kind, plus, extra = attack.partition("+")
    if plus and extra != "backdoor":
        raise ConfigError(
            f"attack {attack!r}: the only suffix is '+backdoor' (e.g. "
            "scaling+backdoor)",
            key="--attacks",
        )
    base = config.attack
    section: dict[str, Any] = (
        base.model_dump(exclude_none=True) if base is not None else {}
    )
    if base is not None and not plus and kind != "backdoor":
        section.pop("backdoor", None)
    if malicious is not None or base is None:
        for key in ("sites", "count", "fraction"):
            section.pop(key, None)
        section["count"] = 2 if malicious is None else malicious
    section["kind"] = kind
    if (plus or kind == "backdoor") and "backdoor" not in section:
        section["backdoor"] = {}
    return section


def _robustness_section(config: FedConfig, quarantine: bool) -> dict[str, Any]:
    """The policy of ``+quarantine``; without it, its flag rules only (counted)."""
    own = config.robustness
    policy = own.model_dump(exclude_none=True) if own.flags else DEFAULT_POLICY
    section = {**policy, "scores": True}
    if not quarantine:
        section.pop("quarantine_after", None)
    return section


def cell_config(
    config: FedConfig, attack: str, defence: str, *, malicious: int | None = None
) -> FedConfig:
    """``config`` with the cell's attack and defence (ConfigError for a bad name)."""
    rule, plus, extra = defence.partition("+")
    if plus and extra != "quarantine":
        raise ConfigError(
            f"defence {defence!r}: the only suffix is '+quarantine' (e.g. "
            "median+quarantine)",
            key="--defences",
        )
    raw = config.model_dump(mode="json", exclude={"base_dir"})
    raw["federation"]["name"] = f"{config.federation.name}|{attack}|{defence}"[:100]
    raw["strategy"]["aggregation"] = rule
    raw["evaluation"]["baselines"] = False
    raw["robustness"] = _robustness_section(config, bool(plus))
    raw.pop("attack", None)
    section = _attack_section(config, attack, malicious)
    if section is not None:
        raw["attack"] = section
    return config_from_mapping(raw, base_dir=config.base_dir)


def _final(run_metrics: dict[str, float], name: str) -> float:
    value = run_metrics.get(f"central.{name}")
    return math.nan if value is None else float(value)


def run_matrix(
    config: FedConfig,
    *,
    attacks: Sequence[str],
    defences: Sequence[str],
    store: RunStore,
    malicious: int | None = None,
    on_cell: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Simulate every (attack, defence) cell, ``none`` first; the cells in order.

    Every cell's configuration is built (and checked) before the first runs, so
    a bad name fails at once, not an hour in.
    """
    names = [NO_ATTACK, *(a for a in attacks if a != NO_ATTACK)]
    plan = [
        (a, d, cell_config(config, a, d, malicious=malicious))
        for a in names
        for d in defences
    ]
    cells = []
    for attack, defence, cfg in plan:
        cell = _run_cell(attack, defence, cfg, store)
        cells.append(cell)
        if on_cell is not None:
            on_cell(cell)
    return cells


def _run_cell(attack: str, defence: str, cfg: FedConfig, store: RunStore) -> Cell:
    """Simulate one cell; a run that aborts is a cell with its reason, not an end."""
    try:
        done = simulate(cfg, store=store)
    except RunAborted as exc:
        run_id = next(
            r.run_id for r in store.list_runs() if r.name == cfg.federation.name
        )
        logger.warning("cell %s x %s aborted: %s", attack, defence, exc)
        return Cell(
            attack,
            defence,
            run_id,
            math.nan,
            math.nan,
            0,
            0,
            aborted=str(exc),
            metric=cfg.evaluation.metric,
        )
    final: dict[str, float] = {}
    for summary in reversed(done.run.rounds):
        if summary.status == "completed":
            final = dict(summary.metrics)
            break
    bad, honest = _flag_counts(store, done.run.run_id, done.malicious)
    return Cell(
        attack=attack,
        defence=defence,
        run_id=done.run.run_id,
        accuracy=_final(final, "accuracy"),
        backdoor_success=_final(final, "backdoor_success"),
        flagged_attackers=bad,
        flagged_honest=honest,
        metric=cfg.evaluation.metric,
        score=_final(final, cfg.evaluation.metric),
    )


def _flag_counts(
    store: RunStore, run_id: str, malicious: tuple[str, ...]
) -> tuple[int, int]:
    """Distinct attackers and honest sites flagged at least once in the run."""
    flagged = {
        s.participant for r in store.rounds(run_id) for s in r.scores if s.flagged
    }
    return len(flagged & set(malicious)), len(flagged - set(malicious))
