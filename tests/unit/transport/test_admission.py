"""Call limits per caller and overall, and the refusal throttle, with a fake clock."""

import pytest

from accord.errors import SubmissionRefused
from accord.transport.admission import (
    SPARE_THREADS,
    Admission,
    Limits,
    RefusalThrottle,
    pool_size,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _never() -> None:
    raise AssertionError("not cancelled")


def test_a_caller_gets_its_share_and_the_next_call_is_refused_at_once():
    admission = Admission(per_peer=3, total=100)
    slots = [admission.enter("a", "SubmitUpdate", _never) for _ in range(3)]

    with pytest.raises(SubmissionRefused) as info:
        admission.enter("a", "FetchModel", _never)

    assert info.value.kind == "busy" and info.value.participant == "a"
    assert "already holds 3 open calls (SubmitUpdate)" in info.value.reason
    assert admission.open_calls("a") == 3
    # Another caller is not affected by a's calls.
    admission.enter("b", "Subscribe", _never)
    # A freed slot can be taken again; freeing twice changes nothing.
    admission.leave(slots[0])
    admission.leave(slots[0])
    assert admission.open_calls("a") == 2
    admission.enter("a", "FetchModel", _never)
    assert admission.open_calls() == 4


def test_the_overall_limit_refuses_the_call_just_past_it():
    admission = Admission(per_peer=10, total=4)
    for name in "abcd":
        admission.enter(name, "Subscribe", _never)

    with pytest.raises(SubmissionRefused) as info:
        admission.enter("e", "Subscribe", _never)

    assert info.value.kind == "busy" and "serves 4 calls, its limit" in (
        info.value.reason
    )


def test_cancel_peer_cancels_its_calls_but_those_kept():
    admission = Admission(per_peer=4, total=10)
    cancelled: list[str] = []
    admission.enter("a", "Subscribe", lambda: cancelled.append("Subscribe"))
    admission.enter("a", "SubmitUpdate", lambda: cancelled.append("SubmitUpdate"))
    admission.enter("b", "FetchModel", lambda: cancelled.append("b"))

    count = admission.cancel_peer("a", keep=("Subscribe",))

    assert count == 1 and cancelled == ["SubmitUpdate"]


def test_the_pool_has_room_for_every_admitted_call_and_spares():
    limits = Limits(per_peer=4)

    assert limits.total_for(3) == 4 * 5
    assert pool_size(limits, 3) == 20 + SPARE_THREADS
    assert pool_size(Limits(per_peer=4, total=7), 3) == 7 + SPARE_THREADS


@pytest.mark.parametrize(
    "bad",
    [
        {"per_peer": 0},
        {"total": 0},
        {"first_byte_s": 0.0},
        {"idle_s": -1.0},
        {"refusals_per_s": 0.0},
        {"refusal_burst": 0},
    ],
)
def test_limits_refuse_values_that_would_shut_everyone_out(bad):
    with pytest.raises(ValueError):
        Limits(**bad)


def test_the_throttle_lets_the_burst_through_then_refuses_until_it_refills():
    clock = Clock()
    throttle = RefusalThrottle(rate=2.0, burst=5, clock=clock)
    for _ in range(5):
        throttle.check("x")  # each of these calls was refused for its own reason
        throttle.charge("x")

    with pytest.raises(SubmissionRefused) as info:
        throttle.check("x")

    assert info.value.kind == "throttled" and "wait 0.5 s" in info.value.reason
    throttle.check("y")  # other callers keep their own budget
    clock.now += 0.49
    with pytest.raises(SubmissionRefused):
        throttle.check("x")  # just short of one token
    clock.now += 0.02
    throttle.check("x")
    assert throttle.tokens("x") == pytest.approx(1.02)
    clock.now += 1000
    assert throttle.tokens("x") == 5.0  # never more than the burst


def test_the_throttle_forgets_the_least_recently_refused_beyond_its_capacity():
    throttle = RefusalThrottle(rate=1.0, burst=1, clock=Clock(), max_peers=2)
    for name in ("a", "b", "c"):
        throttle.charge(name)

    throttle.check("a")  # forgotten: a full bucket again
    with pytest.raises(SubmissionRefused):
        throttle.check("c")
