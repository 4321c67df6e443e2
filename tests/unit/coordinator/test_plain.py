"""A plain round's collection: events in order, buffers released once, late sites cut.

:class:`~accord.coordinator.plain.PlainCollector` over a scripted executor and a
fake clock: what it submits, which outcomes it announces and when, which update
buffers it hands back (each exactly once, a refused one at once, a held one only
after the round folded it), what it records of the bytes sent, and how a deadline
or ``close_fraction`` ends the wait.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from accord.coordinator.executor import Event, JobFailed, TrainDone, TrainJob
from accord.coordinator.plain import PlainCollector
from accord.coordinator.round import Round, RoundPlan
from accord.params import Params
from accord.records import ParticipantOutcome
from accord.task.protocol import TrainConfig

SELECTED = ("a", "b", "c", "d")


class SumAccumulator:
    """A weighted sum that copies what it folds (so a released buffer may change)."""

    def __init__(self) -> None:
        self.added: list[tuple[str, float]] = []
        self._sum = np.zeros(3)
        self._weight = 0.0

    def add(self, update: Params, weight: float) -> None:
        self._sum += update["w"].astype(np.float64) * weight
        self._weight += weight
        self.added.append((f"{float(update['w'][0]):g}", weight))

    def result(self) -> Params:
        return Params({"w": (self._sum / self._weight).astype(np.float32)})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """Hands out scripted events; a ``None`` in the script is a wait that times out."""

    def __init__(self, script: Sequence[Event | None], clock: Clock) -> None:
        self._script = list(script)
        self._clock = clock
        self.submitted: list[tuple[int, list[str]]] = []
        self.released: list[str] = []
        self.abandoned: list[tuple[int, tuple[str, ...]]] = []
        #: What had been released each time an event was asked for.
        self.snapshots: list[list[str]] = []

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        self.submitted.append((round_number, [j.participant for j in jobs]))

    def next_event(self, timeout: float | None) -> Event | None:
        self.snapshots.append(list(self.released))
        if not self._script:
            self._clock.now += timeout or 0.0  # nothing more: the deadline passes
            return None
        event = self._script.pop(0)
        if event is None:
            self._clock.now += 1.0
        return event

    def release(self, event: TrainDone) -> None:
        self.released.append(event.participant)

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        self.abandoned.append((round_number, tuple(participants)))


def _done(who: str, value: float, *, n: int = 10, rnd: int = 1) -> TrainDone:
    return TrainDone(
        participant=who,
        round=rnd,
        update=Params({"w": np.full(3, value, dtype=np.float32)}),
        num_examples=n,
        duration_s=0.0,
        bytes_sent=100 + n,
    )


def _jobs(selected: Sequence[str] = SELECTED) -> list[TrainJob]:
    return [
        TrainJob(
            participant=p,
            config=TrainConfig(
                epochs=1, batch_size=8, learning_rate=0.1, seed=0, round=1
            ),
        )
        for p in selected
    ]


def _collector(
    script: Sequence[Event | None],
    *,
    ratio: float = 0.0,
    close_fraction: float = 1.0,
    required: int = 2,
) -> tuple[PlainCollector, Round, Scripted, SumAccumulator, list[ParticipantOutcome]]:
    clock = Clock()
    executor = Scripted(script, clock)
    acc = SumAccumulator()
    rnd = Round(
        RoundPlan(1, SELECTED, required),
        Params({"w": np.zeros(3, dtype=np.float32)}).spec,
        acc,
        max_norm_ratio=ratio,
        close_fraction=close_fraction,
    )
    told: list[ParticipantOutcome] = []
    collector = PlainCollector(
        executor=executor, rnd=rnd, clock=clock, on_outcome=told.append
    )
    return collector, rnd, executor, acc, told


def test_every_update_is_folded_in_selection_order_and_released_once() -> None:
    script = [_done("c", 3.0), _done("a", 1.0), _done("d", 4.0), _done("b", 2.0)]
    collector, rnd, ex, acc, told = _collector(script)
    started: list[int] = []
    collector.collect(
        _jobs(), t0=0.0, deadline_s=60.0, submitted=lambda: started.append(1)
    )
    assert ex.submitted == [(1, list(SELECTED))]
    assert started == [1]
    assert [v for v, _ in acc.added] == ["1", "2", "3", "4"]  # a, b, c, d
    assert sorted(ex.released) == sorted(SELECTED)
    assert len(ex.released) == len(set(ex.released))
    assert [o.participant for o in told] == ["c", "a", "d", "b"]
    assert {o.status for o in told} == {"ok"}
    assert ex.abandoned == []
    delta, reason = collector.aggregate()
    assert reason is None and delta is not None
    np.testing.assert_allclose(delta["w"], 2.5)
    assert collector.sent == dict.fromkeys(SELECTED, 110)


def test_a_refused_update_is_released_at_once_and_the_round_goes_on() -> None:
    bad = _done("b", np.nan)
    script = [bad, _done("a", 1.0), _done("c", 3.0), _done("d", 4.0)]
    collector, rnd, ex, acc, told = _collector(script)
    collector.collect(_jobs(), t0=0.0, deadline_s=60.0)
    assert ex.snapshots[1] == ["b"]  # before the next event was taken
    outcome = {o.participant: o for o in told}
    assert outcome["b"].status == "rejected" and "NaN" in (outcome["b"].reason or "")
    assert [v for v, _ in acc.added] == ["1", "3", "4"]
    assert sorted(ex.released) == sorted(SELECTED)


def test_under_the_norm_ratio_a_held_update_is_released_only_once_folded() -> None:
    # "a" (norm 6x the others) cannot be judged safe while two sites might still
    # send zeros, and "b" waits behind it (folds go in selection order): both stay
    # held, not released, until "c" makes "a" safe. "d" (50x) comes last and is
    # refused by the judgement before its "ok" was ever told: told once, rejected.
    clock = Clock()
    script = [_done("a", 6.0), _done("b", 1.0), _done("c", 1.1), _done("d", 50.0)]
    ex = Scripted(script, clock)
    acc = SumAccumulator()
    rnd = Round(
        RoundPlan(1, SELECTED, 2),
        Params({"w": np.zeros(3, dtype=np.float32)}).spec,
        acc,
        max_norm_ratio=10.0,
    )
    told: list[ParticipantOutcome] = []
    collector = PlainCollector(
        executor=ex, rnd=rnd, clock=clock, on_outcome=told.append
    )
    collector.collect(_jobs(), t0=0.0, deadline_s=60.0)
    assert ex.snapshots[1] == []  # "a" is in, and held
    assert ex.snapshots[2] == []  # "b" too, behind it
    assert sorted(ex.snapshots[3]) == ["a", "b", "c"]  # "c" made them safe
    outcome = {o.participant: o.status for o in rnd.outcomes}
    assert outcome == {"a": "ok", "b": "ok", "c": "ok", "d": "rejected"}
    assert [(o.participant, o.status) for o in told if o.participant == "d"] == [
        ("d", "rejected")
    ]
    assert sorted(ex.released) == sorted(SELECTED)  # each once, the outlier too
    delta, reason = collector.aggregate()
    assert reason is None and delta is not None
    np.testing.assert_allclose(delta["w"], (6.0 + 1.0 + 1.1) / 3, rtol=1e-6)


def test_a_silent_site_is_timed_out_and_abandoned_at_the_deadline() -> None:
    script = [_done("a", 1.0), _done("b", 2.0), None, _done("c", 3.0)]
    collector, rnd, ex, acc, told = _collector(script)
    collector.collect(_jobs(), t0=0.0, deadline_s=60.0)
    assert ex.abandoned == [(1, ("d",))]
    outcome = {o.participant: o.status for o in rnd.outcomes}
    assert outcome == {"a": "ok", "b": "ok", "c": "ok", "d": "timeout"}
    assert "d" in [o.participant for o in told]
    assert [v for v, _ in acc.added] == ["1", "2", "3"]


def test_close_fraction_cuts_the_stragglers_once_enough_answered() -> None:
    script = [_done("b", 2.0), _done("a", 1.0), _done("d", 4.0)]
    collector, rnd, ex, acc, told = _collector(script, close_fraction=0.5)
    collector.collect(_jobs(), t0=0.0, deadline_s=60.0)
    assert ex.abandoned == [(1, ("c", "d"))]  # d had not been taken yet
    outcome = {o.participant: o.status for o in rnd.outcomes}
    assert outcome["a"] == outcome["b"] == "ok"
    assert outcome["c"] == outcome["d"] == "timeout"
    assert [v for v, _ in acc.added] == ["1", "2"]


def test_stale_and_foreign_events_change_nothing() -> None:
    script: list[Event | None] = [
        _done("a", 1.0, rnd=7),  # another round's update
        JobFailed(participant="b", round=1, kind="eval", status="failed", reason="x"),
        _done("a", 1.0),
        _done("b", 2.0),
        _done("c", 3.0),
        _done("d", 4.0),
    ]
    collector, rnd, ex, acc, told = _collector(script)
    collector.collect(_jobs(), t0=0.0, deadline_s=60.0)
    assert {o.participant: o.status for o in rnd.outcomes} == dict.fromkeys(
        SELECTED, "ok"
    )
    assert [v for v, _ in acc.added] == ["1", "2", "3", "4"]


def test_a_round_below_quorum_gives_no_aggregate_and_says_why() -> None:
    fail = JobFailed(
        participant="b", round=1, kind="train", status="failed", reason="crashed"
    )
    collector, rnd, ex, acc, told = _collector([_done("a", 1.0), fail], required=3)
    collector.collect(_jobs(), t0=0.0, deadline_s=60.0)
    delta, reason = collector.aggregate()
    assert delta is None
    assert reason is not None and "quorum" in reason
    assert ex.abandoned == [(1, ("c", "d"))]


def test_each_update_is_shown_to_the_receipt_check_and_its_bytes_counted() -> None:
    seen: list[str] = []
    clock = Clock()
    script = [_done("a", 1.0, n=5), _done("b", np.nan, n=7)]
    ex = Scripted(script, clock)
    rnd = Round(
        RoundPlan(1, ("a", "b"), 1),
        Params({"w": np.zeros(3, dtype=np.float32)}).spec,
        SumAccumulator(),
    )
    collector = PlainCollector(
        executor=ex, rnd=rnd, clock=clock, receipt=lambda e: seen.append(e.participant)
    )
    collector.collect(_jobs(("a", "b")), t0=0.0, deadline_s=60.0)
    assert seen == ["a", "b"]  # a refused update's receipt is still checked
    sent = collector.sent
    assert sent == {"a": 105, "b": 107}
    sent["a"] = 0
    assert collector.sent["a"] == 105  # a copy
