"""The default bound on huge updates: ``[strategy] max_norm_ratio`` x the median norm.

The rule (:func:`~accord.coordinator.integrity.outliers`), the round that holds its
updates until no answer still to come can make them outliers
(:class:`~accord.coordinator.round.Round`), and the round loop with default
settings against one site that sends a huge update.
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.config import config_from_mapping
from accord.coordinator.executor import JobFailed, TrainDone
from accord.coordinator.integrity import outliers
from accord.coordinator.round import Round, RoundPlan
from accord.coordinator.runner import Coordinator
from accord.errors import ConfigError
from accord.params import Params
from accord.store import MemoryStore

from .test_integrity import Scripted, _config

SITES = ("a", "b", "c", "d")


def _p(value: float, dtype: type = np.float32) -> Params:
    return Params({"w": np.full(4, value, dtype)})


# -- the rule ---------------------------------------------------------------------


def test_a_norm_at_ratio_times_the_median_passes_and_just_past_it_is_refused():
    norms = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 25.0}  # median 2.5: bound 25

    assert outliers(norms, 10.0, order=SITES) == {}
    refused = outliers({**norms, "d": 25.000001}, 10.0, order=SITES)
    assert list(refused) == ["d"]
    assert "L2 norm is 25, more than 10 times the median norm 2.5" in refused["d"]
    assert "of this round's 4 valid updates" in refused["d"]


def test_fewer_than_three_updates_or_ratio_0_judge_nothing():
    assert outliers({"a": 1.0, "b": 1e30}, 10.0, order=SITES) == {}
    assert outliers({"a": 1.0, "b": 1.0, "c": 1e30}, 0.0, order=SITES) == {}
    assert list(outliers({"a": 1.0, "b": 1.0, "c": 1e30}, 10.0, order=SITES)) == ["c"]


def test_an_infinite_norm_is_refused_and_a_zero_median_refuses_any_non_zero():
    assert list(outliers({"a": 1.0, "b": 1.0, "c": np.inf}, 10.0, order=SITES)) == ["c"]
    assert list(outliers({"a": 0.0, "b": 0.0, "c": 1e-9}, 10.0, order=SITES)) == ["c"]


@pytest.mark.parametrize("ratio", [0.5, 1.0])
def test_a_ratio_of_at_most_1_is_refused_at_load(ratio):
    with pytest.raises(ConfigError, match="max_norm_ratio"):
        _config(max_norm_ratio=ratio)


def test_the_ratio_is_on_by_default_and_0_turns_it_off():
    assert _config().strategy.max_norm_ratio == 10.0
    assert _config(max_norm_ratio=0).strategy.max_norm_ratio == 0.0
    assert _config(max_norm_ratio=1.5).strategy.max_norm_ratio == 1.5


# -- the round --------------------------------------------------------------------


class Folded:
    def __init__(self) -> None:
        self.added: list[tuple[float, float]] = []

    def add(self, update: Params, weight: float) -> None:
        self.added.append((float(update["w"][0]), weight))

    def result(self) -> Params:
        return _p(0.0)


def test_the_round_holds_each_update_until_no_answer_to_come_can_refuse_it():
    acc = Folded()
    rnd = Round(RoundPlan(1, SITES, 1), _p(0).spec, acc, max_norm_ratio=10.0)
    released: list[str] = []

    def drain() -> tuple[str, ...]:
        return rnd.drain(lambda e: released.append(e.participant))

    # Arrival order differs from selection order; d's update is an outlier.
    for site, value in (("b", 2.0), ("d", 1e6)):
        rnd.receive(TrainDone(site, 1, _p(value), 10, 0.1))
        # a (first in selection order) has not answered: nothing can fold.
        assert drain() == ()
        assert [(o.participant, o.status) for o in rnd.announce()] == [(site, "ok")]
    rnd.receive(TrainDone("a", 1, _p(1.0), 10, 0.1))
    # Norms 2, 4 and 2e6 are known, c's is not: the lowest median c can leave
    # is that of (0, 2, 4, 2e6), 3, so a and b (norms 2 and 4, under 30) can
    # never be refused and fold now; d (2e6) waits for the judgement.
    assert drain() == ("a", "b")
    assert released == ["a", "b"]
    assert [(o.participant, o.status) for o in rnd.announce()] == [("a", "ok")]
    rnd.fail(JobFailed("c", 1, "train", "failed", "crashed"))
    assert drain() == ()

    assert acc.added == [(1.0, 10.0), (2.0, 10.0)]  # selection order
    assert released == ["a", "b", "d"]  # the outlier once judged
    outcomes = {o.participant: o for o in rnd.outcomes}
    assert outcomes["d"].status == "rejected" and outcomes["d"].num_examples == 0
    reason = outcomes["d"].reason or ""
    assert "L2 norm is 2e+06, more than 10 times the median norm 4 " in reason
    # The provisional ok of d comes again, revised.
    assert [(o.participant, o.status) for o in rnd.announce()] == [
        ("c", "failed"),
        ("d", "rejected"),
    ]
    assert rnd.announce() == ()


def test_an_ok_judged_before_it_was_announced_comes_once_rejected():
    # d's provisional ok and its refusal fall between two announcements (the
    # last answer both records it and lets the round judge): it is handed out
    # once, as it stands, not once as ok and once as rejected.
    rnd = Round(RoundPlan(1, SITES, 1), _p(0).spec, Folded(), max_norm_ratio=10.0)
    for site in ("a", "b", "c"):
        rnd.receive(TrainDone(site, 1, _p(1.0), 10, 0.1))
    rnd.drain()
    assert [o.participant for o in rnd.announce()] == ["a", "b", "c"]
    rnd.receive(TrainDone("d", 1, _p(1e6), 10, 0.1))
    rnd.drain()
    assert [(o.participant, o.status) for o in rnd.announce()] == [("d", "rejected")]
    assert rnd.announce() == ()


def test_an_update_at_the_lowest_possible_bound_folds_and_just_past_it_waits():
    # b and c have norm 2, d is pending: the lowest median is that of
    # (0, 2, 2, norm of a), 2, so a folds early if its norm is at most 10 x 2.
    for value, folds in ((10.0, True), (10.0 * (1 + 2**-20), False)):
        acc = Folded()
        rnd = Round(RoundPlan(1, SITES, 1), _p(0).spec, acc, max_norm_ratio=10.0)
        rnd.receive(TrainDone("b", 1, _p(1.0), 10, 0.1))  # norm 2
        rnd.receive(TrainDone("c", 1, _p(1.0), 10, 0.1))  # norm 2
        rnd.receive(TrainDone("a", 1, _p(value), 10, 0.1))  # norm 2 x value

        assert rnd.drain() == (("a", "b", "c") if folds else ())


def test_without_the_ratio_updates_fold_as_they_come():
    acc = Folded()
    rnd = Round(RoundPlan(1, SITES, 1), _p(0).spec, acc)

    rnd.receive(TrainDone("a", 1, _p(1e6), 10, 0.1))

    assert rnd.drain() == ("a",)
    assert [o.status for o in rnd.announce()] == ["ok"]


# -- the round loop, default settings ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (float(np.finfo(np.float32).max) / 2, np.float32),
        (1e6, np.float32),  # finite everywhere: without the rule, d takes over
        (1e200, np.float64),  # finite values whose norm is inf in float64
    ],
    ids=["half-float32-max", "1e6-takeover", "1e200-float64"],
)
def test_with_defaults_one_huge_update_is_refused_and_the_model_is_the_honest_one(
    value, dtype
):
    honest = {s: _p(v, dtype) for s, v in zip(SITES, (1.0, 2.0, 3.0), strict=False)}
    config = config_from_mapping(
        {
            "federation": {"rounds": 2},
            "data": {"dataset": "wine", "sites": 4},
            "task": {"factory": "m:f"},
        }
    )

    def attacked(p: str, rnd: int) -> tuple[Params, int]:
        return (_p(value, dtype), 10) if p == "d" else (honest[p], 10)

    def without(p: str, rnd: int) -> tuple[Params, int]:
        return honest[p], 10

    store = MemoryStore()
    result = Coordinator(
        config, executor=Scripted(attacked, sites=SITES), store=store
    ).run(_p(0.0, dtype))
    expected = Coordinator(
        config, executor=Scripted(without, sites=SITES[:3]), store=MemoryStore()
    ).run(_p(0.0, dtype))

    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert result.params.digest() == expected.params.digest()
    refused = [
        o
        for r in store.rounds(result.run_id)
        for o in r.outcomes
        if o.participant == "d"
    ]
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("max_norm_ratio" in (o.reason or "") for o in refused)
