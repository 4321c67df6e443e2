from __future__ import annotations

import pytest

import accord.aggregation as aggregation
from accord.aggregation import (
    RULE_NAMES,
    AggregationRule,
    Mean,
    Median,
    TrimmedMean,
    coordinate_median,
    coordinate_trimmed_mean,
    make_rule,
    weighted_mean,
)
from accord.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "options", "cls", "streaming"),
    [
        ("mean", {}, Mean, True),
        ("median", {}, Median, False),
        ("trimmed_mean", {"beta": 0.2}, TrimmedMean, False),
    ],
)
def test_make_rule_builds_each_rule(name, options, cls, streaming):
    rule: AggregationRule = make_rule(name, **options)

    assert isinstance(rule, cls)
    assert rule.name == name
    assert rule.streaming is streaming


def test_rules_wrap_the_pure_functions(make_updates):
    updates = make_updates(5, [(200,), (3, 3)], seed=1)
    weights = [1.0, 2.0, 3.0, 4.0, 5.0]

    mean = make_rule("mean").aggregate(updates, weights)
    median = make_rule("median").aggregate(updates, weights)
    trimmed = make_rule("trimmed_mean", beta=0.2).aggregate(updates, weights)

    assert mean.digest() == weighted_mean(updates, weights).digest()
    assert median.digest() == coordinate_median(updates).digest()
    assert trimmed.digest() == coordinate_trimmed_mean(updates, 0.2).digest()


def test_mean_accumulator_matches_aggregate(make_updates):
    updates = make_updates(3, [(100,)], seed=2)
    rule = Mean()
    acc = rule.accumulator(updates[0].spec)
    for update, weight in zip(updates, [5, 1, 2], strict=True):
        acc.add(update, weight)

    assert acc.result().digest() == rule.aggregate(updates, [5, 1, 2]).digest()


def test_robust_rules_ignore_weights_but_check_their_count(make_updates):
    updates = make_updates(3, [(10,)], seed=3)

    assert (
        Median().aggregate(updates, [1, 1, 1]).digest()
        == Median().aggregate(updates, [100, 0, 7]).digest()
    )
    with pytest.raises(ValueError, match="weights"):
        TrimmedMean().aggregate(updates, [1, 1])


def test_unknown_rule_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        make_rule("no_such_rule")

    for name in RULE_NAMES:
        assert name in str(info.value)


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="beta"):
        make_rule("trimmed_mean", beta=0.5)
    with pytest.raises(ConfigError, match="does not accept"):
        make_rule("median", beta=0.1)


def test_rules_are_immutable():
    rule = TrimmedMean(beta=0.3)

    with pytest.raises(AttributeError):
        rule.beta = 0.1  # type: ignore[misc]


def test_public_api_is_exactly_all():
    public = {n for n in vars(aggregation) if not n.startswith("_")}
    modules = {
        "bulyan",
        "capped_mean",
        "centered_clip",
        "coordinatewise",
        "dp_mean",
        "fedbuff",
        "fltrust",
        "geometric_median",
        "gram",
        "krum",
        "norm_bound",
        "weighted_order",
        "integrity",
        "mean",
        "median",
        "network",
        "order_statistics",
        "qfedavg",
        "rule",
        "scaffold",
        "server_opt",
        "trimmed_mean",
    }

    assert set(aggregation.__all__) == public - modules
    assert all(getattr(aggregation, n) is not None for n in aggregation.__all__)


def test_rules_read_zero_copy_views_of_received_bytes(make_updates):
    updates = make_updates(4, [(3_000,), (5, 7)], seed=4)
    spec = updates[0].spec
    views = [spec.view(bytes(spec.pack(u))) for u in updates]  # read-only arrays

    for name in RULE_NAMES:
        options = {"bound": 1.0} if name == "norm_bounding" else {}
        if name == "fltrust":
            options = {"reference": updates[0]}
        rule = make_rule(name, **options)
        got = rule.aggregate(views, [1, 2, 3, 4])
        assert got.digest() == rule.aggregate(updates, [1, 2, 3, 4]).digest()
