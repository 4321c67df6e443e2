"""The pure parts of a deployed run's secure fairness sum: groups, request, record."""

from __future__ import annotations

import json

import pytest

from accord.coordinator.group_sum import (
    COVERAGE,
    GroupSum,
    declared_groups,
    session_id,
)
from accord.data.handshake import FairnessSumRequest
from accord.errors import ConfigError, DatasetError
from accord.evaluation.fairness import MISSING_GROUP, GroupCounts
from accord.evaluation.group_sums import MAX_GROUPS, counts_from_metrics

LEVELS = (("plan", ("basic", "pro")), ("colour", ("blue", "red", "missing")))


def test_the_groups_are_the_contracts_levels_and_the_missing_group():
    assert declared_groups("colour", LEVELS) == (
        "blue",
        "red",
        "missing",
        MISSING_GROUP,
    )


def test_a_column_outside_the_contract_or_with_too_many_levels_is_refused():
    with pytest.raises(ConfigError, match="not a categorical column"):
        declared_groups("age", LEVELS)
    many = (("state", tuple(f"s{i}" for i in range(MAX_GROUPS))),)
    with pytest.raises(ConfigError, match="coarser"):
        declared_groups("state", many)


def test_the_sum_is_its_own_session_not_the_training_rounds():
    assert session_id("abc") == "abc/fairness" != "abc"


def test_a_closed_sum_records_counts_coverage_and_who_is_missing():
    counts = {"blue": GroupCounts(1, 2, 3, 4), "red": GroupCounts(0, 0, 5, 1)}
    done = GroupSum(
        2, ("a", "b", "c"), ("a", "c"), counts, {"b": "no fairness message"}
    )

    metrics = {m.name: m.value for m in done.metrics()}
    assert all(m.scope == "federated" for m in done.metrics())
    assert counts_from_metrics(metrics) == counts
    assert metrics[COVERAGE] == pytest.approx(2 / 3)
    detail = json.loads(done.detail())
    assert detail["contributors"] == ["a", "c"] and detail["summed"]
    assert detail["missing"] == {"b": "no fairness message"}


def test_a_sum_that_did_not_close_gives_no_metrics_and_says_why():
    done = GroupSum(3, ("a", "b"), (), None, {"a": "x", "b": "y"}, "too few")
    assert done.metrics() == [] and done.coverage == 0.0
    assert json.loads(done.detail())["reason"] == "too few"


def test_the_request_round_trips_and_bad_ones_are_refused():
    request = FairnessSumRequest("ab" * 32, ("blue", MISSING_GROUP), '{"job": 1}')
    assert FairnessSumRequest.from_json(request.to_json()) == request
    doc = json.loads(request.to_json())
    bad = [
        {**doc, "model": "not-a-digest"},
        {**doc, "groups": []},
        {**doc, "groups": ["blue", "blue"]},
        {**doc, "groups": [f"g{i}" for i in range(MAX_GROUPS + 1)]},
        {**doc, "groups": ["x" * 201]},
        {**doc, "secure": 3},
        {**doc, "extra": 1},
    ]
    for forged in bad:
        with pytest.raises(DatasetError):
            FairnessSumRequest.from_json(json.dumps(forged).encode())
