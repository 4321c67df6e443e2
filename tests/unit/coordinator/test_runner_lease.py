"""The round loop serves a run only while it holds the run's lease.

In process: another thread holding the lease of a MemoryStore stands for another
coordinator (the cross-process locks are ``tests/unit/store/test_store_lease.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.runner import Coordinator, RoundSummary, create_run
from accord.errors import RunBusy
from accord.records import ParticipantOutcome
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore, RunStore

pytest.importorskip("sklearn")


def make_config(**federation: Any) -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": 2, "seed": 5, **federation},
            "data": {"dataset": "digits", "partition": "iid", "sites": 3},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
        }
    )


@contextmanager
def held_elsewhere(store: RunStore, run_id: str) -> Iterator[None]:
    """Another thread holds ``run_id``'s lease inside the block."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lease_run(run_id):
            taken.set()
            done.wait(timeout=30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(timeout=10)
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def busy_elsewhere(store: RunStore, run_id: str) -> bool:
    """Whether another thread is refused ``run_id``'s lease now."""
    refused: list[bool] = []

    def take() -> None:
        try:
            with store.lease_run(run_id):
                refused.append(False)
        except RunBusy:
            refused.append(True)

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(timeout=10)
    return refused[0]


class LeaseProbe:
    """An observer that notes, as each round starts, whether the run is leased."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.busy: list[bool] = []

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        self.busy.append(busy_elsewhere(self.store, self.run_id))

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        pass


class StopAtRound2:
    """An observer that interrupts the loop like Ctrl-C as round 2 starts."""

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        if number == 2:
            raise KeyboardInterrupt

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        pass


def interrupted_run(store: RunStore, config: FedConfig, checkpoints: Path) -> str:
    """A run that recorded round 1 only, then stopped (status ``aborted``)."""
    with pytest.raises(KeyboardInterrupt):
        simulate(
            config, store=store, checkpoint_dir=checkpoints, observer=StopAtRound2()
        )
    (run,) = store.list_runs()
    return run.run_id


def test_a_run_is_leased_while_its_rounds_run_and_freed_after() -> None:
    config = make_config()
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    with MemoryStore() as store:
        run_id = create_run(store, config)
        probe = LeaseProbe(store, run_id)
        coordinator = Coordinator(
            config, executor=InProcessExecutor(ctx), store=store, observer=probe
        )

        coordinator.run(initial, run_id=run_id)

        assert probe.busy == [True, True]
        assert not busy_elsewhere(store, run_id)


def test_a_caller_holding_the_lease_runs_the_loop_without_waiting_on_itself() -> None:
    config = make_config()
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    with MemoryStore() as store:
        run_id = create_run(store, config)
        coordinator = Coordinator(config, executor=InProcessExecutor(ctx), store=store)

        with store.lease_run(run_id):
            result = coordinator.run(initial, run_id=run_id)
            still_held = busy_elsewhere(store, run_id)

        assert [r.status for r in result.rounds] == ["completed", "completed"]
        assert still_held  # the loop's own lease ended; the caller's did not


def test_a_run_served_elsewhere_is_not_run_or_resumed(tmp_path: Path) -> None:
    config = make_config()
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    with MemoryStore() as store:
        run_id = interrupted_run(store, config, tmp_path)
        fresh = create_run(store, config)
        coordinator = Coordinator(config, executor=InProcessExecutor(ctx), store=store)

        with held_elsewhere(store, run_id), pytest.raises(RunBusy) as refused:
            coordinator.resume(run_id, initial)
        with held_elsewhere(store, fresh), pytest.raises(RunBusy):
            coordinator.run(initial, run_id=fresh)

        assert refused.value.run_id == run_id
        assert [r.number for r in store.rounds(run_id)] == [1]
        assert store.rounds(fresh) == []
        assert {r.run_id: r.status for r in store.list_runs()} == {
            run_id: "aborted",  # as it was: not reopened
            fresh: "running",  # not marked aborted: the other holder serves it
        }


def test_simulate_refuses_a_run_served_elsewhere_before_it_starts_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config()
    with MemoryStore() as store:
        run_id = interrupted_run(store, config, tmp_path)

        def too_late(*args: object, **kwargs: object) -> None:
            raise AssertionError("started work on a run served elsewhere")

        monkeypatch.setattr("accord.simulation.engine.warm_up", too_late)
        monkeypatch.setattr("accord.simulation.engine.build_context", too_late)
        with held_elsewhere(store, run_id), pytest.raises(RunBusy):
            simulate(config, store=store, checkpoint_dir=tmp_path, resume=run_id)

        assert [r.number for r in store.rounds(run_id)] == [1]
        assert store.get_run(run_id).status == "aborted"
