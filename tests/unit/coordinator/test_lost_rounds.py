"""A store that lost committed rounds is refused on resume, not silently re-run.

The rounds are really lost: a byte of the SQLite WAL is damaged in a copy of a live
store (SQLite then drops every frame from the damaged one on, without a word), or
rounds are deleted with plain SQL behind the store's back. The checkpoints on disk
still show the later rounds; resuming must stop, name the run, the store's last
round and the later checkpoints, and change nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from accord.coordinator.resume import check_no_lost_rounds
from accord.errors import StoreError
from accord.params import Params
from accord.records import RoundRecord
from accord.simulation.engine import simulate
from accord.store import CheckpointStore, SqlStore

from .test_resume import interrupted, make_config

pytest.importorskip("sklearn")

WAL_FRAME_HEADER = 24


class WatchedStore(SqlStore):
    """A SqlStore that notes the size of its WAL file after each round commits."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite:///{path}")
        self.wal = path.with_name(path.name + "-wal")
        self.wal_after: dict[int, int] = {}

    def record_round(self, record: RoundRecord) -> None:
        super().record_round(record)
        self.wal_after[record.number] = self.wal.stat().st_size


def test_a_damaged_wal_that_drops_rounds_is_refused_on_resume(tmp_path: Path) -> None:
    # Arrange: rounds 1-3 committed (in the WAL) and checkpointed, then a copy of
    # the live database whose WAL is damaged in the first frame after round 1.
    live, copy = tmp_path / "live", tmp_path / "copy"
    live.mkdir()
    copy.mkdir()
    checkpoints = tmp_path / "checkpoints"
    config = make_config()
    with WatchedStore(live / "runs.db") as store:
        run_id = interrupted(config, store, checkpoints, at=4)
        assert store.wal.stat().st_size > store.wal_after[1]  # not checkpointed
        for name in ("runs.db", "runs.db-wal"):
            shutil.copyfile(live / name, copy / name)
        damaged_at = store.wal_after[1] + WAL_FRAME_HEADER + 100
    with (copy / "runs.db-wal").open("r+b") as wal:
        wal.seek(damaged_at)
        byte = wal.read(1)
        wal.seek(damaged_at)
        wal.write(bytes([byte[0] ^ 0xFF]))

    with SqlStore(f"sqlite:///{copy / 'runs.db'}") as store:
        # SQLite's silent roll-back: rounds 2 and 3 and the abort are gone.
        assert [r.number for r in store.rounds(run_id)] == [1]
        assert store.get_run(run_id).status == "running"

        # Act
        with pytest.raises(StoreError) as refused:
            simulate(config, store=store, checkpoint_dir=checkpoints, resume=run_id)

        # Assert: refused with what to do, and nothing changed or re-run.
        message = str(refused.value)
        assert f"run {run_id} cannot resume" in message
        assert "the store's last recorded round is 1" in message
        assert "later rounds (3)" in message
        assert "Restore the database from a backup" in message
        assert [r.number for r in store.rounds(run_id)] == [1]
        assert store.get_run(run_id).status == "running"
    assert CheckpointStore(checkpoints).rounds(run_id) == [1, 2, 3]


def test_rounds_deleted_behind_the_stores_back_are_refused(tmp_path: Path) -> None:
    path, checkpoints = tmp_path / "runs.db", tmp_path / "checkpoints"
    config = make_config()
    with SqlStore(f"sqlite:///{path}") as store:
        run_id = interrupted(config, store, checkpoints, at=4)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("DELETE FROM accord_rounds WHERE number >= 2")

    with SqlStore(f"sqlite:///{path}") as store:
        with pytest.raises(StoreError, match=r"last recorded round is 1, .*\(3\)"):
            simulate(config, store=store, checkpoint_dir=checkpoints, resume=run_id)
        assert store.get_run(run_id).status == "aborted"  # left as it was


def _checkpoint(store: CheckpointStore, run_id: str, number: int) -> None:
    store.save(run_id, number, Params([("w", np.zeros(2, np.float32))]))


def test_a_checkpoint_one_round_ahead_is_a_crash_not_a_loss(tmp_path: Path) -> None:
    # A process that died between writing round 3's checkpoint and committing it.
    checkpoints = CheckpointStore(tmp_path)
    for number in (1, 2, 3):
        _checkpoint(checkpoints, "run-a", number)

    check_no_lost_rounds("run-a", 2, checkpoints)  # round 3 runs again
    check_no_lost_rounds("run-a", 3, checkpoints)
    with pytest.raises(StoreError, match=r"last recorded round is 1, .*\(3\)"):
        check_no_lost_rounds("run-a", 1, checkpoints)  # just past the bound
    with pytest.raises(StoreError, match=r"last recorded round is 0, .*\(2, 3\)"):
        check_no_lost_rounds("run-a", 0, checkpoints)
    check_no_lost_rounds("run-b", 0, checkpoints)  # no checkpoints at all
