"""The data digest a simulation records with its run and checks on resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.data.digest import (
    EVENT_KIND,
    check_data_digest,
    data_digest,
    record_data_digest,
)
from accord.errors import DatasetError
from accord.store import MemoryStore


def csv_config(folder: Path, dataset: str = "csv:table.csv") -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": 2},
            "data": {"dataset": dataset, "options": {"target": "y"}},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        },
        base_dir=folder,
    )


def new_run(store: MemoryStore) -> str:
    return store.create_run(name="fed", config={}, seed=0, rounds_planned=2)


def test_a_csv_is_identified_by_its_bytes(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("x,y\n1,a\n2,b\n")
    config = csv_config(tmp_path)

    before = data_digest(config)
    table.write_text("x,y\n1,a\n2,b\n")  # rewritten, same bytes
    same = data_digest(config)
    table.write_text("x,y\n1,a\n3,b\n")  # one cell changed
    changed = data_digest(config)

    assert before == same
    assert before["path"] == str(table)
    assert len(before["sha256"]) == 64
    assert changed["sha256"] != before["sha256"]


def test_resume_refuses_a_changed_csv_naming_the_file(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("x,y\n1,a\n2,b\n")
    config = csv_config(tmp_path)
    store = MemoryStore()
    run_id = new_run(store)
    record_data_digest(store, run_id, data_digest(config))
    check_data_digest(store, run_id, data_digest(config))  # unchanged: accepted

    table.write_text("x,y\n1,a\n2,b\n3,a\n")  # a row added
    with pytest.raises(DatasetError) as raised:
        check_data_digest(store, run_id, data_digest(config))

    message = str(raised.value)
    assert f"the data of run {run_id} changed since it started: {table}" in message
    assert "Restore the file the run started with, or start a new run" in message


def test_a_run_without_a_digest_gets_one_recorded(tmp_path):
    (tmp_path / "table.csv").write_text("x,y\n1,a\n")
    digest = data_digest(csv_config(tmp_path))
    store = MemoryStore()
    run_id = new_run(store)

    check_data_digest(store, run_id, digest)

    (event,) = store.events(run_id)
    assert (event.kind, event.round, json.loads(event.detail)) == (
        EVENT_KIND,
        0,
        digest,
    )


def test_an_unreadable_recorded_digest_is_refused(tmp_path):
    (tmp_path / "table.csv").write_text("x,y\n1,a\n")
    store = MemoryStore()
    run_id = new_run(store)
    store.record_event(
        run_id, round=0, participant=None, kind=EVENT_KIND, detail="{not json"
    )

    with pytest.raises(DatasetError, match="is unreadable"):
        check_data_digest(store, run_id, data_digest(csv_config(tmp_path)))


def test_a_long_path_still_fits_the_event_whole(tmp_path):
    folder = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200)
    folder.mkdir(parents=True)
    (folder / "table.csv").write_text("x,y\n1,a\n")
    config = csv_config(folder)
    store = MemoryStore()
    run_id = new_run(store)

    record_data_digest(store, run_id, data_digest(config))

    check_data_digest(store, run_id, data_digest(config))  # read back whole
    assert len(store.events(run_id)[0].detail) < 2000


def test_a_missing_csv_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        data_digest(csv_config(tmp_path, "csv:gone.csv"))


def test_a_bundled_dataset_is_its_name_source_and_version(caplog):
    config = config_from_mapping(
        {
            "data": {"dataset": "wine"},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        }
    )
    digest = data_digest(config)
    assert digest["dataset"] == "wine"
    assert digest["source"].startswith("sklearn:")
    assert digest["version"]  # scikit-learn's
    assert "sha256" not in digest

    store = MemoryStore()
    run_id = new_run(store)
    record_data_digest(store, run_id, {**digest, "version": "0.0"})
    with caplog.at_level(logging.WARNING, logger="accord.data.digest"):
        check_data_digest(store, run_id, digest)  # another version: a warning only
    assert "resuming with" in caplog.text
