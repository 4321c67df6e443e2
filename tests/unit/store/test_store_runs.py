"""The RunStore contract, run against every implementation (see conftest.store)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from accord.errors import RunNotFound, StoreError
from accord.store import MetricValue, RoundRecord, RunStore

NewRun = Callable[..., str]
MakeRound = Callable[..., RoundRecord]


def test_store_implements_the_protocol(store: RunStore) -> None:
    assert isinstance(store, RunStore)


def test_create_run_returns_short_sortable_id_and_running_info(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run("hospitals", config={"b": 1, "a": [1, 2.5, None]}, seed=2**63 - 1)

    info = store.get_run(run_id)

    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id)
    assert run_id.startswith(info.created_at.strftime("%Y%m%d-%H%M%S"))
    assert info.run_id == run_id
    assert info.name == "hospitals"
    assert info.status == "running"
    assert info.seed == 2**63 - 1
    assert info.rounds_planned == 3
    assert info.rounds_completed == 0
    assert info.finished_at is None
    assert info.summary is None
    assert info.config == {"b": 1, "a": [1, 2.5, None]}
    assert list(info.config) == ["b", "a"]
    assert info.created_at.tzinfo is not None
    assert info.created_at.utcoffset() == timedelta(0)


def test_list_runs_newest_first(store: RunStore, new_run: NewRun) -> None:
    ids = [new_run(f"run-{i}") for i in range(4)]

    listed = store.list_runs()

    assert [r.run_id for r in listed] == ids[::-1]
    assert sorted(ids) == ids  # ids sort by creation time


def test_rounds_round_trip_in_number_order(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    records = {n: make_round(run_id, n, seed=n) for n in (3, 1, 2)}
    for record in records.values():
        store.record_round(record)

    got = store.rounds(run_id)

    assert got == [records[1], records[2], records[3]]
    assert [o.participant for o in got[0].outcomes] == [
        "clinic-a",
        "clinic-b",
        "clinic-c",
    ]
    assert got[0].metrics == records[1].metrics  # order kept, not sorted


def test_rounds_of_other_runs_are_separate(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    first, second = new_run("a"), new_run("b")
    store.record_round(make_round(first, 1))

    assert store.rounds(second) == []
    assert store.metrics(second) == []
    assert store.last_completed_round(second) is None


def test_last_completed_round_skips_failed_rounds(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    for number, status in [(1, "completed"), (2, "completed"), (3, "failed")]:
        store.record_round(make_round(run_id, number, status=status))

    last = store.last_completed_round(run_id)

    assert last == make_round(run_id, 2)
    assert store.get_run(run_id).rounds_completed == 2


def test_metrics_by_round_then_given_order(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    records = [make_round(run_id, n, seed=n) for n in (2, 1)]
    for record in records:
        store.record_round(record)

    got = store.metrics(run_id)

    expected = [
        (r.number, m)
        for r in sorted(records, key=lambda r: r.number)
        for m in r.metrics
    ]
    assert got == expected


def test_non_finite_metric_values_round_trip(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    values = (
        MetricValue("central", None, "loss", math.nan),
        MetricValue("central", None, "up", math.inf),
        MetricValue("central", None, "down", -math.inf),
        MetricValue("central", None, "tiny", 5e-324),
    )
    store.record_round(dataclasses.replace(make_round(run_id, 1), metrics=values))

    got = [m.value for _, m in store.metrics(run_id)]

    assert math.isnan(got[0])
    assert got[1:] == [math.inf, -math.inf, 5e-324]


def test_timestamps_come_back_in_utc(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    plus_two = timezone(timedelta(hours=2))
    started = datetime(2026, 11, 22, 18, 0, 0, 250000, tzinfo=plus_two)
    record = dataclasses.replace(
        make_round(run_id, 1), started_at=started, finished_at=started + timedelta(1)
    )
    store.record_round(record)

    (got,) = store.rounds(run_id)

    assert got.started_at == started
    assert got.started_at.utcoffset() == timedelta(0)
    assert got.started_at.hour == 16


def test_duplicate_round_is_rejected_and_first_kept(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    first = make_round(run_id, 1, seed=1)
    store.record_round(first)

    with pytest.raises(StoreError, match="round 1 .* already recorded"):
        store.record_round(make_round(run_id, 1, seed=2))

    assert store.rounds(run_id) == [first]


def test_record_round_is_atomic_when_an_outcome_row_is_refused(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    # The third outcome repeats a participant: the round row and the first two
    # outcome rows are written before the constraint fires, inside the transaction.
    run_id = new_run()
    bad = make_round(run_id, 1, participants=("clinic-a", "clinic-b", "clinic-a"))

    with pytest.raises(StoreError):
        store.record_round(bad)

    assert store.rounds(run_id) == []
    assert store.metrics(run_id) == []
    assert store.last_completed_round(run_id) is None
    assert store.get_run(run_id).rounds_completed == 0
    good = make_round(run_id, 1)
    store.record_round(good)
    assert store.rounds(run_id) == [good]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_run("nope"),
        lambda s: s.rounds("nope"),
        lambda s: s.metrics("nope"),
        lambda s: s.last_completed_round("nope"),
        lambda s: s.finish_run("nope", status="completed", summary=None),
    ],
    ids=["get_run", "rounds", "metrics", "last_completed_round", "finish_run"],
)
def test_unknown_run_raises_run_not_found(
    store: RunStore, call: Callable[[RunStore], object]
) -> None:
    with pytest.raises(RunNotFound) as info:
        call(store)

    assert isinstance(info.value, LookupError)
    assert info.value.run_id == "nope"


def test_recording_a_round_of_an_unknown_run_raises_run_not_found(
    store: RunStore, make_round: MakeRound
) -> None:
    with pytest.raises(RunNotFound):
        store.record_round(make_round("20260101-000000-abcdef", 1))


def test_finish_run_records_status_summary_and_time(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    store.record_round(make_round(run_id, 1))

    store.finish_run(run_id, status="completed", summary={"final": {"acc": 0.9}})

    info = store.get_run(run_id)
    assert info.status == "completed"
    assert info.summary == {"final": {"acc": 0.9}}
    assert info.finished_at is not None and info.finished_at > info.created_at
    assert info.rounds_completed == 1
    assert store.list_runs() == [info]


def test_finish_run_refuses_a_non_final_status(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run()

    with pytest.raises(StoreError, match="completed, failed, aborted"):
        store.finish_run(run_id, status="running", summary=None)  # type: ignore[arg-type]


def test_returned_config_is_a_copy(store: RunStore, new_run: NewRun) -> None:
    run_id = new_run(config={"a": {"b": 1}})

    store.get_run(run_id).config["a"]["b"] = 2  # type: ignore[index]

    assert store.get_run(run_id).config == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"config": {"x": object()}}, "config cannot be stored as JSON"),
        ({"seed": 2**64}, "64-bit"),
        ({"rounds_planned": -1}, "rounds_planned"),
    ],
)
def test_create_run_refuses_invalid_arguments(
    store: RunStore, new_run: NewRun, overrides: dict[str, object], match: str
) -> None:
    with pytest.raises(StoreError, match=match):
        new_run(**overrides)

    assert store.list_runs() == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: dataclasses.replace(r, status="done"), "status is 'done'"),
        (
            lambda r: dataclasses.replace(r, started_at=datetime(2026, 1, 1)),
            "naive datetime",
        ),
        (
            lambda r: dataclasses.replace(
                r, outcomes=(dataclasses.replace(r.outcomes[0], num_examples=-1),)
            ),
            "num_examples",
        ),
        (
            lambda r: dataclasses.replace(
                r, outcomes=(dataclasses.replace(r.outcomes[0], duration_s=math.nan),)
            ),
            "duration_s",
        ),
        (
            lambda r: dataclasses.replace(
                r, metrics=(MetricValue("global", None, "x", 1.0),)
            ),
            "metric scope",
        ),
        (lambda r: dataclasses.replace(r, number=-1), "round numbers"),
    ],
    ids=["status", "naive", "examples", "duration", "scope", "number"],
)
def test_record_round_refuses_invalid_records(
    store: RunStore,
    new_run: NewRun,
    make_round: MakeRound,
    change: Callable[[RoundRecord], RoundRecord],
    match: str,
) -> None:
    run_id = new_run()

    with pytest.raises(StoreError, match=match):
        store.record_round(change(make_round(run_id, 1)))

    assert store.rounds(run_id) == []


def test_closed_store_refuses_calls(store: RunStore, new_run: NewRun) -> None:
    run_id = new_run()
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.get_run(run_id)
    store.close()  # closing twice is harmless


def test_run_info_times_are_utc(store: RunStore, new_run: NewRun) -> None:
    run_id = new_run()

    info = store.get_run(run_id)

    assert info.created_at.tzinfo is not None
    assert info.created_at.astimezone(UTC) == info.created_at
