"""A run is "completed" only if it trained: one none of whose rounds completed failed.

The task fails its training in the rounds listed in ``FAIL_ROUNDS`` (a task option),
so every participant's job fails there, as with a learning rate that sends the
weights to infinity; the loop goes on while fewer than ``max_failed_rounds`` fail
in a row.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.summary import untrained
from accord.simulation.engine import simulate
from accord.store import MemoryStore

TASK = """
from accord.task.numpy_task import SoftmaxRegression


class FailsInSomeRounds(SoftmaxRegression):
    def __init__(self, info, fail_rounds):
        super().__init__(info)
        self.fail_rounds = set(fail_rounds)

    def train(self, params, data, config):
        if config.round in self.fail_rounds:
            raise FloatingPointError(f"loss is inf in round {config.round}")
        return super().train(params, data, config)


def build(info, *, fail_rounds=()):
    return FailsInSomeRounds(info, fail_rounds)
"""


def make_config(tmp_path: Path, *, rounds: int, fail_rounds: list[int]) -> FedConfig:
    (tmp_path / "outcome_task.py").write_text(TASK)
    raw: dict[str, Any] = {
        "federation": {"rounds": rounds, "seed": 3},
        "data": {"dataset": "synthetic", "sites": 3, "options": {"rows": 300}},
        "task": {
            "factory": "outcome_task:build",
            "options": {"fail_rounds": fail_rounds},
        },
        "round": {"max_failed_rounds": 3},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
    }
    return config_from_mapping(raw, base_dir=tmp_path)


def test_a_run_whose_every_round_failed_is_recorded_failed_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, rounds=2, fail_rounds=[1, 2])

    with MemoryStore() as store, caplog.at_level(logging.INFO):
        result = simulate(config, store=store)
        (run,) = store.list_runs()
        rounds = store.rounds(run.run_id)

    assert run.status == "failed"
    assert run.summary is not None
    assert "none of its 2 round(s) completed" in run.summary["reason"]
    assert [r.status for r in rounds] == ["failed", "failed"]
    assert all(o.status == "failed" for r in rounds for o in r.outcomes)
    assert untrained(result.run) == run.summary["reason"]
    assert f"run {run.run_id} failed: none of its 2 round(s)" in caplog.text


def test_a_run_with_one_completed_round_after_failures_is_completed(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, rounds=3, fail_rounds=[1, 2])

    with MemoryStore() as store:
        result = simulate(config, store=store)
        (run,) = store.list_runs()

    assert run.status == "completed"
    assert [r.status for r in result.run.rounds] == ["failed", "failed", "completed"]
    assert untrained(result.run) is None
