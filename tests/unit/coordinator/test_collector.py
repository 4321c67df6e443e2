"""The one deadline-driven wait: a fake clock and a scripted event source."""

from __future__ import annotations

from collections.abc import Sequence

from accord.coordinator.collector import collect
from accord.coordinator.executor import EvalDone, Event


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Script:
    """Hands out events; each wait advances the clock by ``step`` (or the timeout)."""

    def __init__(self, clock: FakeClock, events: Sequence[Event | None], step=1.0):
        self.clock = clock
        self.events = list(events)
        self.step = step
        self.timeouts: list[float] = []
        self.abandoned: list[tuple[int, tuple[str, ...]]] = []

    def next_event(self, timeout: float | None) -> Event | None:
        assert timeout is not None and timeout > 0
        self.timeouts.append(timeout)
        if not self.events:
            self.clock.now += timeout  # nothing comes: the whole wait passes
            return None
        self.clock.now += self.step
        return self.events.pop(0)

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        self.abandoned.append((round_number, tuple(participants)))


def _eval(p: str) -> EvalDone:
    return EvalDone(p, 1, {}, 1, 0.0)


def _wait(script: Script, clock: FakeClock, waiting: set[str], deadline: float):
    handled: list[str] = []
    expired: list[tuple[str, ...]] = []

    def handle(event: Event) -> None:
        handled.append(event.participant)
        waiting.discard(event.participant)

    late = collect(
        script,
        round_number=1,
        deadline=deadline,
        clock=clock,
        finished=lambda: not waiting,
        pending=lambda: sorted(waiting),
        handle=handle,
        expire=expired.append,
    )
    return late, handled, expired


def test_everyone_in_time_returns_nothing_late_and_abandons_nothing():
    clock = FakeClock()
    script = Script(clock, [_eval("b"), None, _eval("a")])

    late, handled, expired = _wait(script, clock, {"a", "b"}, deadline=110.0)

    assert (late, handled, expired) == ((), ["b", "a"], [])
    assert script.abandoned == []
    # Each wait is bounded by what is left of the deadline on the given clock.
    assert script.timeouts == [10.0, 9.0, 8.0]


def test_the_late_are_expired_then_abandoned_once_the_deadline_passes():
    clock = FakeClock()
    script = Script(clock, [_eval("b")])

    late, handled, expired = _wait(script, clock, {"a", "b", "c"}, deadline=105.0)

    assert late == ("a", "c")
    assert handled == ["b"]
    assert expired == [("a", "c")]
    assert script.abandoned == [(1, ("a", "c"))]
    assert clock.now == 105.0  # it waited exactly until the deadline, no longer


def test_an_answer_that_arrives_exactly_at_the_deadline_is_still_handled():
    clock = FakeClock()
    script = Script(clock, [_eval("a")], step=5.0)

    late, handled, _ = _wait(script, clock, {"a"}, deadline=105.0)

    assert (late, handled) == ((), ["a"])


def test_a_deadline_already_passed_waits_for_nothing():
    clock = FakeClock()
    script = Script(clock, [_eval("a")])

    late, handled, expired = _wait(script, clock, {"a"}, deadline=100.0)

    assert (late, handled, expired) == (("a",), [], [("a",)])
    assert script.timeouts == []


def test_nothing_awaited_returns_at_once():
    clock = FakeClock()
    script = Script(clock, [])

    assert _wait(script, clock, set(), deadline=50.0) == ((), [], [])
    assert script.timeouts == []
