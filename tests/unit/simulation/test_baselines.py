"""Baselines after a completed run: a task that fails on one site's data costs that
baseline alone, never the run."""

import math
from pathlib import Path

import pytest

from accord.config import config_from_mapping
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.store import MemoryStore

pytest.importorskip("sklearn")

TASK = '''
from accord.task.numpy_task import softmax_regression


class Fragile:
    """Softmax regression that raises on a table of exactly ``rows`` rows."""

    def __init__(self, inner, rows):
        self.inner, self.rows = inner, rows

    def init_params(self, seed):
        return self.inner.init_params(seed)

    def train(self, params, data, config):
        if len(data) == self.rows:
            raise RuntimeError("corrupt site data")
        return self.inner.train(params, data, config)

    def predict(self, params, x):
        return self.inner.predict(params, x)


def build(info, *, rows=-1):
    return Fragile(softmax_regression(info), rows)
'''


def _config(base: Path, rows: int):
    return config_from_mapping(
        {
            "federation": {"rounds": 2, "seed": 3},
            "data": {"dataset": "digits", "partition": "quantity", "sites": 3},
            "task": {"factory": "fragile_task:build", "options": {"rows": rows}},
            "evaluation": {"baselines": True, "federated": False},
            "simulation": {"workers": 0},
        },
        base_dir=base,
    )


def test_a_task_failing_at_one_site_leaves_the_run_completed(tmp_path):
    (tmp_path / "fragile_task.py").write_text(TASK)
    sizes = [len(s.train) for s in build_context(_config(tmp_path, -1)).data.sites]
    assert len(set(sizes)) == 3  # quantity skew: the size names one site
    config = _config(tmp_path, sizes[1])
    store = MemoryStore()
    steps: list[str] = []

    result = simulate(config, store=store, on_baseline=steps.append)

    comparison = result.comparison
    assert comparison is not None
    bad = build_context(config).data.sites[1].name
    assert comparison.failed == {bad: "RuntimeError: corrupt site data"}
    assert math.isnan(comparison.sites[bad]["accuracy"])
    good = [name for name in comparison.sites if name != bad]
    assert all(math.isfinite(comparison.sites[n]["accuracy"]) for n in good)
    assert math.isfinite(comparison.pooled["accuracy"])
    assert sorted(steps) == sorted(["pooled", *comparison.sites])
    run = store.get_run(result.run.run_id)
    assert run.status == "completed"
    assert run.summary["comparison"]["failed"] == {
        bad: "RuntimeError: corrupt site data"
    }
    # The site also failed its federated rounds, which went on without it.
    assert all(r.status == "completed" for r in result.run.rounds)
