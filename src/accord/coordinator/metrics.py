"""Combining per-site figures into a round's metrics, weighted by example counts.

A federated metric is the example-weighted mean of the sites' values (so a site with
ten times the data counts ten times), which equals the metric over the union of their
holdouts for accuracy and loss. ``n`` is a count, so it is summed rather than averaged;
so are the per-group confusion counts of a plain deployed run
(:mod:`accord.evaluation.group_sums`), whose federated sums are the fairness counts.
Non-finite site values (an AUC on a holdout with one class) are kept per site and left
out of the federated mean; finite ones never make it infinite (:func:`_mean`).
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
    values: dict[str, list[tuple[float, int]]] = {}
    for metrics, examples in parts:
        if examples <= 0:
            continue
        for name, value in metrics.items():
            if math.isfinite(value):
                values.setdefault(name, []).append((value, examples))
    out = []
    for name, pairs in sorted(values.items()):
        combined = _sum(pairs) if _summed(name) else _mean(pairs)
        if math.isfinite(combined):
            out.append(MetricValue(scope, None, name, combined))
    return out


def _sum(pairs: list[tuple[float, int]]) -> float:
    total = 0.0
    for value, _ in pairs:
        total += value
    return total


def _mean(pairs: list[tuple[float, int]]) -> float:
    """The example-weighted mean of finite ``(value, examples)`` pairs.

    Finite values can still overflow the weighted sum (a site's ``1e308`` times its
    example count): then each value is weighed by its share of the examples instead,
    which keeps every term, and so the mean, within the values' own range.
    """
    weighted, examples = 0.0, 0
    for value, n in pairs:
        weighted += value * n
        examples += n
    mean = weighted / examples
    if math.isfinite(mean):
        return mean
    try:
        return math.fsum(value * (n / examples) for value, n in pairs)
    except OverflowError:  # shares rounding up past 1 at the largest float
        return math.nan


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
