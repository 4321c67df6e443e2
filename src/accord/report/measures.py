"""The model card's measured sections: metrics and anomaly scores, with plots.

Global metrics per round and final, each site's holdout metrics, per-group
fairness figures (from the last release), each site's global and personalized
metrics (:mod:`accord.report.personal`), and the robustness scores of each
site's update per round: each a function of
:class:`~accord.report.inputs.CardInputs` returning one
:class:`~accord.report.document.Section`. The plots carry the figures as
recorded; a round that did not measure one is a gap, not a zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from accord.records import RoundRecord
from accord.report.document import (
    Block,
    Facts,
    Plot,
    Section,
    Table,
    not_recorded,
    series_per_round,
)
from accord.report.inputs import CardInputs
from accord.report.personal import personal_blocks
from accord.report.text import count, number

__all__ = ["metrics_section", "robustness_section"]


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
            series_per_round(rounds, sites, value),
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
    metric = str(inputs.config("evaluation").get("metric", "accuracy"))
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
                series_per_round(rounds, primary, _global),
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
    blocks += personal_blocks(inputs)
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
            Plot(
                field,
                title,
                "round",
                field,
                "line",
                series_per_round(rounds, sites, score),
            )
        )
    return Section("robustness", "Robustness", tuple(blocks))
