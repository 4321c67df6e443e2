"""The model card's governance sections: privacy spent, release gates, contributions.

What the federation agreed to spend and to require, and who contributed what: each
a function of :class:`~accord.report.inputs.CardInputs` returning one
:class:`~accord.report.document.Section`, pure like
:func:`~accord.report.card.build_card`, which assembles them. A figure nobody
recorded is a "not recorded" note that says how to record it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    numbers,
    series_per_round,
)
from accord.report.inputs import CardInputs, LedgerEntry
from accord.report.text import number

__all__ = ["contributions_section", "gates_section", "privacy_section"]


# -- privacy -----------------------------------------------------------------


def _account(participant: str | None) -> str:
    return "federation" if participant is None else participant


def privacy_section(inputs: CardInputs) -> Section:
    """Level, ε and δ, budget, mechanism, each site's ε; ε per round (plot)."""
    config = inputs.config("privacy")
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
            series_per_round(inputs.rounds, accounts, eps),
        )
    )
    return Section("privacy", "Privacy", tuple(blocks))


# -- gates -------------------------------------------------------------------


def _configured(inputs: CardInputs) -> Facts | None:
    gates = {k: v for k, v in inputs.config("gates").items() if v is not None}
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


# -- contributions -----------------------------------------------------------


def _no_contributions(inputs: CardInputs) -> str:
    """Why a card has no contribution scores, and how to get them."""
    if inputs.config("secure_aggregation").get("mode", "off") != "off":
        return (
            "secure aggregation hid each site's update, so no coalition smaller "
            "than a whole round can be rebuilt; each round's gain is in Metrics"
        )
    if not inputs.config("contribution").get("keep_updates"):
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
            Series("leave-one-out", sites, numbers([s.loo for s in report.sites]))
        )
    if report.method in ("shapley", "both"):
        series.append(
            Series(
                "Shapley",
                sites,
                numbers([s.shapley for s in report.sites]),
                low=numbers([s.ci_low for s in report.sites]),
                high=numbers([s.ci_high for s in report.sites]),
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
