"""Events and reopening runs, against every RunStore implementation."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from accord.errors import RunNotFound, StoreError
from accord.store import RoundRecord, RunEvent, RunStore
from accord.store.records import MAX_EVENT_DETAIL, MAX_EVENT_PARTICIPANT, NewEvent

NewRun = Callable[..., str]
MakeRound = Callable[..., RoundRecord]


def test_events_come_back_in_recording_order(store: RunStore, new_run: NewRun) -> None:
    run_id, other = new_run("a"), new_run("b")
    store.record_event(
        run_id, round=2, participant="clinic-b", kind="duplicate", detail="second"
    )
    store.record_event(other, round=1, participant="x", kind="stale", detail="other")
    store.record_event(
        run_id, round=None, participant=None, kind="unauthenticated", detail="no cert"
    )

    got = store.events(run_id)

    assert [(e.round, e.participant, e.kind, e.detail) for e in got] == [
        (2, "clinic-b", "duplicate", "second"),
        (None, None, "unauthenticated", "no cert"),
    ]
    assert all(isinstance(e, RunEvent) and e.run_id == run_id for e in got)
    assert got[0].at < got[1].at
    assert all(e.at.utcoffset() is not None for e in got)
    assert [e.detail for e in store.events(other)] == ["other"]


def test_a_batch_of_events_is_kept_in_order_after_the_earlier_ones(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run()
    store.record_event(run_id, round=1, participant="a", kind="stale", detail="x")
    batch = [
        NewEvent(round=2, participant=f"site-{i}", kind="update_bytes", detail=str(i))
        for i in range(5)
    ]

    store.record_events(run_id, batch)
    store.record_events(run_id, [])

    got = store.events(run_id)
    assert [(e.round, e.participant, e.kind, e.detail) for e in got] == [
        (1, "a", "stale", "x"),
        *((2, f"site-{i}", "update_bytes", str(i)) for i in range(5)),
    ]
    assert len({e.at for e in got[1:]}) == 1  # one write, one time
    assert got[0].at <= got[1].at


def test_a_batch_with_one_bad_event_records_none_of_it(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run()
    good = NewEvent(round=1, participant="p\x00q", kind="update_bytes", detail="d")
    bad = NewEvent(round=-1, participant=None, kind="update_bytes", detail="d")

    with pytest.raises(StoreError, match="pass >= 0"):
        store.record_events(run_id, [good, bad])
    with pytest.raises(RunNotFound):
        store.record_events("no-such-run", [good])

    assert store.events(run_id) == []


def test_events_change_nothing_else(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    store.record_round(make_round(run_id, 1))
    before = (store.get_run(run_id), store.rounds(run_id), store.metrics(run_id))

    store.record_event(run_id, round=1, participant="c", kind="stale", detail="old")

    assert (store.get_run(run_id), store.rounds(run_id), store.metrics(run_id)) == (
        before
    )


def test_hostile_participant_and_detail_are_stored_cut_and_cleaned(
    store: RunStore, new_run: NewRun
) -> None:
    run_id = new_run()
    detail = "bad\x00byte \udcff " + "x" * (3 * MAX_EVENT_DETAIL)
    participant = "p\x00" * MAX_EVENT_PARTICIPANT

    store.record_event(
        run_id, round=3, participant=participant, kind="malformed", detail=detail
    )

    (got,) = store.events(run_id)
    assert got.detail.startswith("bad\ufffdbyte \\udcff xxx")
    assert len(got.detail) == MAX_EVENT_DETAIL
    assert got.participant is not None
    assert len(got.participant) == MAX_EVENT_PARTICIPANT
    assert "\x00" not in got.participant


@pytest.mark.parametrize(
    ("kind", "round_number", "match"),
    [
        ("", 1, "not a short identifier"),
        ("Duplicate", 1, "not a short identifier"),
        ("x" * 33, 1, "not a short identifier"),
        ("has space", 1, "not a short identifier"),
        ("stale", -1, "pass >= 0"),
    ],
)
def test_bad_event_kind_or_round_is_refused(
    store: RunStore, new_run: NewRun, kind: str, round_number: int, match: str
) -> None:
    run_id = new_run()

    with pytest.raises(StoreError, match=match):
        store.record_event(
            run_id, round=round_number, participant=None, kind=kind, detail="d"
        )

    assert store.events(run_id) == []


def test_reopen_makes_an_aborted_run_running_and_keeps_its_rounds(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    run_id = new_run()
    store.record_round(make_round(run_id, 1))
    store.finish_run(run_id, status="aborted", summary={"why": "ctrl-c"})

    info = store.reopen_run(run_id)

    assert info == store.get_run(run_id)
    assert info.status == "running"
    assert info.finished_at is None
    assert info.summary is None
    assert info.rounds_completed == 1
    assert [r.number for r in store.rounds(run_id)] == [1]


@pytest.mark.parametrize("status", ["running", "failed"])
def test_reopen_accepts_every_unfinished_status(
    store: RunStore, new_run: NewRun, status: str
) -> None:
    run_id = new_run()
    if status != "running":
        store.finish_run(run_id, status=status, summary=None)  # type: ignore[arg-type]

    assert store.reopen_run(run_id).status == "running"


def test_reopen_refuses_a_completed_run(store: RunStore, new_run: NewRun) -> None:
    run_id = new_run()
    store.finish_run(run_id, status="completed", summary={"auc": 0.9})

    with pytest.raises(StoreError, match="nothing to resume"):
        store.reopen_run(run_id)

    assert store.get_run(run_id).status == "completed"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.events("nope"),
        lambda s: s.reopen_run("nope"),
        lambda s: s.record_event(
            "nope", round=None, participant=None, kind="stale", detail="d"
        ),
    ],
    ids=["events", "reopen_run", "record_event"],
)
def test_unknown_run_raises_run_not_found(
    store: RunStore, call: Callable[[RunStore], object]
) -> None:
    with pytest.raises(RunNotFound):
        call(store)


def test_events_from_many_threads_while_rounds_are_recorded(
    store: RunStore, new_run: NewRun, make_round: MakeRound
) -> None:
    # A coordinator records refusals on its RPC threads while the round loop
    # commits rounds on its own: every write must land, none may fail.
    run_id = new_run()
    threads, per_thread = 4, 10
    errors: list[BaseException] = []

    def refuse(worker: int) -> None:
        try:
            for i in range(per_thread):
                store.record_event(
                    run_id,
                    round=1,
                    participant=f"site-{worker}",
                    kind="duplicate",
                    detail=str(i),
                )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=refuse, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for number in (1, 2, 3):
        store.record_round(make_round(run_id, number))
    for w in workers:
        w.join(60)

    assert errors == []
    events = store.events(run_id)
    assert len(events) == threads * per_thread
    for w in range(threads):
        mine = [e.detail for e in events if e.participant == f"site-{w}"]
        assert mine == [str(i) for i in range(per_thread)]  # in recording order
    assert [r.number for r in store.rounds(run_id)] == [1, 2, 3]
