"""Client sampling by count, uniform weighting, the straggler cut (close_fraction)."""

import numpy as np
import pytest

from accord.config import FedConfig
from accord.coordinator.executor import TrainDone
from accord.coordinator.round import Round, RoundPlan
from accord.coordinator.selection import select
from accord.errors import ConfigError, UpdateRejected
from accord.params import Params

ROSTER = tuple(f"site-{i:02d}" for i in range(20))


class SumAccumulator:
    def __init__(self):
        self.added: list[tuple[float, float]] = []

    def add(self, update, weight):
        self.added.append((float(update["w"][0]), weight))

    def result(self):
        total = sum(w for _, w in self.added)
        value = sum(u * w for u, w in self.added) / total
        return Params({"w": np.full(2, value, np.float32)})


def _done(p, value, n):
    return TrainDone(
        participant=p,
        round=1,
        update=Params({"w": np.full(2, value, np.float32)}),
        num_examples=n,
        duration_s=0.0,
    )


def _spec():
    return Params({"w": np.zeros(2, np.float32)}).spec


def test_count_samples_exactly_that_many_seeded():
    picks = [
        select(ROSTER, fraction=1.0, minimum=1, run_seed=7, round_number=r, count=4)
        for r in range(1, 6)
    ]
    assert all(len(p) == 4 for p in picks)
    assert len(set(picks)) > 1  # a fresh sample each round
    again = select(ROSTER, fraction=1.0, minimum=1, run_seed=7, round_number=1, count=4)
    assert again == picks[0]
    assert list(picks[0]) == sorted(picks[0], key=ROSTER.index)


def test_count_is_bounded_by_minimum_and_roster():
    assert len(select(ROSTER, fraction=1, minimum=6, run_seed=0, round_number=1,
                      count=2)) == 6  # fmt: skip
    assert select(ROSTER, fraction=1, minimum=1, run_seed=0, round_number=1,
                  count=50) == ROSTER  # fmt: skip


def test_uniform_weighting_gives_every_update_weight_one():
    acc = SumAccumulator()
    rnd = Round(RoundPlan(1, ("a", "b"), 1), _spec(), acc, uniform=True)
    rnd.receive(_done("a", 1.0, 10))
    rnd.receive(_done("b", 4.0, 30))
    rnd.drain()
    assert [w for _, w in acc.added] == [1.0, 1.0]
    np.testing.assert_allclose(rnd.aggregate()["w"], 2.5)  # (1 + 4) / 2, not 3.25


def test_example_weighting_is_the_default():
    acc = SumAccumulator()
    rnd = Round(RoundPlan(1, ("a", "b"), 1), _spec(), acc)
    rnd.receive(_done("a", 1.0, 10))
    rnd.receive(_done("b", 4.0, 30))
    rnd.drain()
    np.testing.assert_allclose(rnd.aggregate()["w"], 3.25)


def test_close_fraction_closes_the_round_and_records_the_rest_late():
    acc = SumAccumulator()
    plan = RoundPlan(1, ("a", "b", "c", "d"), 2)
    rnd = Round(plan, _spec(), acc, close_fraction=0.5)
    rnd.receive(_done("c", 2.0, 10))
    assert not rnd.closable
    rnd.receive(_done("a", 4.0, 10))
    assert rnd.closable and not rnd.finished
    late = rnd.close()
    assert [o.participant for o in late] == ["b", "d"]
    assert all(o.status == "timeout" and o.reason.startswith("late:") for o in late)
    assert rnd.finished
    rnd.drain()
    np.testing.assert_allclose(rnd.aggregate()["w"], 3.0)
    with pytest.raises(UpdateRejected, match="duplicate"):
        rnd.receive(_done("b", 100.0, 10))  # a late update is never folded
    assert len(acc.added) == 2


def _config(**sections):
    base = {"data": {"dataset": "x", "sites": 10}, "task": {"factory": "m:o"}}
    return FedConfig.model_validate({**base, **sections})


def test_count_and_fraction_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        _config(selection={"count": 3, "fraction": 0.5})


def test_close_fraction_below_quorum_is_refused():
    from accord.config.checks import check_compatibility

    cfg = _config(round={"close_fraction": 0.3, "quorum": 0.5})
    with pytest.raises(ConfigError, match="quorum") as err:
        check_compatibility(cfg)
    assert err.value.key == "round.close_fraction"


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"secure_aggregation": {"mode": "masking"}}, "secure_aggregation.mode"),
        ({"strategy": {"aggregation": "median"}}, "strategy.aggregation"),
        ({"strategy": {"scaffold": True}}, "strategy.scaffold"),
        ({"round": {"mode": "async", "buffer_size": 11}}, "round.buffer_size"),
    ],
)
def test_async_refuses_what_needs_a_synchronous_round(sections, key):
    from accord.config.checks import check_compatibility

    rnd = {"mode": "async", **sections.pop("round", {})}
    cfg = _config(round=rnd, **sections)
    with pytest.raises(ConfigError, match="async") as err:
        check_compatibility(cfg)
    assert err.value.key == key


def test_async_refuses_close_fraction():
    with pytest.raises(ValueError, match="close_fraction"):
        _config(round={"mode": "async", "close_fraction": 0.5})


def test_slowdown_factors_must_be_positive():
    with pytest.raises(ValueError, match="slowdown"):
        _config(simulation={"slowdown": {"site-1": 0}})
    cfg = _config(simulation={"slowdown": {"site-1": 10}})
    assert cfg.simulation.slowdown == {"site-1": 10.0}
