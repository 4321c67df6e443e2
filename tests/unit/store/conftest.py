"""Fixtures shared by the store tests: both RunStore implementations, databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accord.params import Params
from accord.store import (
    MemoryStore,
    MetricValue,
    ParticipantOutcome,
    RoundRecord,
    RunStore,
    SqlStore,
)

T0 = datetime(2026, 11, 22, 16, 33, 1, 123456, tzinfo=UTC)


class FakeClock:
    """A clock that moves one second forward on every reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server; dropped afterwards.

    The server comes from ``ACCORD_TEST_POSTGRES_URL`` (``scripts/with-postgres.sh``
    starts one for ``make test``). Under CI its absence fails the run instead of
    skipping, so a green CI always means the PostgreSQL tests ran.
    """
    admin_url = os.environ.get("ACCORD_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must run the store tests against PostgreSQL: "
                "set ACCORD_TEST_POSTGRES_URL (see scripts/with-postgres.sh)"
            )
        pytest.skip("no PostgreSQL server (ACCORD_TEST_POSTGRES_URL unset)")
    psycopg = pytest.importorskip("psycopg")
    name = f"accord_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "accord.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[RunStore]:
    """Each test using this runs once against every RunStore implementation."""
    impl: RunStore
    if request.param == "memory":
        impl = MemoryStore(clock=clock)
    elif request.param == "sqlite":
        impl = SqlStore(sqlite_url(tmp_path / "accord.db"), clock=clock)
    else:
        impl = SqlStore(request.getfixturevalue("postgres_url"), clock=clock)
    yield impl
    impl.close()


def build_round(
    run_id: str,
    number: int,
    *,
    status: str = "completed",
    participants: tuple[str, ...] = ("clinic-a", "clinic-b", "clinic-c"),
    seed: int = 0,
) -> RoundRecord:
    """A realistic round with seeded numbers; the last participant timed out."""
    rng = np.random.default_rng([seed, number])
    started = T0 + timedelta(minutes=number)
    outcomes = tuple(
        ParticipantOutcome(
            participant=p,
            status="ok" if i < len(participants) - 1 else "timeout",
            reason=None if i < len(participants) - 1 else "no update within 30 s",
            num_examples=int(rng.integers(10, 1000)),
            update_digest=f"{int(rng.integers(0, 2**63)):064x}",
            duration_s=float(rng.uniform(0.1, 5.0)),
            metrics={"loss": float(rng.uniform()), "accuracy": float(rng.uniform())},
        )
        for i, p in enumerate(participants)
    )
    metrics = (
        MetricValue("central", None, "accuracy", float(rng.uniform())),
        MetricValue("federated", None, "loss", float(rng.uniform())),
        *(
            MetricValue("site", p, "accuracy", float(rng.uniform()))
            for p in participants
        ),
        MetricValue("train", participants[0], "loss", float(rng.uniform())),
    )
    return RoundRecord(
        run_id=run_id,
        number=number,
        started_at=started,
        finished_at=started + timedelta(seconds=float(rng.uniform(1, 30))),
        status=status,  # type: ignore[arg-type]  # tests pass invalid values too
        global_digest=f"{number:064x}",
        selected=participants,
        outcomes=outcomes,
        metrics=metrics,
        checkpoint=f"/ckpt/{run_id}/round-{number:05d}.safetensors",
    )


@pytest.fixture
def make_round() -> Callable[..., RoundRecord]:
    return build_round


@pytest.fixture
def new_run(store: RunStore) -> Callable[..., str]:
    """Create a run in ``store`` with sensible defaults."""

    def create(name: str = "hospitals", **overrides: Any) -> str:
        args: dict[str, Any] = {
            "config": {"federation": {"rounds": 3, "seed": 7}, "lr": 0.1},
            "seed": 7,
            "rounds_planned": 3,
        }
        args.update(overrides)
        return store.create_run(name=name, **args)

    return create


def random_params(seed: int = 0) -> Params:
    """Params with names out of sorted order, every float dtype, odd shapes.

    No zero-size arrays: ``Params.digest`` cannot hash them yet (reported to the lead).
    """
    rng = np.random.default_rng(seed)
    return Params(
        [
            ("z.weight", rng.standard_normal((3, 4)).astype(np.float32)),
            ("a.bias", rng.standard_normal(5).astype(np.float64)),
            ("m/half", rng.standard_normal((2, 3, 2)).astype(np.float16)),
            ("one", np.ones(1, dtype=np.float32)),
        ]
    )


@pytest.fixture
def params() -> Params:
    return random_params(0)
