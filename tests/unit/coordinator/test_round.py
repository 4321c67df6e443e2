import numpy as np
import pytest

from accord.coordinator.executor import JobFailed, TrainDone
from accord.coordinator.round import Round, RoundPlan, validate_update
from accord.errors import RoundFailed, UpdateRejected
from accord.params import Params


class SumAccumulator:
    """Weighted sum, enough to see what was folded."""

    def __init__(self):
        self.added: list[tuple[Params, float]] = []

    def add(self, update, weight):
        self.added.append((update.copy(), weight))

    def result(self):
        total = sum(w for _, w in self.added)
        return Params({"w": sum(u["w"] * w for u, w in self.added) / total})


def _params(value=0.0, shape=(2, 3)):
    return Params({"w": np.full(shape, value, dtype=np.float32)})


def _done(p, value=1.0, n=10, rnd=1, shape=(2, 3)):
    return TrainDone(
        participant=p,
        round=rnd,
        update=_params(value, shape),
        num_examples=n,
        duration_s=0.1,
    )


def _round(selected=("a", "b", "c"), required=2):
    acc = SumAccumulator()
    return Round(RoundPlan(1, selected, required), _params().spec, acc), acc


def test_valid_updates_are_folded_with_their_weight():
    rnd, acc = _round()
    rnd.receive(_done("a", 1.0, n=10))
    rnd.receive(_done("b", 4.0, n=30))
    assert rnd.drain() == ("a", "b")
    assert [w for _, w in acc.added] == [10.0, 30.0]
    assert rnd.pending == ("c",)
    np.testing.assert_allclose(rnd.aggregate()["w"], 3.25)


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (_params(np.nan), "NaN"),
        (_params(np.inf), "NaN or infinite"),
        (_params(1.0, shape=(3, 2)), "shape"),
        (Params({"v": np.zeros((2, 3), np.float32)}), "names differ"),
        (Params({"w": np.zeros((2, 3), np.float64)}), "dtype"),
    ],
)
def test_bad_updates_are_rejected_with_reason_and_never_folded(update, reason):
    rnd, acc = _round()
    event = TrainDone(
        participant="a", round=1, update=update, num_examples=5, duration_s=0.0
    )
    outcome = rnd.receive(event)
    assert outcome.status == "rejected"
    assert reason in outcome.reason
    assert acc.added == []
    assert "a" not in rnd.pending


def test_duplicate_wrong_round_and_unselected_raise_without_recording():
    rnd, acc = _round()
    rnd.receive(_done("a"))
    rnd.drain()
    with pytest.raises(UpdateRejected, match="duplicate"):
        rnd.receive(_done("a", 9.0))
    with pytest.raises(UpdateRejected, match="round 2"):
        rnd.receive(_done("b", rnd=2))
    with pytest.raises(UpdateRejected, match="not selected"):
        rnd.receive(_done("z"))
    assert len(acc.added) == 1
    assert rnd.pending == ("b", "c")


def test_failures_and_timeouts_are_recorded_and_quorum_enforced():
    rnd, _ = _round()
    rnd.receive(_done("a"))
    rnd.fail(JobFailed("b", 1, "train", "failed", "ValueError: boom"))
    timed_out = rnd.expire(30.0)
    rnd.drain()
    assert [o.participant for o in timed_out] == ["c"]
    assert timed_out[0].status == "timeout"
    assert rnd.finished
    assert [o.status for o in rnd.outcomes] == ["ok", "failed", "timeout"]
    with pytest.raises(RoundFailed) as info:
        rnd.aggregate()
    assert (info.value.received, info.value.required) == (1, 2)


def test_validate_update_rejects_non_positive_examples():
    with pytest.raises(UpdateRejected, match="num_examples"):
        validate_update(_params().spec, _params(), 0)


def test_plan_requires_feasible_quorum():
    with pytest.raises(ValueError):
        RoundPlan(1, ("a",), 2)


def test_updates_fold_in_selection_order_whatever_the_arrival_order():
    rnd, acc = _round()
    late_first = _done("c", 3.0)
    rnd.receive(late_first)
    assert rnd.holds(late_first)
    assert rnd.drain() == ()
    rnd.receive(_done("b", 2.0))
    assert rnd.drain() == ()
    rnd.fail(JobFailed("a", 1, "train", "failed", "gone"))
    assert rnd.drain() == ("b", "c")
    assert not rnd.holds(late_first)
    assert [float(u["w"][0, 0]) for u, _ in acc.added] == [2.0, 3.0]


def test_aggregate_refuses_while_updates_wait():
    rnd, _ = _round()
    rnd.receive(_done("b"))
    with pytest.raises(RuntimeError, match="drain"):
        rnd.aggregate()


def test_validate_update_accepts_large_finite_values_whose_float32_sum_overflows():
    big = Params({"w": np.full(8, 3e38, dtype=np.float32)})
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.add.reduce(big["w"]))  # the fast sum overflows
    validate_update(big.spec, big, 1)  # yet every value is finite
    for bad in (np.nan, np.inf, -np.inf):
        values = np.full(8, 3e38, dtype=np.float32)
        values[5] = bad
        update = Params({"w": values})
        with pytest.raises(UpdateRejected, match="NaN or infinite"):
            validate_update(update.spec, update, 1)
    mixed = Params({"w": np.array([np.inf, -np.inf, 1.0], dtype=np.float32)})
    with pytest.raises(UpdateRejected, match="NaN or infinite"):
        validate_update(mixed.spec, mixed, 1)


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (_params(1.0, shape=(3, 2)), "shape"),
        (Params({"w": np.zeros((2, 3), np.float64)}), "dtype"),
    ],
)
def test_an_update_whose_values_were_checked_still_has_its_structure_checked(
    update, reason
):
    rnd, acc = _round()
    event = TrainDone(
        participant="a",
        round=1,
        update=update,
        num_examples=5,
        duration_s=0.0,
        values_checked=True,
    )
    outcome = rnd.receive(event)
    assert outcome.status == "rejected" and reason in outcome.reason
    assert acc.added == []


def test_only_an_executor_that_checked_the_values_skips_reading_them():
    rnd, _ = _round()
    unchecked = rnd.receive(_done("a", np.nan))
    trusted = TrainDone(
        participant="b",
        round=1,
        update=_params(np.nan),
        num_examples=5,
        duration_s=0.0,
        values_checked=True,  # the executor vouches; the round does not look again
    )
    assert unchecked.status == "rejected"
    assert rnd.receive(trusted).status == "ok"
