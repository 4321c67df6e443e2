"""Refusals reach their sink (the run store, in a deployment) as they are made."""

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from accord.errors import SubmissionRefused
from accord.params import Params
from accord.store import MemoryStore
from accord.transport.executor import GrpcExecutor, wire_run_id
from accord.transport.rejections import Rejection, RejectionLog, event_recorder


def test_each_refusal_reaches_the_sink_before_add_returns():
    seen: list[Rejection] = []
    log = RejectionLog(seen.append)

    first = log.add(
        participant="a", method="SubmitUpdate", round=2, kind="duplicate", reason="x"
    )
    assert seen == [first]
    second = log.add(
        participant=None,
        method="Subscribe",
        round=0,
        kind="unauthenticated",
        reason="y",
    )

    assert seen == [first, second] == list(log.snapshot())


def test_a_failing_sink_is_logged_and_the_refusal_kept(caplog):
    def broken(rejection: Rejection) -> None:
        raise OSError("database unreachable")

    log = RejectionLog(broken)

    with caplog.at_level(logging.ERROR, logger="accord.transport.rejections"):
        entry = log.add(
            participant="a", method="SubmitEval", round=1, kind="stale", reason="old"
        )

    assert log.snapshot() == (entry,)
    assert "could not record the refusal of SubmitEval" in caplog.text


def test_event_recorder_writes_a_refusal_as_an_event_of_the_run():
    with MemoryStore() as store:
        run_id = store.create_run(name="f", config={}, seed=0, rounds_planned=1)
        log = RejectionLog(event_recorder(store, run_id))

        log.add(
            participant="a", method="SubmitUpdate", round=3, kind="mismatch", reason="w"
        )
        log.add(
            participant=None,
            method="Subscribe",
            round=0,
            kind="unauthenticated",
            reason="r",
        )

        events = store.events(run_id)
    assert [(e.round, e.participant, e.kind, e.detail) for e in events] == [
        (3, "a", "mismatch", "SubmitUpdate: w"),
        (None, None, "unauthenticated", "Subscribe: r"),
    ]


def test_the_executor_hands_its_refusals_to_on_reject(tmp_path):
    seen: list[Rejection] = []
    executor = GrpcExecutor(["a"], spool_dir=tmp_path, on_reject=seen.append)
    try:
        executor.publish(Params({"w": np.zeros(2, np.float32)}))
        with pytest.raises(SubmissionRefused) as info:
            executor.model("a", "another-run", "0" * 64)
        executor.reject("a", "FetchModel", info.value, 0)
    finally:
        executor.close()

    assert [(r.participant, r.kind, r.method) for r in seen] == [
        ("a", "stale", "FetchModel")
    ]


def test_each_process_names_a_run_afresh_on_the_wire():
    run_id = "20261122-163301-ab12cd"

    first, second = wire_run_id(run_id), wire_run_id(run_id)

    assert first != second
    assert first.startswith(f"{run_id}.") and second.startswith(f"{run_id}.")
    assert len(first) <= 128  # what the codec accepts


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_repeats_are_counted_and_recorded_at_most_once_per_interval():
    clock, seen = WallClock(), []
    log = RejectionLog(seen.append, summary_every_s=60, now=clock)

    for i in range(1000):
        clock.advance(0.01)
        log.add(
            participant="x",
            method="Subscribe",
            round=0,
            kind="forbidden",
            reason=f"{i}",
        )

    assert len(log) == 1000
    assert [(r.count, r.reason) for r in seen] == [(1, "0")]  # the first, at once
    (entry,) = log.snapshot()
    assert entry.count == 1000 and entry.reason == "999"
    assert entry.first == datetime(2026, 1, 1, 12, 0, 0, 10000, tzinfo=UTC)
    clock.advance(60 - 9.99 - 0.01)  # 60 s after the first was recorded, less a bit
    log.add(participant="x", method="Subscribe", round=0, kind="forbidden", reason="a")
    assert len(seen) == 1
    clock.advance(0.02)
    log.add(participant="x", method="Subscribe", round=0, kind="forbidden", reason="b")
    assert [r.count for r in seen] == [1, 1002]
    assert "1002 refusals of this kind" in seen[-1].describe()

    assert log.flush() == 0  # nothing new since
    log.add(participant="x", method="Subscribe", round=0, kind="forbidden", reason="c")
    assert log.flush() == 1 and seen[-1].count == 1003


def test_each_caller_method_and_kind_is_its_own_group():
    seen: list[Rejection] = []
    log = RejectionLog(seen.append)

    for who, method, kind in [
        ("x", "Subscribe", "forbidden"),
        ("x", "FetchModel", "forbidden"),
        ("x", "Subscribe", "throttled"),
        ("y", "Subscribe", "forbidden"),
        ("x", "Subscribe", "forbidden"),
    ]:
        log.add(participant=who, method=method, round=0, kind=kind, reason="r")

    assert len(seen) == 4 and len(log) == 5
    # Least recently refused first: the repeated group moved to the end.
    assert [(r.participant, r.method, r.kind, r.count) for r in log.snapshot()][-1] == (
        "x",
        "Subscribe",
        "forbidden",
        2,
    )


def test_memory_holds_at_most_max_groups_and_an_evicted_count_is_recorded():
    seen: list[Rejection] = []
    log = RejectionLog(seen.append, max_groups=2)
    log.add(participant="a", method="M", round=0, kind="stale", reason="r")
    log.add(participant="a", method="M", round=0, kind="stale", reason="r")

    log.add(participant="b", method="M", round=0, kind="stale", reason="r")
    log.add(participant="c", method="M", round=0, kind="stale", reason="r")

    assert [r.participant for r in log.snapshot()] == ["b", "c"]
    assert len(log) == 4
    # a's second refusal was only counted; it is recorded as a is dropped.
    assert [(r.participant, r.count) for r in seen] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("c", 1),
    ]


def test_a_summary_is_stored_with_its_count_and_times():
    clock = WallClock()
    with MemoryStore() as store:
        run_id = store.create_run(name="f", config={}, seed=0, rounds_planned=1)
        log = RejectionLog(event_recorder(store, run_id), now=clock)
        for _ in range(3):
            clock.advance(1)
            log.add(
                participant="x", method="SubmitUpdate", round=2, kind="busy", reason="w"
            )
        log.flush()

        details = [e.detail for e in store.events(run_id)]
    assert details == [
        "SubmitUpdate: w",
        "SubmitUpdate: w [3 refusals of this kind from this caller, first at "
        "2026-01-01 12:00:01, last at 12:00:03 UTC]",
    ]
