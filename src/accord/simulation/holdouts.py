"""Scoring a stored model on each simulated site's holdout, after the run.

``accord evaluate run`` and ``accord release`` need, without retraining, what each
site would report about a model: its metrics on the site's holdout and, for
fairness, its confusion counts per value of the declared sensitive column
(``[evaluation] sensitive``). The federation is rebuilt from the configuration
exactly as the run built it (the partition depends only on the seed), and the
sensitive value of each holdout row is read from the raw table through the same
row plan (:func:`~accord.data.federation.plan_rows`): the column may be a feature
or not, since it is read before encoding. Each site's counts stay separate here,
as a site would report them, and are summed by the caller
(:func:`~accord.evaluation.fairness.sum_counts`).

Under secure aggregation a site's own counts would reach the coordinator in the
clear, which the federation chose to prevent: :func:`score_sites` refuses them
there (:class:`~accord.errors.ConfigError`), and the federation's counts are
summed securely instead (:mod:`accord.simulation.fair_sum`), over the groups the
sensitive column declares (:func:`sensitive_values`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accord.config import FedConfig
from accord.data.datasets import load_table
from accord.data.federation import labelled, plan_rows
from accord.errors import ConfigError, excerpt
from accord.evaluation.fairness import GroupCounts, confusion_by_group, group_names
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.simulation.context import SimContext, build_context, dataset_source

__all__ = [
    "SiteScore",
    "check_fairness",
    "holdout_groups",
    "score_sites",
    "sensitive_values",
    "site_counts",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SiteScore:
    """A model's metrics on one site's holdout, and its counts per group."""

    site: str
    metrics: dict[str, float]
    groups: dict[str, GroupCounts] = field(default_factory=dict)


def holdout_groups(
    config: FedConfig, column: str
) -> dict[str, npt.NDArray[np.object_]]:
    """Each site's holdout rows' values of ``column``, in the holdout's row order."""
    return sensitive_values(config, column)[0]


def sensitive_values(
    config: FedConfig, column: str
) -> tuple[dict[str, npt.NDArray[np.object_]], tuple[str, ...]]:
    """:func:`holdout_groups`, and the groups ``column`` declares (sorted).

    The declared groups are those of the whole table, as the data contract's
    category set of the column would list them: a secure sum of the counts
    needs a layout agreed before any site counts.
    """
    d = config.data
    table, labels = labelled(load_table(dataset_source(config), **dict(d.options)))
    if column not in table.frame.columns:
        raise ConfigError(
            f"[evaluation] sensitive = {excerpt(column)} is not a column of "
            f"{table.spec.name}; it has {excerpt(list(table.frame.columns))}"
        )
    site_column = d.site_column or table.spec.site_column
    values = None
    if site_column is not None and site_column in table.frame.columns:
        values = table.frame[site_column].astype(str).to_numpy()
    plan = plan_rows(
        labels,
        values,
        partition=d.partition,
        sites=d.sites,
        seed=config.federation.seed,
        alpha=d.alpha,
        test_fraction=d.test_fraction,
        holdout_fraction=d.holdout_fraction,
        other=d.other,
        min_site_size=d.min_site_size,
    )
    raw = table.frame[column].to_numpy(dtype=object)
    per_site = {
        name: raw[rows] for name, rows in zip(plan.names, plan.holdout, strict=True)
    }
    return per_site, tuple(sorted(set(group_names(raw))))


def check_fairness(config: FedConfig, classes: Sequence[str]) -> str:
    """The sensitive column, or :class:`ConfigError` when fairness is undefined."""
    column = config.evaluation.sensitive
    if column is None:
        raise ConfigError('fairness needs [evaluation] sensitive = "COLUMN"')
    if len(classes) != 2:
        raise ConfigError(
            f"fairness is defined here for two classes; {len(classes)} were given "
            f"({excerpt(list(classes))}): remove [evaluation] sensitive"
        )
    return column


def score_sites(
    config: FedConfig,
    params: Params,
    *,
    sites: Sequence[str] | None = None,
    fairness: bool = False,
) -> list[SiteScore]:
    """Score ``params`` on the holdout of each of ``sites`` (default: all).

    ``fairness`` also counts, per site and per sensitive group, the decisions
    ``P(second class) >= [evaluation] decision_threshold`` against the labels.
    """
    ctx = build_context(config)
    known = ctx.participants
    chosen = tuple(sites) if sites else known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ConfigError(
            f"no site {excerpt(unknown)} in this federation; its sites are "
            f"{excerpt(list(known))}"
        )
    groups = None
    if fairness:
        column = check_fairness(config, ctx.data.info.class_names)
        if config.secure_aggregation.mode != "off":
            raise ConfigError(
                "per-site fairness counts are refused under secure aggregation: "
                "each site's per-group counts would reach the coordinator in the "
                "clear; only their secure sum is available (accord release sums "
                "them securely: accord.simulation.fair_sum)"
            )
        groups = holdout_groups(config, column)
    out = []
    for name in chosen:
        holdout = ctx.site(name).holdout
        metrics = evaluate(ctx.task, params, holdout)
        counts: dict[str, GroupCounts] = {}
        if groups is not None:
            counts = site_counts(
                ctx,
                params,
                name,
                groups[name],
                threshold=config.evaluation.decision_threshold,
            )
        out.append(SiteScore(name, metrics, counts))
    logger.info("scored the model on %d site holdout(s)", len(out))
    return out


def site_counts(
    ctx: SimContext,
    params: Params,
    name: str,
    values: npt.NDArray[np.object_],
    *,
    threshold: float,
) -> dict[str, GroupCounts]:
    """What site ``name`` counts on its own holdout: decisions per sensitive group.

    ``values`` are its holdout rows' sensitive values; an empty holdout counts
    nothing.
    """
    holdout = ctx.site(name).holdout
    if not len(holdout):
        return {}
    proba = np.asarray(ctx.task.predict(params, holdout.x))
    return confusion_by_group(holdout.y == 1, proba[:, 1], values, threshold=threshold)
