"""Resuming a run: same config only, from the last checkpoint, to the same model.

In process, with an observer that interrupts the loop like Ctrl-C; the SIGKILL
version, with real processes, is ``tests/e2e/test_resume.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.resume import check_resumable, check_same_config
from accord.coordinator.runner import Coordinator, RoundSummary, create_run
from accord.errors import ConfigError, StoreError
from accord.records import ParticipantOutcome
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.simulation.inprocess import InProcessExecutor
from accord.store import CheckpointStore, MemoryStore, RunStore

pytest.importorskip("sklearn")


class InterruptAt:
    """An observer that raises KeyboardInterrupt as round ``number`` starts, or
    once it is recorded if ``recorded``."""

    def __init__(self, number: int, *, recorded: bool = False) -> None:
        self.number = number
        self.recorded = recorded

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        if (number, False) == (self.number, self.recorded):
            raise KeyboardInterrupt

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        if (summary.number, True) == (self.number, self.recorded):
            raise KeyboardInterrupt


def make_config(**federation: Any) -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": 4, "seed": 5, **federation},
            "data": {"dataset": "digits", "partition": "iid", "sites": 3},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            # Adam's moments make the restored optimizer state matter.
            "strategy": {"server_optimizer": "adam", "server_lr": 0.05},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
        }
    )


def interrupted(
    config: FedConfig,
    store: RunStore,
    checkpoints: Path,
    *,
    at: int,
    recorded: bool = False,
) -> str:
    observer = InterruptAt(at, recorded=recorded)
    with pytest.raises(KeyboardInterrupt):
        simulate(config, store=store, checkpoint_dir=checkpoints, observer=observer)
    (run,) = store.list_runs()
    assert run.status == "aborted"
    return run.run_id


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Each round's global digest when nothing stops the run."""
    with MemoryStore() as store:
        directory = tmp_path_factory.mktemp("checkpoints")
        result = simulate(make_config(), store=store, checkpoint_dir=directory)
        return [r.global_digest for r in store.rounds(result.run.run_id)]


@pytest.mark.parametrize(
    ("at", "recorded"),
    [(1, False), (3, False), (4, True)],
    ids=["as-round-1-starts", "as-round-3-starts", "after-the-last-round"],
)
def test_interrupted_run_resumes_to_the_same_model(
    tmp_path: Path, uninterrupted: list[str], at: int, recorded: bool
) -> None:
    config = make_config()
    with MemoryStore() as store:
        run_id = interrupted(config, store, tmp_path, at=at, recorded=recorded)

        result = simulate(config, store=store, checkpoint_dir=tmp_path, resume=run_id)

        rounds = store.rounds(run_id)
        assert result.run.run_id == run_id
        assert [r.number for r in result.run.rounds] == [1, 2, 3, 4]
        assert [r.number for r in rounds] == [1, 2, 3, 4]
        assert [r.global_digest for r in rounds] == uninterrupted
        assert result.run.params.digest() == uninterrupted[-1]
        info = store.get_run(run_id)
        assert info.status == "completed"
        assert info.summary is not None and info.summary["final"]


def test_resume_with_another_config_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    with MemoryStore() as store:
        run_id = interrupted(make_config(), store, tmp_path, at=2)

        with pytest.raises(ConfigError, match=r"federation\.seed: run has 5"):
            simulate(
                make_config(seed=6), store=store, checkpoint_dir=tmp_path, resume=run_id
            )

        assert store.get_run(run_id).status == "aborted"
        assert [r.number for r in store.rounds(run_id)] == [1]


def test_resume_needs_the_checkpoints(tmp_path: Path) -> None:
    with MemoryStore() as store:
        run_id = interrupted(make_config(), store, tmp_path, at=3)

        with pytest.raises(StoreError, match="without its checkpoints"):
            simulate(make_config(), store=store, resume=run_id)


