"""Which run ``--resume auto`` continues (simulate and coordinator alike).

A MemoryStore; another thread holding a run's lease stands for another process
serving it (as in test_runner_lease.py).
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from accord.coordinator.resumable import interrupted_run
from accord.errors import ConfigError, RunBusy
from accord.store import MemoryStore

from .test_runner_lease import busy_elsewhere, held_elsewhere


def runs(store: MemoryStore, *statuses: str, name: str = "fed") -> list[str]:
    """Runs of ``name`` created in this order (the last is the newest)."""
    ids = []
    for status in statuses:
        run_id = store.create_run(name=name, config={}, seed=0, rounds_planned=3)
        if status != "running":
            store.finish_run(run_id, status=status, summary=None)  # type: ignore[arg-type]
        ids.append(run_id)
        time.sleep(0.002)  # distinct creation times: "newest" is well defined
    return ids


def pick(store: MemoryStore, federation: str = "fed") -> tuple[str | None, list[str]]:
    said: list[str] = []
    with ExitStack() as lease:
        found = interrupted_run(store, federation, lease, said.append)
        if found is not None:
            assert busy_elsewhere(store, found)  # leased to the caller
    return found, said


def test_the_newest_aborted_run_is_resumed_and_said():
    store = MemoryStore()
    _, aborted = runs(store, "completed", "aborted")

    found, said = pick(store)

    assert found == aborted
    assert said == [
        f"run {aborted} of 'fed' was aborted after 0 recorded round(s); resuming it "
        "(leave out --resume to start a new run instead)"
    ]


def test_a_completed_or_failed_newest_run_means_a_new_run():
    store = MemoryStore()
    runs(store, "aborted", "completed")
    assert pick(store) == (None, [])
    runs(store, "failed")
    assert pick(store) == (None, [])


def test_only_runs_of_this_federation_count():
    store = MemoryStore()
    runs(store, "aborted", name="other")
    assert pick(store) == (None, [])


def test_a_running_run_no_one_serves_comes_before_a_newer_aborted_one():
    store = MemoryStore()
    crashed, _ = runs(store, "running", "aborted")

    assert pick(store) == (crashed, [])


def test_several_unserved_running_runs_are_refused_with_their_ids():
    store = MemoryStore()
    first, second = runs(store, "running", "running")

    with pytest.raises(ConfigError) as raised:
        pick(store)

    message = str(raised.value)
    assert "2 runs of 'fed' are marked running" in message
    assert first in message and second in message
    assert "--resume RUN_ID" in message


def test_a_run_served_elsewhere_is_passed_over_or_refused():
    store = MemoryStore()
    served, crashed = runs(store, "running", "running")

    with held_elsewhere(store, served):
        found, said = pick(store)
        assert found == crashed
        (passed,) = said
        assert passed.startswith(f"passing over run {served}: served by process ")

    store = MemoryStore()
    (served,) = runs(store, "running")
    with held_elsewhere(store, served), pytest.raises(RunBusy) as busy:
        pick(store)
    assert busy.value.run_id == served
