"""The model card's sections about what a run produced, with their plots.

Privacy spent, the release gates' decision, global, per-site and per-group
metrics, anomaly scores and contributions: each a function of
:class:`~accord.report.inputs.CardInputs` returning one
:class:`~accord.report.document.Section` (pure, like
:func:`~accord.report.card.build_card` which assembles them). The plots carry the
figures as recorded; a round that did not measure one is a gap, not a zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from accord.records import RoundRecord
from accord.report.document import (
    Block,
    Facts,
    Note,
    Plot,
    Section,
    Series,
    Table,
    not_recorded,
)
from accord.report.inputs import CardInputs, LedgerEntry
from accord.report.text import count, number

__all__ = [
    "contributions_section",
    "gates_section",
    "metrics_section",
    "privacy_section",
    "robustness_section",
]


def _config(inputs: CardInputs, name: str) -> Mapping[str, Any]:
    value = inputs.run.config.get(name)
    return value if isinstance(value, Mapping) else {}


def _numbers(values: Sequence[float | None]) -> tuple[float | None, ...]:
    return tuple(None if v is None or math.isnan(v) else float(v) for v in values)


def _per_round(
    rounds: Sequence[RoundRecord], names: Sequence[str], get: Any
) -> tuple[Series, ...]:
    """One line per name: ``get(round, name)`` in each round (None: a gap)."""
    xs = tuple(r.number for r in rounds)
    return tuple(
        Series(name, xs, _numbers([get(r, name) for r in rounds])) for name in names
    )


# -- privacy -----------------------------------------------------------------


def _account(participant: str | None) -> str:
    return "federation" if participant is None else participant


def privacy_section(inputs: CardInputs) -> Section:
    """Level, ε and δ, budget, mechanism, each site's ε; ε per round (plot)."""
    config = _config(inputs, "privacy")
    spent = [p for r in inputs.rounds for p in r.privacy]
    summary = (inputs.run.summary or {}).get("privacy")
    summary = summary if isinstance(summary, Mapping) else {}
    if not spent and not summary:
        level = config.get("level", "off")
        why = (
            "the run used no differential privacy ([privacy] level = off), so its "
            'epsilon is unbounded; set [privacy] level = "participant" or '
            '"record" (docs/privacy.md)'
            if level in ("off", None)
            else f"[privacy] level = {level}, but no round recorded privacy spent"
        )
        return Section("privacy", "Privacy", (not_recorded(why),))
    last: dict[str | None, Any] = {}
    for p in spent:
        last[p.participant] = p  # cumulative: the last round's is the run's
    federation = last.get(None)
    sites = {k: v for k, v in last.items() if k is not None}
    epsilon = summary.get("epsilon")
    if not isinstance(epsilon, int | float):
        epsilon = (
            federation.epsilon if federation else max(v.epsilon for v in sites.values())
        )
    any_spent = federation or next(iter(sites.values()), None)
    budget = summary.get("budget_epsilon", config.get("budget_epsilon"))
    items = [
        ("level", str(summary.get("level") or (any_spent.level if any_spent else "-"))),
        (
            "epsilon spent" + ("" if federation else " (largest of the sites')"),
            number(float(epsilon)),
        ),
        ("delta", number(any_spent.delta if any_spent else summary.get("delta"))),
        ("budget (epsilon)", "none" if budget is None else number(float(budget))),
        ("accountant", str(any_spent.accountant if any_spent else "-")),
        ("noise", str(summary.get("noise", "-"))),
        (
            "noise multiplier",
            number(any_spent.noise_multiplier if any_spent else None),
        ),
        (
            "clip",
            number(any_spent.clip if any_spent else None),
        ),
    ]
    blocks: list[Block] = [Facts(tuple(items))]
    if sites:
        blocks.append(
            Table(
                ("site", "epsilon", "delta", "noise multiplier"),
                tuple(
                    (s, number(v.epsilon), number(v.delta), number(v.noise_multiplier))
                    for s, v in sites.items()
                ),
                "epsilon of each site's records",
            )
        )
    accounts = list(dict.fromkeys(_account(p.participant) for p in spent))

    def eps(r: RoundRecord, name: str) -> float | None:
        return next(
            (p.epsilon for p in r.privacy if _account(p.participant) == name), None
        )

    blocks.append(
        Plot(
            "privacy",
            "Privacy spent (cumulative epsilon)",
            "round",
            "epsilon",
            "line",
            _per_round(inputs.rounds, accounts, eps),
        )
    )
    return Section("privacy", "Privacy", tuple(blocks))


