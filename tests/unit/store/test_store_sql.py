"""What only the SQL store promises: durability, SQLite settings, useful errors."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

from accord.errors import MissingExtraError, StoreError
from accord.store import RoundRecord, SqlStore, open_store

MakeRound = Callable[..., RoundRecord]


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _new_run(store: SqlStore) -> str:
    return store.create_run(name="durable", config={"k": 1}, seed=3, rounds_planned=5)


def test_reopened_file_sees_committed_rounds(
    tmp_path: Path, make_round: MakeRound
) -> None:
    db = tmp_path / "accord.db"
    with SqlStore(_url(db)) as store:
        run_id = _new_run(store)
        records = [make_round(run_id, n, seed=n) for n in (1, 2)]
        for record in records:
            store.record_round(record)
        store.finish_run(run_id, status="failed", summary={"why": "test"})
        before = store.get_run(run_id)

    with SqlStore(_url(db)) as reopened:
        assert reopened.rounds(run_id) == records
        assert reopened.get_run(run_id) == before
        assert reopened.list_runs() == [before]


def test_rounds_survive_a_process_that_dies_without_closing(tmp_path: Path) -> None:
    db = tmp_path / "accord.db"
    helpers = Path(__file__).parent
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(helpers)!r})
        from conftest import build_round
        from accord.store import SqlStore
        store = SqlStore({_url(db)!r})
        run_id = store.create_run(name="crash", config={{}}, seed=1, rounds_planned=9)
        store.record_round(build_round(run_id, 1))
        print(run_id, flush=True)
        os._exit(17)  # no close, no atexit, no cleanup: as if killed
        """
    )

    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )

    assert proc.returncode == 17, proc.stderr
    run_id = proc.stdout.strip()
    with SqlStore(_url(db)) as store:
        assert [r.number for r in store.rounds(run_id)] == [1]
        assert store.get_run(run_id).status == "running"  # resumable


def test_second_store_on_same_file_reads_while_first_writes(
    tmp_path: Path, make_round: MakeRound
) -> None:
    db = tmp_path / "accord.db"
    with SqlStore(_url(db)) as writer, SqlStore(_url(db)) as reader:
        run_id = _new_run(writer)
        assert reader.rounds(run_id) == []

        writer.record_round(make_round(run_id, 1))

        assert [r.number for r in reader.rounds(run_id)] == [1]


def test_sqlite_runs_with_wal_foreign_keys_and_full_sync(tmp_path: Path) -> None:
    db = tmp_path / "accord.db"
    # Reaching into the engine: these settings are invisible through the API.
    with SqlStore(_url(db)) as store, store._engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_open_store_without_url_creates_default_sqlite_file(tmp_path: Path) -> None:
    home = tmp_path / "nested" / "accord-home"

    with open_store(None, default_dir=home) as store:
        run_id = _new_run(store)

    assert (home / "accord.db").is_file()
    with open_store(_url(home / "accord.db"), default_dir=tmp_path / "unused") as again:
        assert again.get_run(run_id).name == "durable"
    assert not (tmp_path / "unused").exists()


def test_open_store_default_dir_with_odd_characters(tmp_path: Path) -> None:
    home = tmp_path / "dir with spaces#and?marks%20"

    with open_store(None, default_dir=home) as store:
        _new_run(store)

    assert (home / "accord.db").is_file()


def test_missing_directory_is_named_in_the_error(tmp_path: Path) -> None:
    db = tmp_path / "missing" / "accord.db"

    with pytest.raises(StoreError, match=r"missing.* does not exist"):
        SqlStore(_url(db))


def test_directory_instead_of_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        SqlStore(_url(tmp_path))


def test_file_that_is_not_a_database_is_named_in_the_error(tmp_path: Path) -> None:
    db = tmp_path / "notes.txt"
    db.write_bytes(b"these are not the tables you are looking for" * 100)

    with pytest.raises(StoreError, match=r"cannot open SQLite file .*notes\.txt"):
        SqlStore(_url(db))


def test_unwritable_default_dir_is_explained(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(StoreError, match="cannot create the store directory"):
        open_store(None, default_dir=blocker / "sub")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "not a database URL"),
        ("nosuchdb://host/db", "no SQLAlchemy dialect"),
    ],
)
def test_bad_urls_are_explained(url: str, match: str) -> None:
    with pytest.raises(StoreError, match=match):
        SqlStore(url)


def test_postgresql_without_driver_names_the_extra() -> None:
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed")

    with pytest.raises(MissingExtraError, match=r"accord\[postgres\]"):
        SqlStore("postgresql://user:secret@localhost/accord")


def test_database_errors_become_store_errors(
    tmp_path: Path, make_round: MakeRound
) -> None:
    db = tmp_path / "accord.db"
    with SqlStore(_url(db)) as store:
        run_id = _new_run(store)
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("DROP TABLE accord_metrics")

        with pytest.raises(StoreError, match="no such table"):
            store.record_round(make_round(run_id, 1))
        with pytest.raises(StoreError, match="no such table"):
            store.metrics(run_id)
