"""Kept round updates: written by the round's keeper, read back verified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accord.coordinator.keeper import UpdateKeeper
from accord.errors import StoreError
from accord.params import Params
from accord.records import ParticipantOutcome
from accord.store import CheckpointStore


def params(value: float) -> Params:
    return Params([("w", np.full((2, 3), value, np.float32)), ("b", np.zeros(3))])


def outcome(name: str, update: Params | None, examples: int = 10) -> ParticipantOutcome:
    return ParticipantOutcome(
        participant=name,
        status="ok" if update is not None else "failed",
        reason=None,
        num_examples=examples if update is not None else 0,
        update_digest=None if update is None else update.digest(),
        duration_s=0.1,
    )


def keep_round(store: CheckpointStore, updates: dict[str, Params]) -> None:
    keeper = UpdateKeeper(store.updates(), run_id="r1", number=1, base=params(0.0))
    for name, update in updates.items():
        keeper.add(name, update, excluded=False)
    keeper.add("quarantined site", params(9.0), excluded=True)
    assert keeper.kept == len(updates)


def test_a_kept_round_reads_back_in_outcome_order_with_weights(tmp_path: Path) -> None:
    # Arrange: a site name that is no file name, and a failed site
    store = CheckpointStore(tmp_path)
    ups = {"b/site: two": params(2.0), "a": params(1.0)}
    keep_round(store, ups)
    outcomes = [
        outcome("a", ups["a"], 30),
        outcome("c", None),
        outcome("b/site: two", ups["b/site: two"], 20),
    ]

    # Act
    kept = store.updates().load("r1", 1, outcomes)

    # Assert
    assert kept.sites == ("a", "b/site: two")
    assert kept.weights == (30, 20)
    assert [u.digest() for u in kept.updates] == [
        ups["a"].digest(),
        ups["b/site: two"].digest(),
    ]
    assert kept.base.digest() == params(0.0).digest()
    assert store.updates().rounds("r1") == [1]


def test_a_swapped_update_is_refused_naming_the_site(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    ups = {"a": params(1.0), "b": params(2.0)}
    keep_round(store, ups)
    folder = store.updates().folder("r1", 1)
    # a's file now holds an update whose own digest is intact, but not a's
    other = UpdateKeeper(store.updates(), run_id="r1", number=2, base=params(0.0))
    other.add("a", params(5.0), excluded=False)
    (store.updates().folder("r1", 2) / "0000.safetensors").replace(
        folder / "0000.safetensors"
    )

    with pytest.raises(StoreError, match="kept update of a is not the one"):
        store.updates().load("r1", 1, [outcome("a", ups["a"]), outcome("b", ups["b"])])


def test_a_damaged_update_file_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    ups = {"a": params(1.0)}
    keep_round(store, ups)
    path = store.updates().folder("r1", 1) / "0000.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))

    with pytest.raises(StoreError, match="damaged"):
        store.updates().load("r1", 1, [outcome("a", ups["a"])])


def test_a_missing_update_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    keep_round(store, {"a": params(1.0)})

    with pytest.raises(StoreError, match="update of b was not kept"):
        store.updates().load(
            "r1", 1, [outcome("a", params(1.0)), outcome("b", params(2.0))]
        )


def test_a_round_begun_again_drops_the_earlier_attempts_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    keep_round(store, {"a": params(1.0), "b": params(2.0)})

    keep_round(store, {"b": params(3.0)})

    files = sorted(p.name for p in store.updates().folder("r1", 1).iterdir())
    assert files == ["0000.safetensors", "base.safetensors"]
