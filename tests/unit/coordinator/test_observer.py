"""A progress observer that raises is detached; the run goes on and is the same."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from rich.errors import MarkupError

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.observer import Guarded, SilentObserver
from accord.simulation.engine import simulate
from accord.store.memory import MemoryStore


def _config() -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": 3, "seed": 1},
            "data": {"dataset": "digits", "sites": 4, "min_site_size": 20},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "train": {"learning_rate": 0.1},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
        }
    )


class Broken:
    """Records what it is told; raises ``error`` when round ``at`` is recorded."""

    def __init__(self, error: BaseException, at: int = 1) -> None:
        self.error, self.at = error, at
        self.told: list[tuple[str, int]] = []

    def round_started(self, number: int, selected: Any) -> None:
        self.told.append(("started", number))

    def participant_finished(self, number: int, outcome: Any) -> None:
        self.told.append(("finished", number))

    def round_finished(self, summary: Any) -> None:
        self.told.append(("recorded", summary.number))
        if summary.number == self.at:
            raise self.error


def test_an_observer_that_raises_is_detached_and_the_run_completes(caplog):
    cfg = _config()
    expected = simulate(cfg, store=MemoryStore()).run.params.digest()
    broken = Broken(MarkupError("closing tag '[/]' has nothing to close"))

    store = MemoryStore()
    with caplog.at_level(logging.ERROR, logger="accord.coordinator.observer"):
        result = simulate(cfg, store=store, observer=broken)

    assert result.run.params.digest() == expected
    assert len(result.run.rounds) == 3
    assert store.get_run(result.run.run_id).status == "completed"
    assert ("recorded", 1) in broken.told
    assert not [t for t in broken.told if t[1] > 1]  # told nothing after it failed
    (logged,) = caplog.records
    assert "Broken failed in round_finished and is detached" in logged.getMessage()
    assert logged.exc_info is not None  # with its traceback


def test_an_interrupt_from_an_observer_still_ends_the_run():
    with pytest.raises(KeyboardInterrupt):
        simulate(_config(), store=MemoryStore(), observer=Broken(KeyboardInterrupt()))


def test_the_guard_tells_every_call_until_the_first_failure():
    inner = Broken(RuntimeError("display gone"), at=2)
    guarded = Guarded(inner)
    guarded.round_started(1, ["a"])
    guarded.round_finished(_Summary(1))
    guarded.round_finished(_Summary(2))
    guarded.round_started(3, ["a"])
    assert inner.told == [("started", 1), ("recorded", 1), ("recorded", 2)]
    assert isinstance(guarded.failure, RuntimeError)
    SilentObserver().round_finished(_Summary(1))  # says nothing, raises nothing


class _Summary:
    def __init__(self, number: int) -> None:
        self.number = number
