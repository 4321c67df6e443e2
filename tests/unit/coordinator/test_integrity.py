"""Example-count bounds, eval-report ranges, and what the round loop does with them.

The loop runs over :class:`Scripted`, an executor whose participants answer at once
with what the test decides, so each check is seen without processes or sockets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from accord.config import config_from_mapping
from accord.coordinator.executor import EvalDone, Event, TrainDone, TrainJob
from accord.coordinator.integrity import (
    ExampleBounds,
    check_eval_report,
    check_examples,
)
from accord.coordinator.round import Round, RoundPlan, validate_update
from accord.coordinator.runner import Coordinator
from accord.errors import RunAborted, UpdateRejected
from accord.params import Params
from accord.store import MemoryStore

SITES = ("a", "b", "c")
BOUNDS = ExampleBounds(1000, {"b": 50})


def _p(value: float) -> Params:
    return Params({"w": np.full(4, value, np.float32)})


# -- bounds -----------------------------------------------------------------------


def test_a_count_at_the_bound_passes_and_one_past_it_is_refused():
    check_examples(1000, "a", BOUNDS)
    with pytest.raises(UpdateRejected, match=r"1001 is above .* 1000 \(\[strategy\]"):
        check_examples(1001, "a", BOUNDS)


def test_a_declared_size_bounds_its_site_below_the_default():
    check_examples(50, "b", BOUNDS)
    with pytest.raises(UpdateRejected, match="declared_examples for 'b'"):
        check_examples(51, "b", BOUNDS)


@pytest.mark.parametrize("count", [0, -1])
def test_counts_below_one_are_refused(count):
    with pytest.raises(UpdateRejected, match="positive"):
        check_examples(count, "a", BOUNDS)


def test_the_bounds_come_from_strategy_and_deployment():
    config = config_from_mapping(
        {
            "data": {"dataset": "wine"},
            "task": {"factory": "m:f"},
            "strategy": {"max_examples": 70},
            "deployment": {"participants": ["x", "y"], "declared_examples": {"y": 9}},
        }
    )

    bounds = ExampleBounds.of(config)

    assert (bounds.bound("x"), bounds.bound("y")) == (70, 9)
    assert config.secure_aggregation.max_examples == 70  # one setting, both paths


def test_an_update_past_the_norm_bound_is_refused_at_the_bound_it_passes():
    update = Params({"w": np.array([3.0, 4.0], np.float32)})
    spec = update.spec

    validate_update(spec, update, 1, max_norm=5.0)
    with pytest.raises(UpdateRejected, match="L2 norm is 5"):
        validate_update(spec, update, 1, max_norm=4.99)


def test_the_round_records_an_absurd_count_as_rejected_and_folds_nothing():
    folded: list[float] = []

    class Acc:
        def add(self, update: Params, weight: float) -> None:
            folded.append(weight)

        def result(self) -> Params:
            return _p(0.0)

    rnd = Round(RoundPlan(1, SITES, 1), _p(0).spec, Acc(), bounds=BOUNDS)
    outcome = rnd.receive(TrainDone("c", 1, _p(1.0), 2**63 - 1, 0.1))
    rnd.drain()

    assert outcome.status == "rejected"
    assert "9223372036854775807 is above" in (outcome.reason or "")
    assert folded == []


# -- evaluation reports -----------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "count"),
    [
        ({"accuracy": 1.0, "auc": 0.0, "loss": 0.0, "n": 1000.0}, 1000),
        ({"auc": math.nan, "loss": 3.5}, 10),  # an undefined AUC is allowed
        ({"custom": -7.0}, 10),  # metrics accord does not define are not judged
        # a site's personalized model is held to its twin's range
        ({"personalized_accuracy": 1.0, "personalized_loss": 0.0}, 10),
    ],
)
def test_reports_within_range_pass(metrics, count):
    check_eval_report(metrics, count, "a", BOUNDS)


@pytest.mark.parametrize(
    ("metrics", "count", "reason"),
    [
        ({"auc": 1.0000001}, 10, "'auc' = 1.0000001 is outside"),
        ({"accuracy": -1e-9}, 10, "'accuracy' = -1e-09 is outside"),
        ({"loss": -1e-9}, 10, "'loss' = -1e-09 is outside"),
        ({"loss": math.inf}, 10, "must be finite"),
        ({"auc": 1.0}, 1001, "1001 is above"),
        ({"n": 1001.0}, 1000, "'n' = 1001 is above"),
        ({"n": 2.5}, 10, "whole number"),
        ({"personalized_accuracy": 1.0000001}, 10, "'personalized_accuracy' = 1.0"),
        ({"personalized_loss": -1e-9}, 10, "'personalized_loss' = -1e-09 is outside"),
        ({"personalized_loss": math.inf}, 10, "must be finite"),
    ],
)
def test_reports_just_past_a_bound_are_refused(metrics, count, reason):
    with pytest.raises(UpdateRejected, match=reason.replace("(", r"\(")):
        check_eval_report(metrics, count, "a", BOUNDS)


# -- the round loop -----------------------------------------------------------------


class Scripted:
    """Participants that answer each job at once: ``train(p, round) -> (update, n)``."""

    def __init__(
        self,
        train: Callable[[str, int], tuple[Params, int]],
        evaluate: Callable[[str], tuple[Mapping[str, float], int]] | None = None,
        *,
        sites: Sequence[str] = SITES,
    ) -> None:
        self._sites = tuple(sites)
        self._train = train
        self._evaluate = evaluate or (lambda p: ({"accuracy": 0.5}, 10))
        self._events: list[Event] = []
        self.published: list[Params] = []

    @property
    def participants(self) -> tuple[str, ...]:
        return self._sites

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        self.published.append(params)

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        for job in jobs:
            update, n = self._train(job.participant, round_number)
            self._events.append(
                TrainDone(job.participant, round_number, update, n, 0.01)
            )

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        for p in participants:
            metrics, n = self._evaluate(p)
            self._events.append(EvalDone(p, round_number, metrics, n, 0.01))

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        return {}

    def submit_secagg(self, *args: Any) -> None:
        raise AssertionError("plain rounds only")

    def next_event(self, timeout: float | None) -> Event | None:
        return self._events.pop(0) if self._events else None

    def release(self, event: TrainDone) -> None:
        pass

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


def _config(rounds: int = 2, **strategy: Any):
    return config_from_mapping(
        {
            "federation": {"rounds": rounds},
            "data": {"dataset": "wine", "sites": 3},
            "task": {"factory": "m:f"},
            "round": {"max_failed_rounds": 2},
            "strategy": strategy,
        }
    )


def test_an_absurd_count_is_refused_and_the_model_is_the_honest_mean():
    def train(p: str, rnd: int) -> tuple[Params, int]:
        return (_p(100.0), 2**63 - 1) if p == "c" else (_p(1.0), 10)

    store = MemoryStore()
    result = Coordinator(_config(rounds=1), executor=Scripted(train), store=store).run(
        _p(0.0)
    )

    np.testing.assert_array_equal(result.params["w"], np.float32(1.0))
    (record,) = store.rounds(result.run_id)
    outcome = {o.participant: o for o in record.outcomes}["c"]
    assert (record.status, outcome.status) == ("completed", "rejected")
    assert "above this federation's bound of 100000" in (outcome.reason or "")


def test_one_site_with_most_examples_holds_at_most_half_the_weight():
    def train(p: str, rnd: int) -> tuple[Params, int]:
        return (_p(10.0), 90_000) if p == "c" else (_p(0.0), 10)

    # The weight cap alone: the norm ratio would refuse c (the median norm is 0).
    result = Coordinator(
        _config(rounds=1, max_norm_ratio=0),
        executor=Scripted(train),
        store=MemoryStore(),
    ).run(_p(0.0))

    np.testing.assert_allclose(result.params["w"], 5.0)  # c's share is exactly 0.5


def test_a_model_that_would_overflow_fails_the_round_and_is_not_kept():
    # Finite updates (3e38, within float32) on a finite model: global + delta is
    # +inf in float32. Round 2's updates are small and complete normally.
    def train(p: str, rnd: int) -> tuple[Params, int]:
        return (_p(3e38), 10) if rnd == 1 else (_p(1.0), 10)

    executor = Scripted(train)
    store = MemoryStore()
    result = Coordinator(_config(rounds=2), executor=executor, store=store).run(
        _p(3e38)
    )

    first, second = result.rounds
    assert first.status == "failed"
    assert "model failed the finite check" in (first.reason or "")
    assert "tensor 'w'" in (first.reason or "")
    assert second.status == "completed"
    np.testing.assert_array_equal(executor.published[1]["w"], np.float32(3e38))
    events = store.events(result.run_id)
    assert [(e.round, e.kind) for e in events] == [(1, "aggregate_refused")]
    assert "finite check" in events[0].detail


def test_an_aggregate_past_the_norm_bound_is_refused_and_the_state_kept():
    # In a plain round each update is refused past the bound first (the mean of
    # bounded updates is bounded); the aggregate's own check is what holds in secure
    # rounds, where individual updates are hidden. Seen here at the step itself.
    config = _config(rounds=1, max_update_norm=2.0)
    store = MemoryStore()
    run_id = store.create_run(name="t", config={}, seed=0, rounds_planned=1)
    coordinator = Coordinator(
        config, executor=Scripted(lambda p, r: (_p(0), 1)), store=store
    )
    model, state = _p(0.0), Params({"step": np.array(0.0)})

    kept = coordinator._end.step(
        run_id, 1, model, state, _p(1.0)
    )  # norm 2: at the bound
    refused = coordinator._end.step(run_id, 1, model, state, _p(1.0000001))

    assert kept[2] is None
    assert refused[0] is model and refused[1] is state
    assert "aggregate failed the norm check" in (refused[2] or "")
    assert [e.kind for e in store.events(run_id)] == ["aggregate_refused"]


def test_an_update_past_the_norm_bound_is_refused_in_the_round():
    def train(p: str, rnd: int) -> tuple[Params, int]:
        return (_p(1e6), 10) if p == "c" else (_p(1.0), 10)

    store = MemoryStore()
    result = Coordinator(
        _config(rounds=1, max_update_norm=2.0), executor=Scripted(train), store=store
    ).run(_p(0.0))

    (record,) = store.rounds(result.run_id)
    outcome = {o.participant: o for o in record.outcomes}["c"]
    assert outcome.status == "rejected" and "L2 norm" in (outcome.reason or "")
    np.testing.assert_array_equal(result.params["w"], np.float32(1.0))


def test_rounds_failing_their_checks_count_toward_max_failed_rounds():
    def train(p: str, rnd: int) -> tuple[Params, int]:
        return _p(3e38), 10

    config = _config(rounds=5)
    store = MemoryStore()
    with pytest.raises(RunAborted, match="2 rounds in a row failed"):
        Coordinator(config, executor=Scripted(train), store=store).run(_p(3e38))
    (run,) = store.list_runs()
    assert [r.status for r in store.rounds(run.run_id)] == ["failed", "failed"]
    assert all(r.global_digest == _p(3e38).digest() for r in store.rounds(run.run_id))


def test_a_lying_eval_report_is_refused_recorded_and_left_out():
    def evaluate(p: str) -> tuple[Mapping[str, float], int]:
        return ({"auc": 1.0}, 2**63 - 1) if p == "c" else ({"auc": 0.6}, 10)

    store = MemoryStore()
    result = Coordinator(
        _config(rounds=1),
        executor=Scripted(lambda p, r: (_p(1.0), 10), evaluate),
        store=store,
    ).run(_p(0.0))

    assert result.rounds[0].metrics["federated.auc"] == pytest.approx(0.6)
    (event,) = store.events(result.run_id)
    assert (event.participant, event.kind) == ("c", "eval_refused")
    assert "is above this federation's bound" in event.detail


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty name"),
        ("x" * 201, "longer than 200"),
        ("loss\x00", "control characters"),
        ("acc\nuracy", "control characters"),
        ("\ud800", "unpaired surrogates"),
    ],
)
def test_a_metric_name_the_store_cannot_keep_is_refused(name, reason):
    with pytest.raises(UpdateRejected, match=reason):
        check_eval_report({name: 0.5}, 10, "a", BOUNDS)

    class Acc:
        def add(self, update: Params, weight: float) -> None:
            raise AssertionError("a refused update was folded")

        def result(self) -> Params:
            return _p(0.0)

    rnd = Round(RoundPlan(1, SITES, 1), _p(0).spec, Acc(), bounds=BOUNDS)
    outcome = rnd.receive(TrainDone("c", 1, _p(1.0), 10, 0.1, metrics={name: 1.0}))
    rnd.drain()
    assert outcome.status == "rejected"
    assert reason in (outcome.reason or "")


def test_a_name_of_200_characters_is_kept():
    check_eval_report({"x" * 200: 0.5, "fairness:é:tp": 3.0}, 10, "a", BOUNDS)
