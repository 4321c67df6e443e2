"""Per-group confusion counts summed across sites equal the pooled computation.

The reference is Fairlearn itself on the pooled predictions: ``MetricFrame`` by
group of ``selection_rate``, ``true_positive_rate``, ``false_positive_rate``, and
``demographic_parity_difference`` / ``equalized_odds_difference`` with
``method="between_groups"``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from accord.config import config_from_mapping
from accord.errors import ConfigError
from accord.evaluation.fairness import (
    MISSING_GROUP,
    GroupCounts,
    confusion_by_group,
    fairness_report,
    sum_counts,
)
from accord.simulation.context import build_context
from accord.simulation.holdouts import holdout_groups, score_sites

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def pooled_reference(y: np.ndarray, decided: np.ndarray, groups: np.ndarray):
    """Per-group rates and the two gaps, computed by Fairlearn on pooled rows."""
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y.astype(int),
        y_pred=decided.astype(int),
        sensitive_features=groups,
    )
    kwargs = {"sensitive_features": groups, "method": "between_groups"}
    dp = demographic_parity_difference(y.astype(int), decided.astype(int), **kwargs)
    eo = equalized_odds_difference(y.astype(int), decided.astype(int), **kwargs)
    return frame.by_group, dp, eo


def test_summed_site_counts_give_the_pooled_rates_exactly():
    # Arrange: three sites, three groups (one rare), seeded
    rng = np.random.default_rng(7)
    sites = []
    for n in (40, 90, 25):
        y = rng.integers(0, 2, n)
        p = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
        g = rng.choice(["a", "b", "c"], n, p=[0.5, 0.4, 0.1])
        sites.append((y, p, g))

    # Act
    counts = sum_counts(confusion_by_group(y, p, g, threshold=0.5) for y, p, g in sites)
    report = fairness_report(counts, column="g", threshold=0.5)

    # Assert: against the pooled rows
    y, p, g = (np.concatenate(parts) for parts in zip(*sites, strict=True))
    rates, dp, eo = pooled_reference(y, p >= 0.5, g)
    got = {r.group: r for r in report.groups}
    assert sorted(got) == sorted(rates.index)
    for group, row in rates.iterrows():
        assert got[group].selection_rate == pytest.approx(row.selection_rate, abs=1e-15)
        assert got[group].true_positive_rate == pytest.approx(row.tpr, abs=1e-15)
        assert got[group].false_positive_rate == pytest.approx(row.fpr, abs=1e-15)
    assert report.demographic_parity_difference == pytest.approx(dp, abs=1e-15)
    assert report.equalized_odds_difference == pytest.approx(eo, abs=1e-15)
    assert sum(c.n for c in counts.values()) == len(y)


def test_the_decision_is_taken_at_the_threshold_inclusive():
    counts = confusion_by_group(
        [1, 1, 0, 0], [0.5, math.nextafter(0.5, 0), 0.5, 0.1], ["g"] * 4, threshold=0.5
    )

    assert counts["g"] == GroupCounts(tp=1, fn=1, fp=1, tn=1)


def test_a_missing_sensitive_value_is_its_own_group_and_an_empty_rate_is_left_out():
    counts = confusion_by_group(
        [0, 0, 1], [0.9, 0.1, 0.9], ["a", None, "a"], threshold=0.5
    )
    report = fairness_report(counts, column="g", threshold=0.5)

    assert set(counts) == {"a", MISSING_GROUP}
    # the missing group has no positive label: its TPR is NaN and left out
    assert math.isnan(report.groups[0].true_positive_rate)
    assert report.equalized_odds_difference == 1.0  # FPR 1 vs 0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one entry per row"):
        confusion_by_group([0, 1], [0.2], ["a", "b"], threshold=0.5)


def lending(**evaluation: object):
    raw = {
        "federation": {"name": "fair", "rounds": 1, "seed": 11},
        "data": {"dataset": "lending_club", "partition": "natural", "sites": 10},
        "task": {"factory": "task:build", "options": {"hidden": 8}},
        "evaluation": {"metric": "auc", **evaluation},
    }
    return config_from_mapping(raw, base_dir=EXAMPLES / "lending_club")


def test_lending_club_federated_group_metrics_equal_the_pooled_predictions():
    # Arrange: ten state sites; the sensitive attribute is verification_status
    # (also a feature); a seeded model; the threshold at the pooled median score
    # so that both decisions occur in every group.
    cfg = lending()
    ctx = build_context(cfg)
    params = ctx.task.init_params(5)
    scores = [
        np.asarray(ctx.task.predict(params, s.holdout.x))[:, 1] for s in ctx.data.sites
    ]
    threshold = float(np.median(np.concatenate(scores)))
    cfg = lending(sensitive="verification_status", decision_threshold=threshold)

    # Act: each site counts on its holdout; the counts are summed
    per_site = score_sites(cfg, params, fairness=True)
    report = fairness_report(
        sum_counts(s.groups for s in per_site), column="v", threshold=threshold
    )

    # Assert: the pooled predictions, computed by Fairlearn, give the same figures
    groups = holdout_groups(cfg, "verification_status")
    y = np.concatenate([s.holdout.y for s in ctx.data.sites])
    g = np.concatenate([groups[s.name] for s in ctx.data.sites]).astype(str)
    rates, dp, eo = pooled_reference(y == 1, np.concatenate(scores) >= threshold, g)
    got = {r.group: r for r in report.groups}
    assert len(per_site) == 10
    assert sorted(got) == sorted(rates.index) and len(got) == 3
    for group, row in rates.iterrows():
        assert got[group].selection_rate == pytest.approx(row.selection_rate, abs=1e-12)
        assert got[group].true_positive_rate == pytest.approx(row.tpr, abs=1e-12)
        assert got[group].false_positive_rate == pytest.approx(row.fpr, abs=1e-12)
    assert report.demographic_parity_difference == pytest.approx(dp, abs=1e-12)
    assert report.equalized_odds_difference == pytest.approx(eo, abs=1e-12)
    assert 0 < report.demographic_parity_difference < 1


def test_holdout_groups_follow_the_rows_of_each_site():
    # The site column as the sensitive attribute: every holdout row of a site
    # must carry that site's own state, or the rows were misaligned.
    cfg = lending()
    groups = holdout_groups(cfg, "addr_state")
    ctx = build_context(cfg)

    for site in ctx.data.sites:
        assert len(groups[site.name]) == len(site.holdout)
        assert set(groups[site.name].astype(str)) == {site.name}


def test_fairness_is_refused_for_an_unknown_column_and_under_secure_aggregation():
    cfg = lending(sensitive="no_such_column")
    secure = cfg.model_copy(
        update={
            "secure_aggregation": cfg.secure_aggregation.model_copy(
                update={"mode": "masking"}
            )
        }
    )
    params = build_context(cfg).task.init_params(0)

    with pytest.raises(ConfigError, match="not a column of lending_club"):
        holdout_groups(cfg, "no_such_column")
    with pytest.raises(ConfigError, match="refused under secure aggregation"):
        score_sites(secure, params, sites=["CA"], fairness=True)