def test_resume_refuses_a_checkpoint_that_is_not_the_recorded_model(
    tmp_path: Path,
) -> None:
    with MemoryStore() as store:
        run_id = interrupted(make_config(), store, tmp_path, at=3)
        checkpoints = CheckpointStore(tmp_path)
        first = checkpoints.load_checkpoint(checkpoints.path(run_id, 1))
        checkpoints.save(run_id, 2, first.params, extra=first.extra)

        with pytest.raises(StoreError, match="is not the model of round 2"):
            simulate(make_config(), store=store, checkpoint_dir=tmp_path, resume=run_id)

        assert store.get_run(run_id).status == "aborted"


def test_same_config_passes_and_execution_sections_may_differ() -> None:
    stored = make_config().to_json_dict()
    current = dict(stored, simulation={"workers": 8}, store={"url": "sqlite://"})

    check_same_config("r", stored, current)


def test_settings_added_since_the_run_started_count_as_their_defaults() -> None:
    stored = make_config().to_json_dict()
    del stored["evaluation"]["every"]

    check_same_config("r", stored, make_config().to_json_dict())


def test_config_differences_are_all_listed() -> None:
    stored = make_config().to_json_dict()
    current = make_config(rounds=9, name="other").to_json_dict()
    current["train"] = dict(current["train"], options={"extra": [1, 2]})

    with pytest.raises(ConfigError) as info:
        check_same_config("r", stored, current)

    message = str(info.value)
    assert "federation.rounds: run has 4, config has 9" in message
    assert 'federation.name: run has "federation", config has "other"' in message
    assert "train.options.extra: run has null, config has [1, 2]" in message
    assert "only [simulation] but its slowdown, [store]" in message


def test_a_coordinator_may_wait_longer_but_not_change_its_roster() -> None:
    stored = make_config().to_json_dict()
    longer = dict(
        stored, deployment={**stored["deployment"], "wait_s": 5, "grace_s": 1}
    )
    other = dict(stored, deployment={**stored["deployment"], "participants": ["x"]})

    check_same_config("r", stored, longer)
    with pytest.raises(ConfigError, match=r"deployment\.participants"):
        check_same_config("r", stored, other)


def test_check_resumable_reads_the_run_and_changes_nothing(tmp_path: Path) -> None:
    with MemoryStore() as store:
        run_id = interrupted(make_config(), store, tmp_path, at=2)
        before = store.get_run(run_id)

        info = check_resumable(store, run_id, make_config().to_json_dict())

        assert info == before == store.get_run(run_id)
        with pytest.raises(ConfigError, match="federation.seed"):
            check_resumable(store, run_id, make_config(seed=9).to_json_dict())
        store.finish_run(run_id, status="completed", summary=None)
        with pytest.raises(StoreError, match="nothing to resume"):
            check_resumable(store, run_id, make_config().to_json_dict())


def test_a_run_created_first_is_the_one_that_runs(tmp_path: Path) -> None:
    config = make_config(rounds=2)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    with MemoryStore() as store:
        run_id = create_run(store, config)
        coordinator = Coordinator(config, executor=InProcessExecutor(ctx), store=store)

        result = coordinator.run(initial, run_id=run_id)

        assert result.run_id == run_id
        assert [r.run_id for r in store.list_runs()] == [run_id]
        assert [r.number for r in store.rounds(run_id)] == [1, 2]
        with pytest.raises(StoreError, match="continue it with resume"):
            coordinator.run(initial, run_id=run_id)


def test_a_resume_with_another_slowdown_is_refused() -> None:
    """slowdown decides which sites a round closes without: it shapes the model."""
    stored = make_config().to_json_dict()
    slower = dict(stored, simulation={"workers": 8, "slowdown": {"site-02": 50.0}})
    same = dict(stored, simulation={"workers": 8})  # slowdown left at its default

    check_same_config("r", stored, same)
    with pytest.raises(
        ConfigError, match=r"simulation\.slowdown\.site-02: run has null"
    ):
        check_same_config("r", stored, slower)