# -- gates -------------------------------------------------------------------


def _configured(inputs: CardInputs) -> Facts | None:
    gates = {k: v for k, v in _config(inputs, "gates").items() if v is not None}
    if not gates:
        return None
    return Facts(tuple((f"{k} (bound)", number(float(v))) for k, v in gates.items()))


def _release_event(inputs: CardInputs) -> Mapping[str, Any] | None:
    for event in reversed(inputs.events):
        if event.kind != "release":
            continue
        try:
            detail = json.loads(event.detail)
        except ValueError:
            continue
        if isinstance(detail, Mapping):
            return detail
    return None


def _decision(entry: LedgerEntry, attempts: int) -> list[Block]:
    predicate = entry.predicate
    passed = predicate.get("passed") is True
    sha = predicate.get("modelFile")
    items = [
        (
            "decision",
            f"passed: the model was released (file SHA-256 {sha})"
            if passed
            else "failed: the model was not released",
        ),
        ("recorded in", f"ledger entry {entry.sequence}"),
        ("release attempts", str(attempts)),
    ]
    rows = []
    for result in predicate.get("results") or ():
        if isinstance(result, Mapping):
            rows.append(
                (
                    str(result.get("gate")),
                    "pass" if result.get("passed") is True else "FAIL",
                    str(result.get("reason")),
                )
            )
    return [Facts(tuple(items)), Table(("gate", "result", "reason"), tuple(rows))]


def gates_section(inputs: CardInputs) -> Section:
    """The thresholds set, and the last release decision: each gate, why."""
    blocks: list[Block] = []
    configured = _configured(inputs)
    blocks.append(
        configured
        if configured is not None
        else Note("[gates] sets no threshold: a release needs only a completed run.")
    )
    releases = [e for e in inputs.ledger if e.kind == "release"]
    event = _release_event(inputs)
    if releases:
        blocks += _decision(releases[-1], len(releases))
    elif event is not None:
        failed = [str(f) for f in event.get("failed") or ()]
        blocks.append(
            Facts(
                (
                    ("decision", "passed" if event.get("passed") is True else "failed"),
                    ("failed gates", ", ".join(failed) or "none"),
                )
            )
        )
        blocks.append(
            Note(
                "Each gate's reason is kept in the ledger's release entry; this "
                "run has no ledger, so only the failed gates' names were recorded."
            )
        )
    else:
        blocks.append(
            not_recorded(
                "no release was attempted: `accord release RUN -o "
                "model.safetensors` judges [gates] on the final model and records "
                "its decision, each gate with its reason"
            )
        )
    return Section("gates", "Release gates", tuple(blocks))


# -- metrics -----------------------------------------------------------------


def _global(r: RoundRecord, name: str) -> float | None:
    scope, _, metric = name.partition(".")
    return next(
        (
            m.value
            for m in r.metrics
            if m.participant is None and m.scope == scope and m.name == metric
        ),
        None,
    )


def _global_names(rounds: Sequence[RoundRecord]) -> list[str]:
    names = {
        f"{m.scope}.{m.name}"
        for r in rounds
        for m in r.metrics
        if m.participant is None
        and m.scope in ("central", "federated")
        and m.name != "n"
    }
    return sorted(names)


