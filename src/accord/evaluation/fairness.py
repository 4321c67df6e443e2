"""Fairness across declared groups, from per-group confusion counts.

Each site counts, on its own holdout and per value of the sensitive column, the
true and false positives and negatives of the model's decisions at one threshold
(:func:`confusion_by_group`). Counts add up: the sum over sites
(:func:`sum_counts`) is exactly the count over the pooled holdouts, so the
federation-wide rates and gaps computed from it (:func:`fairness_report`) are the
ones a single party holding every prediction would compute, with no site sending
a prediction or a row.

The definitions are Fairlearn's (``fairlearn.metrics``, ``method="between_groups"``):

- selection rate of a group: (TP + FP) / n, the share it gets a positive decision;
- demographic parity difference: the largest selection rate minus the smallest;
- true positive rate TP / (TP + FN), false positive rate FP / (FP + TN);
- equalized odds difference: the larger of the TPR gap and the FPR gap (largest
  minus smallest across groups).

A rate with an empty denominator (a group with no positive label) is NaN and left
out of the gap, as Fairlearn does. Fairlearn itself is not a dependency: these are
four divisions over summed counts, and the coordinator never holds the predictions
Fairlearn would need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "FairnessReport",
    "GroupCounts",
    "GroupRates",
    "confusion_by_group",
    "fairness_report",
    "group_names",
    "sum_counts",
]

#: The group of a row whose sensitive value is missing.
MISSING_GROUP = "(missing)"


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """One group's confusion counts at the decision threshold."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: GroupCounts) -> GroupCounts:
        """The counts of both together."""
        return GroupCounts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.tn + other.tn,
            self.fn + other.fn,
        )

    @property
    def n(self) -> int:
        """Rows in the group."""
        return self.tp + self.fp + self.tn + self.fn

    def to_dict(self) -> dict[str, int]:
        """As plain JSON data."""
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn}


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True, slots=True)
class GroupRates:
    """One group's rates, from its counts."""

    group: str
    counts: GroupCounts

    @property
    def selection_rate(self) -> float:
        """Share of the group decided positive."""
        c = self.counts
        return _ratio(c.tp + c.fp, c.n)

    @property
    def true_positive_rate(self) -> float:
        """Share of the group's positives decided positive."""
        c = self.counts
        return _ratio(c.tp, c.tp + c.fn)

    @property
    def false_positive_rate(self) -> float:
        """Share of the group's negatives decided positive."""
        c = self.counts
        return _ratio(c.fp, c.fp + c.tn)

    @property
    def accuracy(self) -> float:
        """Share of the group decided right."""
        c = self.counts
        return _ratio(c.tp + c.tn, c.n)


def _gap(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return max(kept) - min(kept) if kept else math.nan


@dataclass(frozen=True, slots=True)
class FairnessReport:
    """Per-group rates over the whole federation, and the two gaps."""

    column: str
    threshold: float
    groups: tuple[GroupRates, ...]

    @property
    def demographic_parity_difference(self) -> float:
        """Largest minus smallest selection rate across groups."""
        return _gap(g.selection_rate for g in self.groups)

    @property
    def equalized_odds_difference(self) -> float:
        """The larger of the TPR gap and the FPR gap across groups."""
        tpr = _gap(g.true_positive_rate for g in self.groups)
        fpr = _gap(g.false_positive_rate for g in self.groups)
        both = [v for v in (tpr, fpr) if not math.isnan(v)]
        return max(both) if both else math.nan

    def to_dict(self) -> dict[str, object]:
        """As plain JSON data (NaN rates as None)."""

        def num(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "column": self.column,
            "threshold": self.threshold,
            "demographicParityDifference": num(self.demographic_parity_difference),
            "equalizedOddsDifference": num(self.equalized_odds_difference),
            "groups": {
                g.group: {
                    **g.counts.to_dict(),
                    "selectionRate": num(g.selection_rate),
                    "truePositiveRate": num(g.true_positive_rate),
                    "falsePositiveRate": num(g.false_positive_rate),
                }
                for g in self.groups
            },
        }


def confusion_by_group(
    y_true: npt.ArrayLike,
    positive_proba: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    threshold: float,
) -> dict[str, GroupCounts]:
    """Counts per group of decisions ``positive_proba >= threshold`` against labels.

    ``y_true`` holds 1 for the positive class, 0 otherwise; ``groups`` the
    sensitive value of each row (as text; None or NaN is :data:`MISSING_GROUP`).
    """
    y = np.asarray(y_true).astype(bool)
    decided = np.asarray(positive_proba, dtype=np.float64) >= threshold
    names = np.array(group_names(groups))
    if not (len(y) == len(decided) == len(names)):
        raise ValueError(
            f"labels ({len(y)}), scores ({len(decided)}) and groups ({len(names)}) "
            "must have one entry per row"
        )
    out: dict[str, GroupCounts] = {}
    for name in sorted(set(names.tolist())):
        m = names == name
        out[name] = GroupCounts(
            tp=int(np.sum(y[m] & decided[m])),
            fp=int(np.sum(~y[m] & decided[m])),
            tn=int(np.sum(~y[m] & ~decided[m])),
            fn=int(np.sum(y[m] & ~decided[m])),
        )
    return out


def group_names(values: npt.ArrayLike) -> list[str]:
    """The group of each sensitive value (as text; None or NaN: the missing group)."""
    return [_group_name(v) for v in np.asarray(values, dtype=object).reshape(-1)]


def _group_name(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_GROUP
    return str(value)


def sum_counts(
    per_site: Iterable[Mapping[str, GroupCounts]],
) -> dict[str, GroupCounts]:
    """The federation's counts per group: the sum of every site's."""
    total: dict[str, GroupCounts] = {}
    for counts in per_site:
        for group, c in counts.items():
            total[group] = total.get(group, GroupCounts()) + c
    return dict(sorted(total.items()))


def fairness_report(
    counts: Mapping[str, GroupCounts], *, column: str, threshold: float
) -> FairnessReport:
    """The per-group rates and gaps of summed counts."""
    return FairnessReport(
        column,
        threshold,
        tuple(GroupRates(g, c) for g, c in sorted(counts.items())),
    )
