"""Per-group counts as evaluation metrics: the wire ask, the bounds, the sum."""

from __future__ import annotations

import pytest

from accord.coordinator.executor import EvalDone
from accord.coordinator.integrity import ExampleBounds, check_eval_report
from accord.coordinator.metrics import federated_metrics
from accord.data.handshake import FairnessAsk, PrepareRequest
from accord.errors import DatasetError, UpdateRejected
from accord.evaluation.fairness import GroupCounts
from accord.evaluation.group_sums import (
    MAX_GROUPS,
    count_metrics,
    counts_from_metrics,
)


def test_the_ask_travels_in_plain_and_secure_runs():
    plain = PrepareRequest(1, 0.2, 0, fairness=FairnessAsk("colour", 0.5))
    assert PrepareRequest.from_json(plain.to_json()) == plain
    # Under secure aggregation the ask means: count, then sum securely (the
    # ``fairness`` task); the site reports nothing in the clear.
    secure = PrepareRequest.from_json(plain.to_json().replace(b'"off"', b'"masking"'))
    assert secure.secure and secure.fairness == FairnessAsk("colour", 0.5)
    bad = plain.to_json().replace(b'"threshold": 0.5', b'"threshold": 1.0')
    with pytest.raises(DatasetError, match="not in \\(0, 1\\)"):
        PrepareRequest.from_json(bad)


def test_counts_round_trip_as_metrics_and_too_many_groups_are_refused():
    counts = {"a:b": GroupCounts(1, 2, 3, 4), "c": GroupCounts(0, 0, 0, 1)}
    assert counts_from_metrics({**count_metrics(counts), "auc": 0.7}) == counts
    many = {str(i): GroupCounts(1) for i in range(MAX_GROUPS + 1)}
    assert len(count_metrics(dict(list(many.items())[:MAX_GROUPS]))) == 4 * MAX_GROUPS
    with pytest.raises(DatasetError, match="coarser"):
        count_metrics(many)


def test_a_count_is_held_to_the_example_bound_at_and_past_it():
    bounds = ExampleBounds(10)
    check_eval_report({"fairness:a:tp": 10.0}, 10, "s", bounds)
    with pytest.raises(UpdateRejected, match="'fairness:a:tp' = 11 is above"):
        check_eval_report({"fairness:a:tp": 11.0}, 10, "s", bounds)
    with pytest.raises(UpdateRejected, match="whole number"):
        check_eval_report({"fairness:a:fn": 0.5}, 10, "s", bounds)


def test_counts_are_summed_over_sites_not_averaged():
    done = {
        s: EvalDone(s, 1, {"accuracy": acc, "fairness:a:tp": tp}, n, 0.0)
        for s, acc, tp, n in (("x", 1.0, 3.0, 10), ("y", 0.0, 4.0, 30))
    }
    fed = {m.name: m.value for m in federated_metrics(done) if m.scope == "federated"}
    assert fed == {"accuracy": 0.25, "fairness:a:tp": 7.0}