def _site_blocks(inputs: CardInputs, metric: str) -> list[Block]:
    rounds = inputs.rounds
    site_metrics = [m for r in rounds for m in r.metrics if m.scope == "site"]
    if not site_metrics:
        return [
            not_recorded(
                "no site scored the model on its own holdout: set [evaluation] "
                "federated = true"
            )
        ]
    sites = list(dict.fromkeys(str(m.participant) for m in site_metrics))
    names = sorted({m.name for m in site_metrics})
    done = [r for r in rounds if r.status == "completed"]
    last = done[-1] if done else rounds[-1]
    final = {
        (m.participant, m.name): m.value for m in last.metrics if m.scope == "site"
    }
    rows = tuple((s, *(number(final.get((s, n))) for n in names)) for s in sites)

    def value(r: RoundRecord, site: str) -> float | None:
        return next(
            (
                m.value
                for m in r.metrics
                if m.scope == "site" and m.participant == site and m.name == metric
            ),
            None,
        )

    return [
        Table(("site", *names), rows, f"each site's holdout, round {last.number}"),
        Plot(
            "sites",
            f"Each site's {metric} per round (its own holdout)",
            "round",
            metric,
            "line",
            _per_round(rounds, sites, value),
        ),
    ]


def _group_blocks(inputs: CardInputs) -> list[Block]:
    fairness = None
    for entry in reversed(inputs.ledger):
        if entry.kind == "release" and isinstance(
            entry.predicate.get("fairness"), Mapping
        ):
            fairness = entry.predicate["fairness"]
            break
    if fairness is None:
        return [
            not_recorded(
                "per-group metrics are computed when `accord release` judges a "
                "fairness gate ([evaluation] sensitive and a max_demographic_parity_"
                "difference or max_equalized_odds_difference gate)"
            )
        ]
    groups = fairness.get("groups")
    rows = []
    for group, g in groups.items() if isinstance(groups, Mapping) else ():
        if not isinstance(g, Mapping):
            continue
        cells = [g.get(k) for k in ("tp", "fp", "tn", "fn")]
        n = sum(int(c) for c in cells if isinstance(c, int))
        rates = [
            g.get(k) for k in ("selectionRate", "truePositiveRate", "falsePositiveRate")
        ]
        rows.append(
            (
                str(group),
                str(n),
                *(number(r if isinstance(r, int | float) else None) for r in rates),
            )
        )

    def figure(key: str) -> str:
        v = fairness.get(key)
        return number(float(v)) if isinstance(v, int | float) else "undefined"

    return [
        Facts(
            (
                ("sensitive column", str(fairness.get("column"))),
                ("decision threshold", str(fairness.get("threshold"))),
                (
                    "demographic parity difference",
                    figure("demographicParityDifference"),
                ),
                ("equalized odds difference", figure("equalizedOddsDifference")),
            )
        ),
        Table(
            (
                "group",
                "n",
                "selection rate",
                "true positive rate",
                "false positive rate",
            ),
            tuple(rows),
            "each group, summed over the sites' holdouts",
        ),
    ]


def metrics_section(inputs: CardInputs) -> Section:
    """Global metrics per round and final, per site, per group; two plots."""
    metric = str(_config(inputs, "evaluation").get("metric", "accuracy"))
    rounds = inputs.rounds
    names = _global_names(rounds)
    blocks: list[Block] = []
    if names:
        done = [r for r in rounds if r.status == "completed"]
        last = done[-1] if done else rounds[-1]
        blocks.append(
            Facts(
                tuple(
                    (f"final {n} (round {last.number})", number(_global(last, n)))
                    for n in names
                )
            )
        )
        blocks.append(
            Table(
                ("round", *names),
                tuple(
                    (str(r.number), *(number(_global(r, n)) for n in names))
                    for r in rounds
                ),
                "global metrics per round",
            )
        )
        primary = [n for n in names if n.endswith(f".{metric}")] or names
        blocks.append(
            Plot(
                "global",
                f"Global {metric} per round",
                "round",
                metric,
                "line",
                _per_round(rounds, primary, _global),
            )
        )
    else:
        blocks.append(
            not_recorded(
                "no global metric: set [evaluation] central = true (the "
                "coordinator's test set) or federated = true (the sites' holdouts)"
            )
        )
    blocks += _site_blocks(inputs, metric)
    blocks += _group_blocks(inputs)
    return Section("metrics", "Metrics", tuple(blocks))


# -- robustness --------------------------------------------------------------


