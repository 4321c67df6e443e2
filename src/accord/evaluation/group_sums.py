"""Per-group confusion counts as one vector, for a secure sum, and its checks.

Under secure aggregation no site's per-group counts may reach the coordinator one
by one: they would show how the model treats each group *at that site*. Each site
lays its counts out as one float64 vector over the federation's declared groups
(:func:`counts_vector`), the vectors are summed under secure aggregation (exactly:
:class:`~accord.secagg.exact.ExactEncoding`), and the coordinator reads the
federation's counts back from the sum (:func:`counts_from_sum`). Counts add up, so
the summed counts, and the rates and gaps computed from them
(:func:`~accord.evaluation.fairness.fairness_report`), are exactly those of the
plain sum and of the pooled predictions.

The layout, for the declared groups in the order given (sorted names): for each
group its TP, FP, TN and FN. A secure sum needs a layout every site agrees on
before it counts, hence declared groups; a group no holdout row falls in sums to
zero rows and is left out of the result, as it is of a pooled computation.

In a plain deployed run a site reports its counts with its evaluation metrics
instead, one metric per group and count (:func:`count_metrics`, named
``fairness:GROUP:tp`` and so on); the coordinator sums them over the sites like
the row count ``n`` and reads the federation's back from a round's federated
metrics (:func:`counts_from_metrics`).

Under secure aggregation the coordinator cannot check one site's counts (it never
sees them), so it checks the sum: a count that is not a whole number, negative,
or beyond ``max_rows`` means a site sent something no holdout gives, and the sum
is refused without knowing which site (as the preprocessing statistics are,
:mod:`accord.data.sums`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError, excerpt
from accord.evaluation.fairness import GroupCounts

__all__ = [
    "FIELDS",
    "MAX_GROUPS",
    "count_metrics",
    "counts_from_metrics",
    "counts_from_sum",
    "counts_length",
    "counts_vector",
    "is_count_metric",
]

Floats = npt.NDArray[np.float64]

#: The counts of one group, in the order they are laid out.
FIELDS = ("tp", "fp", "tn", "fn")
#: Counts beyond this are not exact in float64.
_EXACT = 2**53
#: Most groups a site reports as metrics (a report carries at most 256 metrics).
MAX_GROUPS = 48
#: Longest group name a site reports as a metric (a metric name takes 200).
_MAX_GROUP_NAME = 160
_PREFIX = "fairness:"


def is_count_metric(name: str) -> bool:
    """Whether a metric name is a per-group confusion count."""
    return name.startswith(_PREFIX)


def count_metrics(counts: Mapping[str, GroupCounts]) -> dict[str, float]:
    """One site's counts as evaluation metrics (``fairness:GROUP:tp``, ...).

    Raises :class:`DatasetError` for more than :data:`MAX_GROUPS` groups or a
    group name too long for a metric name.
    """
    if len(counts) > MAX_GROUPS:
        raise DatasetError(
            f"the sensitive column has {len(counts)} groups in this holdout; at "
            f"most {MAX_GROUPS} are reported: declare a coarser sensitive column"
        )
    out: dict[str, float] = {}
    for group, c in counts.items():
        if len(group) > _MAX_GROUP_NAME:
            raise DatasetError(
                f"the group {excerpt(group)} is longer than {_MAX_GROUP_NAME} "
                "characters: shorten the sensitive column's values"
            )
        for name, value in c.to_dict().items():
            out[f"{_PREFIX}{group}:{name}"] = float(value)
    return out


def counts_from_metrics(metrics: Mapping[str, float]) -> dict[str, GroupCounts]:
    """The counts per group held by ``metrics`` (empty when there are none)."""
    found: dict[str, dict[str, int]] = {}
    for key, value in metrics.items():
        if not is_count_metric(key):
            continue
        group, _, name = key[len(_PREFIX) :].rpartition(":")
        if name not in FIELDS or not group:
            raise DatasetError(f"{excerpt(key)} is not a group count")
        if value != math.floor(value) or not 0 <= value < _EXACT:
            raise DatasetError(f"{excerpt(key)} = {value} is not a count")
        found.setdefault(group, {})[name] = int(value)
    return {
        g: GroupCounts(**parts)
        for g, parts in sorted(found.items())
        if any(parts.values())
    }


def counts_length(groups: int) -> int:
    """Values in the vector of ``groups`` declared groups."""
    return len(FIELDS) * groups


def counts_vector(counts: Mapping[str, GroupCounts], groups: Sequence[str]) -> Floats:
    """One site's counts laid out over the declared ``groups``, for the secure sum.

    Raises :class:`DatasetError` for a group of ``counts`` that is not declared:
    the site holds a value of the sensitive column the federation did not agree
    on, and summing without it would drop its rows silently.
    """
    undeclared = sorted(set(counts) - set(groups))
    if undeclared:
        raise DatasetError(
            f"the sensitive column holds {excerpt(undeclared)}, which is not among "
            f"the federation's declared groups {excerpt(list(groups))}; fix the "
            "site's table or declare the group"
        )
    out = np.zeros(counts_length(len(groups)), dtype=np.float64)
    for i, group in enumerate(groups):
        c = counts.get(group, GroupCounts())
        out[i * 4 : i * 4 + 4] = (c.tp, c.fp, c.tn, c.fn)
    return out


def counts_from_sum(
    total: Floats, groups: Sequence[str], *, max_rows: int | None = None
) -> dict[str, GroupCounts]:
    """The federation's counts per group from the summed vectors.

    Groups with no row are left out. ``max_rows`` bounds the rows of all groups
    together (the holdout rows the sites can hold). Raises :class:`DatasetError`
    when no honest sites' holdouts give ``total``.
    """
    if total.shape != (counts_length(len(groups)),):
        raise DatasetError(
            f"the summed group counts hold {total.size} values; {len(groups)} "
            f"group(s) take {counts_length(len(groups))}"
        )
    if not np.isfinite(total).all():
        raise _impossible("a count is not finite")
    out: dict[str, GroupCounts] = {}
    rows = 0
    for i, group in enumerate(groups):
        values = [float(v) for v in total[i * 4 : i * 4 + 4]]
        for name, v in zip(FIELDS, values, strict=True):
            if v != math.floor(v) or not 0 <= v < _EXACT:
                raise _impossible(f"group {excerpt(group)} has {name} = {v}")
        c = GroupCounts(*(int(v) for v in values))
        rows += c.n
        if c.n:
            out[group] = c
    if max_rows is not None and rows > max_rows:
        raise _impossible(f"{rows} rows are counted; the holdouts hold {max_rows}")
    return out


def _impossible(what: str) -> DatasetError:
    return DatasetError(
        f"the securely summed group counts are impossible ({what}): a site sent an "
        "input that no holdout gives, and secure aggregation hides which; check the "
        "sites' accord versions and logs"
    )
