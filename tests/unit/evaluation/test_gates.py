"""Release gates: each one passes at its bound and fails just past it, with a reason.

The figures are exact binary fractions, so "at the bound" is an exact comparison
and "just past" is one ulp away (``math.nextafter``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from accord.config import GatesConfig
from accord.evaluation.fairness import GroupCounts, fairness_report
from accord.evaluation.gates import GateInputs, evaluate_gates

BASE = GateInputs(
    metric="accuracy",
    status="completed",
    central=0.75,
    federated=0.625,
    sites={"a": 0.5, "b": 0.875, "c": 0.75},
    epsilon=2.5,
    scored=True,
    quarantined=("b",),
    flagged=("b", "c"),
)


def result(gates: GatesConfig, inputs: GateInputs = BASE, name: str | None = None):
    results = evaluate_gates(gates, inputs)
    assert results[0].name == "completed"
    wanted = [r for r in results if r.name == name] if name else results[1:]
    assert len(wanted) == 1
    return wanted[0]


def up(x: float) -> float:
    return math.nextafter(x, math.inf)


def down(x: float) -> float:
    return math.nextafter(x, -math.inf)


# (gate key, the figure of BASE it judges, whether it is a floor)
CASES = [
    ("central_metric", 0.75, True),
    ("federated_metric", 0.625, True),
    ("worst_site_metric", 0.5, True),
    ("max_site_spread", 0.375, False),
    ("max_epsilon", 2.5, False),
]


@pytest.mark.parametrize(("key", "figure", "floor"), CASES)
def test_a_gate_passes_at_its_bound_and_fails_just_past_it(key, figure, floor):
    past = up(figure) if floor else down(figure)

    at = result(GatesConfig(**{key: figure}))
    beyond = result(GatesConfig(**{key: past}))

    assert at.passed, at.reason
    assert not beyond.passed
    assert at.value == figure
    assert "must be at" in beyond.reason


@pytest.mark.parametrize(("key", "count"), [("max_quarantined", 1), ("max_flagged", 2)])
def test_robustness_counts_pass_at_n_and_fail_at_n_minus_one(key, count):
    at = result(GatesConfig(**{key: count}))
    beyond = result(GatesConfig(**{key: count - 1}))

    assert at.passed and not beyond.passed
    assert "b" in beyond.reason  # names the sites


def test_for_the_loss_the_metric_bound_is_a_ceiling():
    loss = replace(BASE, metric="loss", sites={"a": 0.5, "b": 0.25})

    at = result(GatesConfig(central_metric=0.75), loss)
    beyond = result(GatesConfig(central_metric=down(0.75)), loss)
    worst = result(GatesConfig(worst_site_metric=0.5), loss)
    worse = result(GatesConfig(worst_site_metric=down(0.5)), loss)

    assert at.passed and not beyond.passed
    assert worst.passed and not worse.passed
    assert "(a)" in worse.reason


def fair(tpr_a: tuple[int, int], tpr_b: tuple[int, int]):
    """Two groups; selection rates 1/2 and 1/4, the given TP/FN, FP/TN 2/2 each."""
    a = GroupCounts(tp=tpr_a[0], fn=tpr_a[1], fp=2, tn=2)
    b = GroupCounts(tp=tpr_b[0], fn=tpr_b[1], fp=2, tn=2)
    return fairness_report({"x": a, "y": b}, column="g", threshold=0.5)


def test_fairness_gates_pass_at_the_gap_and_fail_just_under_it():
    # x: TPR 3/4, selection 5/8; y: TPR 1/4, selection 3/8; FPR 1/2 both.
    report = fair((3, 1), (1, 3))
    inputs = replace(BASE, fairness=report)

    dp_at = result(GatesConfig(max_demographic_parity_difference=0.25), inputs)
    dp_past = result(GatesConfig(max_demographic_parity_difference=down(0.25)), inputs)
    eo_at = result(GatesConfig(max_equalized_odds_difference=0.5), inputs)
    eo_past = result(GatesConfig(max_equalized_odds_difference=down(0.5)), inputs)

    assert report.demographic_parity_difference == 0.25
    assert report.equalized_odds_difference == 0.5
    assert dp_at.passed and not dp_past.passed
    assert eo_at.passed and not eo_past.passed
    assert "across g" in eo_past.reason


@pytest.mark.parametrize(
    ("gates", "inputs", "says"),
    [
        (GatesConfig(central_metric=0.1), replace(BASE, central=None), "central"),
        (
            GatesConfig(federated_metric=0.1),
            replace(BASE, federated=None),
            "federated = true",
        ),
        (GatesConfig(worst_site_metric=0.1), replace(BASE, sites={}), "no site"),
        (GatesConfig(max_site_spread=1), replace(BASE, sites={}), "no site"),
        (GatesConfig(max_epsilon=100), replace(BASE, epsilon=None), "[privacy]"),
        (GatesConfig(max_quarantined=5), replace(BASE, scored=False), "[robustness]"),
        (GatesConfig(max_flagged=5), replace(BASE, scored=False), "[robustness]"),
        (
            GatesConfig(max_equalized_odds_difference=1),
            BASE,
            "sensitive",
        ),
    ],
)
def test_a_figure_nobody_measured_fails_its_gate_and_says_what_to_turn_on(
    gates, inputs, says
):
    outcome = result(gates, inputs)

    assert not outcome.passed
    assert outcome.value is None
    assert says in outcome.reason


def test_a_nan_figure_fails():
    outcome = result(GatesConfig(central_metric=0.0), replace(BASE, central=math.nan))

    assert not outcome.passed and "NaN" in outcome.reason


def test_only_a_completed_run_passes_and_no_gate_set_means_only_that():
    done = evaluate_gates(GatesConfig(), BASE)
    aborted = evaluate_gates(GatesConfig(), replace(BASE, status="aborted"))

    assert [r.name for r in done] == ["completed"]
    assert done[0].passed
    assert not aborted[0].passed and "aborted" in aborted[0].reason
