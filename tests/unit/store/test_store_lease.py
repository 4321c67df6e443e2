"""Run leases: one holder at a time, re-entrant in its thread, gone when it dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.errors import RunBusy, StoreError
from accord.store import MemoryStore, RunStore, SqlStore
from accord.store.lease import Holder, lease_file, lease_key

LeaseHolder = Callable[[str, str], subprocess.Popen[str]]
RUN = "20261122-163301-ab12cd"
ME = f"process {os.getpid()} on host {socket.gethostname()}"


def refusal_in_thread(store: RunStore, run_id: str) -> RunBusy | None:
    """What another thread gets when it asks ``store`` for the lease (None: got it)."""
    got: list[RunBusy | None] = []

    def take() -> None:
        try:
            with store.lease_run(run_id):
                got.append(None)
        except RunBusy as exc:
            got.append(exc)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(timeout=10)
    assert got, "the other thread did not finish"
    return got[0]


def enter(store: RunStore, run_id: str) -> None:
    """Take the lease and give it back at once (or raise :class:`RunBusy`)."""
    with store.lease_run(run_id):
        pass


def eventually_leased(store: RunStore, run_id: str, *, within_s: float = 5.0) -> None:
    """Take and release the lease, retrying while the server notices a death."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with store.lease_run(run_id):
                return
        except RunBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# Every implementation (memory, SQLite, PostgreSQL: see conftest.store).


def test_the_holding_thread_takes_the_lease_again(store: RunStore) -> None:
    with store.lease_run(RUN):
        with store.lease_run(RUN):
            inner = refusal_in_thread(store, RUN)
        outer = refusal_in_thread(store, RUN)
    after = refusal_in_thread(store, RUN)

    assert isinstance(inner, RunBusy)
    assert isinstance(outer, RunBusy)  # the inner block's end kept the lease
    assert after is None


def test_another_thread_is_refused_naming_this_process(store: RunStore) -> None:
    with store.lease_run(RUN):
        refused = refusal_in_thread(store, RUN)

    assert isinstance(refused, RunBusy)
    assert isinstance(refused, StoreError)  # exit code 4 at the command line
    assert refused.run_id == RUN
    assert refused.holder is not None
    assert refused.holder.startswith(ME)
    assert "another thread" in refused.holder
    assert f"run {RUN} is already being served by {ME}, since " in str(refused)


def test_leases_of_other_runs_are_independent(store: RunStore) -> None:
    with store.lease_run(RUN):
        other = refusal_in_thread(store, "20261122-163302-cdef01")

    assert other is None


def test_an_error_in_the_block_releases_the_lease(store: RunStore) -> None:
    with pytest.raises(KeyError), store.lease_run(RUN):
        raise KeyError("boom")

    assert refusal_in_thread(store, RUN) is None


def test_a_closed_store_grants_no_lease(store: RunStore) -> None:
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.lease_run(RUN)


# Across stores and processes: SQLite file and PostgreSQL (see conftest.db_url).


def test_a_second_store_is_refused_while_the_first_holds(db_url: str) -> None:
    with SqlStore(db_url) as first, SqlStore(db_url) as second:
        with first.lease_run(RUN), pytest.raises(RunBusy) as refused:
            enter(second, RUN)

        assert refused.value.run_id == RUN
        assert refused.value.holder is not None
        assert refused.value.holder.startswith(ME + ", since ")
        # Released as the first's block ended: the second takes it.
        with second.lease_run(RUN), pytest.raises(RunBusy):
            enter(first, RUN)


def test_closing_a_store_releases_its_leases(db_url: str) -> None:
    first = SqlStore(db_url)
    forgotten = first.lease_run(RUN)
    forgotten.__enter__()  # and never left

    with SqlStore(db_url) as second:
        with pytest.raises(RunBusy):
            enter(second, RUN)
        first.close()
        eventually_leased(second, RUN)
    forgotten.__exit__(None, None, None)  # after close: releases nothing twice


def test_a_process_holding_the_lease_blocks_us_until_killed(
    db_url: str, lease_holder: LeaseHolder
) -> None:
    SqlStore(db_url).close()  # the tables exist before both processes open it
    holder = lease_holder(db_url, RUN)

    with SqlStore(db_url) as store:
        with pytest.raises(RunBusy) as refused:
            enter(store, RUN)
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up: the OS or server frees it
        holder.wait(timeout=10)
        eventually_leased(store, RUN)

    assert holder.returncode == -signal.SIGKILL
    assert refused.value.holder is not None
    assert refused.value.holder.startswith(
        f"process {holder.pid} on host {socket.gethostname()}, since "
    )


# SQLite: the lease file.


def test_the_sqlite_lease_file_names_the_holder_and_goes_with_the_lease(
    tmp_path: Path,
) -> None:
    database = tmp_path / "accord.db"
    path = tmp_path / f"accord.db.lease-{RUN}"

    with SqlStore(f"sqlite:///{database}") as store:
        with store.lease_run(RUN):
            held = json.loads(path.read_text(encoding="utf-8"))
        gone = not path.exists()

    assert held["host"] == socket.gethostname()
    assert held["pid"] == os.getpid()
    assert datetime.fromisoformat(held["since"]).tzinfo is not None
    assert gone


def test_a_run_id_that_is_no_file_name_is_hashed_beside_the_database() -> None:
    database = Path("/data/runs/accord.db")

    plain = lease_file(database, RUN)
    odd = lease_file(database, "../../etc/x")

    assert plain == Path(f"/data/runs/accord.db.lease-{RUN}")
    assert odd.parent == database.parent
    assert odd.name == f"accord.db.lease-{lease_key('../../etc/x'):x}"


def test_an_unreadable_lease_file_still_refuses_without_a_holder(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'accord.db'}"
    with SqlStore(url) as first, SqlStore(url) as second, first.lease_run(RUN):
        (tmp_path / f"accord.db.lease-{RUN}").write_text("garbage")  # same inode

        with pytest.raises(RunBusy) as refused:
            enter(second, RUN)

    assert refused.value.holder is None
    assert str(refused.value).startswith(
        f"run {RUN} is already being served; a run is served by one process"
    )


def test_an_in_memory_sqlite_store_leases_within_the_process() -> None:
    with SqlStore("sqlite://") as store, store.lease_run(RUN):
        refused = refusal_in_thread(store, RUN)

    assert isinstance(refused, RunBusy)


# The parts.


def test_lease_keys_are_stable_signed_64_bit_numbers() -> None:
    keys = {lease_key(f"run-{i}") for i in range(1000)}

    # Pinned: coordinators of two accord releases must agree on a run's key.
    assert lease_key(RUN) == -4493752111507030370
    assert len(keys) == 1000
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert any(k < 0 for k in keys)


def test_a_holder_round_trips_through_its_file_form() -> None:
    holder = Holder("lab-1", 4242, datetime(2026, 11, 22, 16, 33, 1, tzinfo=UTC))

    back = Holder.from_json(holder.to_json())

    assert back == holder
    assert (
        back.describe() == "process 4242 on host lab-1, since 2026-11-22 16:33:01 UTC"
    )
    assert Holder.from_json("") is None
    assert Holder.from_json('{"host": "x"}') is None


def test_memory_stores_do_not_share_leases() -> None:
    with MemoryStore() as first, MemoryStore() as second, first.lease_run(RUN):
        other = refusal_in_thread(second, RUN)

    assert other is None  # each MemoryStore is a store of its own
