"""Refusals reach their sink (the run store, in a deployment) as they are made."""

import logging

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
