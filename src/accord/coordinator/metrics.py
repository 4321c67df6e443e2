"""Combining per-site figures into a round's metrics, weighted by example counts.

A federated metric is the example-weighted mean of the sites' values (so a site with
ten times the data counts ten times), which equals the metric over the union of their
holdouts for accuracy and loss. ``n`` is a count, so it is summed rather than averaged;
so are the per-group confusion counts of a plain deployed run
(:mod:`accord.evaluation.group_sums`), whose federated sums are the fairness counts.
Non-finite site values (an AUC on a holdout with one class) are kept per site and left
out of the federated mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from accord.coordinator.executor import EvalDone
from accord.evaluation.group_sums import is_count_metric
from accord.records import MetricValue, ParticipantOutcome

__all__ = ["federated_metrics", "train_metrics"]

_COUNT = "n"


def _combine(
    scope: str, parts: Iterable[tuple[Mapping[str, float], int]]
) -> list[MetricValue]:
    totals: dict[str, tuple[float, int]] = {}
    for metrics, examples in parts:
        if examples <= 0:
            continue
        for name, value in metrics.items():
            if not math.isfinite(value):
                continue
            s, n = totals.get(name, (0.0, 0))
            weight = 1 if _summed(name) else examples
            totals[name] = (s + value * weight, n + examples)
    return [
        MetricValue(scope, None, name, s if _summed(name) else s / n)
        for name, (s, n) in sorted(totals.items())
    ]


def _summed(name: str) -> bool:
    """Counts add up over the sites; every other metric is averaged."""
    return name == _COUNT or is_count_metric(name)


def federated_metrics(results: Mapping[str, EvalDone]) -> list[MetricValue]:
    """Each site's scores (scope ``site``) and their weighted mean (``federated``)."""
    ordered = sorted(results.items())
    per_site = [
        MetricValue("site", site, name, float(value))
        for site, done in ordered
        for name, value in done.metrics.items()
    ]
    combined = _combine("federated", ((d.metrics, d.num_examples) for _, d in ordered))
    return per_site + combined


def train_metrics(outcomes: Sequence[ParticipantOutcome]) -> list[MetricValue]:
    """Weighted mean of what the participants reported about their local training."""
    return _combine(
        "train", ((o.metrics, o.num_examples) for o in outcomes if o.status == "ok")
    )
