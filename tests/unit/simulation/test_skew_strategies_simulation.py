"""Each strategy for skewed data end to end: a seeded, label-skewed digits federation.

Ten sites at Dirichlet alpha 0.1, the numpy softmax regression, a few rounds: every
strategy runs, records and checkpoints each round and learns; the stateful ones
(SCAFFOLD's control variates, FedYogi's and FedAdagrad's moments) resume after an
interruption to the model an uninterrupted run gives, including when the round in
flight had already been trained by the sites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.simulation.engine import simulate
from accord.store import MemoryStore, SqlStore
from accord.store.checkpoint import CheckpointStore

STRATEGIES: dict[str, dict[str, Any]] = {
    "fedprox": {"proximal_mu": 0.1},
    "scaffold": {"scaffold": True},
    "fedyogi": {"server_optimizer": "yogi", "server_lr": 0.1},
    "fedadagrad": {"server_optimizer": "adagrad", "server_lr": 0.1},
    "qfedavg": {"aggregation": "qfedavg", "q": 1.0},
}


def _config(tmp_path: Path, strategy: dict[str, Any], rounds: int = 4) -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": rounds, "seed": 3},
            "data": {
                "dataset": "digits",
                "partition": "dirichlet",
                "alpha": 0.1,
                "sites": 10,
                "min_site_size": 20,
            },
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "train": {"learning_rate": 0.05, "epochs": 2},
            "evaluation": {"federated": False},
            "simulation": {"workers": 0},
            "store": {"directory": str(tmp_path / "runs")},
            "strategy": strategy,
        }
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_runs_checkpoints_and_learns(tmp_path: Path, name: str):
    cfg = _config(tmp_path, STRATEGIES[name])
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")
    ckpt = tmp_path / "ckpt"

    run = simulate(cfg, store=store, checkpoint_dir=ckpt).run
    rounds = store.rounds(run.run_id)
    store.close()

    assert [r.status for r in rounds] == ["completed"] * 4
    assert CheckpointStore(ckpt).rounds(run.run_id) == [1, 2, 3, 4]
    accuracy = [r.metrics["central.accuracy"] for r in run.rounds]
    # Ten classes: an untrained model scores about 0.1.
    assert accuracy[-1] > 0.8, accuracy


def test_scaffold_keeps_c_in_the_checkpoint_and_c_i_at_the_sites(tmp_path: Path):
    cfg = _config(tmp_path, STRATEGIES["scaffold"], rounds=2)
    store = MemoryStore()
    ckpt = tmp_path / "ckpt"

    run = simulate(cfg, store=store, checkpoint_dir=ckpt).run
    saved = CheckpointStore(ckpt)
    kept = saved.load_checkpoint(saved.path(run.run_id, 2))
    sites = tmp_path / "runs" / "sites" / "scaffold" / run.run_id

    control = [n for n in kept.extra["opt"] if n.startswith("scaffold.c/")]
    assert control == ["scaffold.c/w", "scaffold.c/b"]
    assert "scaffold.c/w" not in kept.params  # the model is the model
    assert len(list(sites.iterdir())) == 10
    outcome = store.rounds(run.run_id)[0].outcomes[0]
    assert outcome.metrics["local_steps"] > 0


class _Stop:
    """Interrupts the run: after round ``after`` is recorded, or inside ``during``."""

    def __init__(self, *, after: int | None = None, during: int | None = None):
        self.after, self.during = after, during

    def round_started(self, number: int, selected: object) -> None:
        pass

    def participant_finished(self, number: int, outcome: object) -> None:
        if number == self.during:
            raise KeyboardInterrupt

    def round_finished(self, summary: Any) -> None:
        if summary.number == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("name", "stop"),
    [
        ("scaffold", _Stop(after=2)),
        ("scaffold", _Stop(during=3)),  # the sites trained round 3 already
        ("fedyogi", _Stop(after=2)),
        ("fedadagrad", _Stop(during=2)),
    ],
    ids=["scaffold-after", "scaffold-during", "fedyogi-after", "fedadagrad-during"],
)
def test_a_resumed_run_ends_with_the_uninterrupted_model(
    tmp_path: Path, name: str, stop: _Stop
):
    cfg = _config(tmp_path, STRATEGIES[name])
    expected = simulate(cfg, store=MemoryStore()).run
    store = MemoryStore()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        simulate(cfg, store=store, checkpoint_dir=ckpt, observer=stop)  # type: ignore[arg-type]
    (run,) = store.list_runs()

    resumed = simulate(cfg, store=store, checkpoint_dir=ckpt, resume=run.run_id).run

    assert [r.number for r in store.rounds(run.run_id)] == [1, 2, 3, 4]
    assert resumed.params.digest() == expected.params.digest()


def test_worker_processes_give_the_in_process_model(tmp_path: Path):
    cfg = _config(tmp_path, STRATEGIES["scaffold"], rounds=2)
    pooled = config_from_mapping(
        {**cfg.to_json_dict(), "simulation": {"workers": 2}}, base_dir=cfg.base_dir
    )

    alone = simulate(cfg, store=MemoryStore()).run
    workers = simulate(pooled, store=MemoryStore()).run

    assert workers.params.digest() == alone.params.digest()
