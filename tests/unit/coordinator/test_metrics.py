import math

import pytest

from accord.coordinator.executor import EvalDone
from accord.coordinator.metrics import federated_metrics, train_metrics
from accord.records import ParticipantOutcome


def _eval(site, n, **metrics):
    return EvalDone(site, 1, {**metrics, "n": float(n)}, n, 0.0)


def test_federated_metric_is_the_example_weighted_mean_and_n_is_summed():
    results = {
        "b": _eval("b", 30, accuracy=0.5, auc=math.nan),
        "a": _eval("a", 10, accuracy=0.9, auc=0.8),
    }
    values = federated_metrics(results)
    site = {(m.participant, m.name): m.value for m in values if m.scope == "site"}
    fed = {m.name: m.value for m in values if m.scope == "federated"}
    assert site[("a", "accuracy")] == 0.9
    assert math.isnan(site[("b", "auc")])
    assert fed["accuracy"] == pytest.approx((0.9 * 10 + 0.5 * 30) / 40)
    assert fed["auc"] == pytest.approx(0.8)  # the NaN site is left out
    assert fed["n"] == 40
    assert [m.participant for m in values if m.scope == "site"][0] == "a"


def _outcome(status, n, loss):
    return ParticipantOutcome("p", status, None, n, None, 0.1, {"train_loss": loss})


def test_train_metrics_ignore_participants_that_did_not_contribute():
    values = train_metrics(
        [
            _outcome("ok", 10, 1.0),
            _outcome("ok", 30, 3.0),
            _outcome("rejected", 0, 100.0),
        ]
    )
    assert [(m.scope, m.name) for m in values] == [("train", "train_loss")]
    assert values[0].value == pytest.approx(2.5)


def test_no_results_give_no_metrics():
    assert federated_metrics({}) == []
    assert train_metrics([]) == []


def test_finite_values_that_overflow_the_weighted_sum_give_a_finite_mean():
    # 1.7e308 x 30 examples overflows; weighed by its share it does not.
    results = {"a": _eval("a", 10, loss=1.0), "b": _eval("b", 30, loss=1.7e308)}
    values = federated_metrics(results)
    fed = {m.name: m.value for m in values if m.scope == "federated"}

    assert math.isfinite(fed["loss"])
    assert fed["loss"] == pytest.approx(1.7e308 * 0.75)


def test_train_metrics_that_overflow_stay_finite():
    values = train_metrics([_outcome("ok", 10, 1e308), _outcome("ok", 30, 1e308)])

    assert [(m.name, m.value) for m in values] == [("train_loss", pytest.approx(1e308))]
