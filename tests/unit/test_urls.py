"""A store URL's password never reaches a record, a log line or a message."""

from __future__ import annotations

import pytest

from accord.config import config_from_mapping
from accord.coordinator.resume import check_same_config
from accord.coordinator.runner import create_run
from accord.errors import ConfigError, StoreError
from accord.store import MemoryStore
from accord.store.engine import describe, parse_url
from accord.urls import hide_password

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://ann:{SECRET}@db.example:5432/runs",
            "postgresql://ann:***@db.example:5432/runs",
        ),
        (
            f"postgresql+psycopg://ann:{SECRET}@db/runs?sslmode=require",
            "postgresql+psycopg://ann:***@db/runs?sslmode=require",
        ),
        (f"postgresql://ann:{SECRET}%40x@db/runs", "postgresql://ann:***@db/runs"),
        (f"postgresql://ann:p@{SECRET}@db/runs", "postgresql://ann:***@db/runs"),
        (
            f"postgresql://ann@db/runs?password={SECRET}&sslmode=require",
            "postgresql://ann@db/runs?password=***&sslmode=require",
        ),
        ("postgresql://ann:@db/runs", "postgresql://ann:***@db/runs"),
    ],
)
def test_a_password_is_hidden(url: str, shown: str) -> None:
    assert hide_password(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///runs/accord.db",
        "sqlite:///:memory:",
        "postgresql://ann@db/runs",
        "sqlite://",
    ],
)
def test_a_url_without_a_secret_is_unchanged(url: str) -> None:
    assert hide_password(url) == url


def config(url: str):
    return config_from_mapping(
        {
            "data": {"dataset": "wine"},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "store": {"url": url},
        }
    )


def test_the_recorded_config_hides_the_password_and_still_resumes() -> None:
    cfg = config(f"postgresql://ann:{SECRET}@db/runs")
    with MemoryStore() as store:
        run_id = create_run(store, cfg)
        stored = store.get_run(run_id).config

        assert SECRET not in repr(stored)
        assert stored["store"]["url"] == "postgresql://ann:***@db/runs"
        assert cfg.store.url == f"postgresql://ann:{SECRET}@db/runs"  # still usable
        # A resume with the same config (password and all) is the same run...
        check_same_config(run_id, stored, cfg.to_json_dict())
        # ...and a config that differs elsewhere is still told apart.
        other = config_from_mapping({**cfg.to_json_dict(), "federation": {"seed": 9}})
        with pytest.raises(ConfigError, match=r"federation\.seed: run has 0"):
            check_same_config(run_id, stored, other.to_json_dict())


def test_the_store_is_named_without_its_password() -> None:
    url = parse_url(f"postgresql://ann:{SECRET}@db/runs")
    assert describe(url) == "postgresql+psycopg://ann:***@db/runs"
    with pytest.raises(StoreError) as refused:
        parse_url(f"postgresql://ann:{SECRET}@db:port/runs")
    assert SECRET not in str(refused.value)
    assert "ann:***@db:port" in str(refused.value)