def robustness_section(inputs: CardInputs) -> Section:
    """Flagged and quarantined sites; norm and distance z-scores per round."""
    rounds = [r for r in inputs.rounds if r.scores]
    if not rounds:
        return Section(
            "robustness",
            "Robustness",
            (
                not_recorded(
                    "no update was scored: set [robustness] scores = true or a flag "
                    "rule (docs/robustness.md); secure rounds cannot be scored"
                ),
            ),
        )
    flagged = [
        (r.number, s) for r in rounds for s in r.scores if s.flagged or s.excluded
    ]
    sites = list(dict.fromkeys(s.participant for r in rounds for s in r.scores))
    quarantined = sorted({s.participant for _, s in flagged if s.excluded})
    facts = Facts(
        (
            ("rounds scored", str(len(rounds))),
            (
                "updates flagged",
                count(sum(1 for _, s in flagged if s.flagged), "update"),
            ),
            (
                "sites flagged",
                ", ".join(sorted({s.participant for _, s in flagged if s.flagged}))
                or "none",
            ),
            ("sites quarantined", ", ".join(quarantined) or "none"),
        )
    )
    blocks: list[Block] = [facts]
    if flagged:
        blocks.append(
            Table(
                ("round", "site", "flags", "aggregated"),
                tuple(
                    (
                        str(n),
                        s.participant,
                        "; ".join(s.flags) or "-",
                        "no (quarantined)" if s.excluded else "yes",
                    )
                    for n, s in flagged
                ),
                "flagged or quarantined updates",
            )
        )
    for field, title in (
        ("norm_z", "Update norm, robust z-score per round"),
        ("distance_z", "Distance to the median update, robust z-score per round"),
    ):

        def score(r: RoundRecord, site: str, field: str = field) -> float | None:
            found = next((s for s in r.scores if s.participant == site), None)
            return None if found is None else float(getattr(found, field))

        blocks.append(
            Plot(field, title, "round", field, "line", _per_round(rounds, sites, score))
        )
    return Section("robustness", "Robustness", tuple(blocks))


# -- contributions -----------------------------------------------------------


def _no_contributions(inputs: CardInputs) -> str:
    """Why a card has no contribution scores, and how to get them."""
    if _config(inputs, "secure_aggregation").get("mode", "off") != "off":
        return (
            "secure aggregation hid each site's update, so no coalition smaller "
            "than a whole round can be rebuilt; each round's gain is in Metrics"
        )
    if not _config(inputs, "contribution").get("keep_updates"):
        return (
            "the run kept no round updates ([contribution] keep_updates = false), "
            "so they cannot be computed for it; set it before a run"
        )
    return (
        "not computed for this card: `accord report RUN --contributions` (or "
        "`accord contributions RUN`) scores each site from the kept updates"
    )


def contributions_section(inputs: CardInputs) -> Section:
    """Each site's leave-one-out and Shapley score, where computed; a bar plot."""
    report = inputs.contributions
    if report is None:
        why = inputs.contributions_note or _no_contributions(inputs)
        return Section("contributions", "Contributions", (not_recorded(why),))
    rows = tuple(
        (
            s.site,
            str(s.rounds),
            number(s.loo),
            number(s.shapley),
            "-"
            if s.ci_low is None or s.ci_high is None
            else f"[{number(s.ci_low)}, {number(s.ci_high)}]",
        )
        for s in report.sites
    )
    sites = tuple(s.site for s in report.sites)
    series = []
    if report.method in ("loo", "both"):
        series.append(
            Series("leave-one-out", sites, _numbers([s.loo for s in report.sites]))
        )
    if report.method in ("shapley", "both"):
        series.append(
            Series(
                "Shapley",
                sites,
                _numbers([s.shapley for s in report.sites]),
                low=_numbers([s.ci_low for s in report.sites]),
                high=_numbers([s.ci_high for s in report.sites]),
            )
        )
    blocks: list[Block] = [
        Facts(
            (
                ("rounds scored", str(report.rounds)),
                ("total gain", number(report.gain)),
                ("evaluations", str(report.evaluations)),
                ("permutations per round", str(report.permutations)),
            )
        ),
        Table(("site", "rounds", "leave-one-out", "Shapley", "95% interval"), rows),
        Plot(
            "contributions",
            "Contributions (value on the sites' holdouts)",
            "site",
            "score",
            "bar",
            tuple(series),
        ),
    ]
    blocks += [Note(n) for n in report.notes]
    return Section("contributions", "Contributions", tuple(blocks))
