import random

import pytest

from accord.participant.backoff import Backoff


def test_waits_grow_exponentially_up_to_the_cap_without_jitter():
    backoff = Backoff(initial_s=1, maximum_s=10, factor=2, jitter=0)

    assert [backoff.delay(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]


def test_jitter_only_shortens_a_wait_and_spreads_it():
    backoff = Backoff(initial_s=4, maximum_s=4, jitter=0.5, rng=random.Random(1))

    waits = [backoff.delay(3) for _ in range(200)]

    assert all(2 <= w <= 4 for w in waits)
    assert max(waits) - min(waits) > 1


def test_a_huge_failure_count_does_not_overflow():
    assert Backoff(jitter=0).delay(10**6) == 30.0


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0}, {"initial_s": 5, "maximum_s": 1}, {"jitter": 1}]
)
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
