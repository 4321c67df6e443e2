"""``[simulation] engine = "ray"``: sites in Ray actors, same model as worker processes.

One private Ray instance per module, started as the engine starts it (every server
on loopback, no dashboard: :func:`~accord.simulation.ray_pool.start_ray`), shut
down after. The executor finds it initialised and uses it
as it is. Skipped where the ``ray`` extra is not installed; the configuration and
batching tests run everywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.errors import ConfigError, MissingExtraError
from accord.simulation.engine import simulate
from accord.simulation.ray_pool import _ray, batch_size, loopback_only, start_ray
from accord.store import SqlStore

REPO = Path(__file__).resolve().parents[3]

# Ray's own modules warn (deprecations) as it starts; accord's code is not theirs.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """A two-CPU Ray on loopback for this module (as engine = "ray" starts it)."""
    ray = pytest.importorskip("ray")
    assert start_ray("local", num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_the_local_ray_listens_on_loopback_only(ray_local: Any) -> None:
    # Every Ray server of the node (GCS, raylet, workers) binds the node's address.
    assert loopback_only(ray_local)
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ  # restored


def _covid(tmp_path: Path, engine: str, workers: int) -> FedConfig:
    from accord.config import load_config

    return load_config(
        REPO / "examples" / "covid" / "fed.toml",
        federation={"rounds": 3},
        simulation={"workers": workers, "engine": engine},
        store={"directory": str(tmp_path / "runs"), "checkpoints": False},
        evaluation={"baselines": False},
        profile={"enabled": False},
    )


def _run(config: FedConfig, db: Path) -> Any:
    store = SqlStore(f"sqlite:///{db}")
    try:
        run = simulate(config, store=store).run
        rounds = store.rounds(run.run_id)
    finally:
        store.close()
    return run, rounds


def test_ray_gives_the_process_executors_model(ray_local: Any, tmp_path: Path) -> None:
    # Arrange: the same federation (covid by clinic, seed 0, 3 rounds) on each.
    ray_cfg = _covid(tmp_path, "ray", 2)
    process_cfg = _covid(tmp_path, "process", 2)
    # Act
    on_ray, ray_rounds = _run(ray_cfg, tmp_path / "ray.db")
    in_workers, _ = _run(process_cfg, tmp_path / "process.db")
    # Assert: every round's model, hence the final one, is bit-identical.
    assert [r.status for r in on_ray.rounds] == ["completed"] * 3
    assert [r.global_digest for r in on_ray.rounds] == [
        r.global_digest for r in in_workers.rounds
    ]
    assert on_ray.params.digest() == in_workers.params.digest()
    assert all(o.status == "ok" for r in ray_rounds for o in r.outcomes)
    assert len({o.participant for o in ray_rounds[0].outcomes}) == 8


def _wine(tmp_path: Path, **overrides: Any) -> FedConfig:
    raw: dict[str, Any] = {
        "federation": {"rounds": 2, "seed": 3},
        "data": {"dataset": "wine", "sites": 3},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "train": {"learning_rate": 0.1, "epochs": 2},
        "evaluation": {"federated": True},
        "profile": {"enabled": False},
        "store": {"directory": str(tmp_path / "runs"), "checkpoints": False},
    }
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_mapping(raw)


def test_compressed_updates_match_in_process(ray_local: Any, tmp_path: Path) -> None:
    # Arrange: q8's stochastic rounding is seeded per site and round.
    compress = {"method": "q8"}
    ray_cfg = _wine(
        tmp_path, simulation={"engine": "ray", "workers": 2}, compression=compress
    )
    local_cfg = _wine(tmp_path, simulation={"workers": 0}, compression=compress)
    # Act
    on_ray, ray_rounds = _run(ray_cfg, tmp_path / "ray.db")
    in_process, _ = _run(local_cfg, tmp_path / "local.db")
    # Assert: same model; sites were scored federatedly on their holdouts.
    assert on_ray.params.digest() == in_process.params.digest()
    assert "federated.accuracy" in on_ray.rounds[-1].metrics
    assert all(o.status == "ok" for r in ray_rounds for o in r.outcomes)


def test_an_async_run_on_ray_gives_the_in_process_model(
    ray_local: Any, tmp_path: Path
) -> None:
    # Arrange: FedBuff with a slow site; the virtual clock orders the updates.
    async_round = {"round": {"mode": "async", "buffer_size": 2}}
    slow = {"slowdown": {"site-02": 6.0}}
    on_ray_cfg = _wine(
        tmp_path,
        simulation={"engine": "ray", "workers": 2, **slow},
        evaluation={"federated": False},
        **async_round,
    )
    local_cfg = _wine(
        tmp_path,
        simulation={"workers": 0, **slow},
        evaluation={"federated": False},
        **async_round,
    )
    # Act
    on_ray, _ = _run(on_ray_cfg, tmp_path / "ray.db")
    in_process, _ = _run(local_cfg, tmp_path / "local.db")
    # Assert
    assert [r.status for r in on_ray.rounds] == ["completed"] * len(on_ray.rounds)
    assert on_ray.params.digest() == in_process.params.digest()


_FAILING_TASK = '''
from accord.task.numpy_task import softmax_regression


class Failing:
    """Softmax regression whose site-01 always raises in training."""

    def __init__(self, info):
        self.inner = softmax_regression(info)

    def init_params(self, seed):
        return self.inner.init_params(seed)

    def train(self, params, data, config):
        if config.participant == "site-01":
            raise RuntimeError("disk on fire at site-01")
        return self.inner.train(params, data, config)

    def predict(self, params, x):
        return self.inner.predict(params, x)


def build(info):
    return Failing(info)
'''


def test_a_site_that_raises_is_recorded_and_the_round_goes_on(
    ray_local: Any, tmp_path: Path
) -> None:
    # Arrange: a task module next to the configuration, loaded by each actor.
    (tmp_path / "failing_task.py").write_text(_FAILING_TASK)
    cfg = _wine(
        tmp_path,
        task={"factory": "failing_task:build"},
        simulation={"engine": "ray", "workers": 2},
        round={"quorum": 0.5},
    ).model_copy(update={"base_dir": str(tmp_path)})
    # Act
    run, rounds = _run(cfg, tmp_path / "r.db")
    # Assert: each round completed without site-01, whose reason is recorded.
    assert [r.status for r in run.rounds] == ["completed"] * 2
    failed = [
        (o.participant, o.reason)
        for r in rounds
        for o in r.outcomes
        if o.status != "ok"
    ]
    assert failed and {p for p, _ in failed} == {"site-01"}
    assert all("disk on fire" in (reason or "") for _, reason in failed)


_DYING_TASK = '''
import os
import time

from accord.task.numpy_task import softmax_regression


class Dying:
    """Softmax regression whose site-01 kills its process, or hangs, in training."""

    def __init__(self, info, mode):
        self.inner = softmax_regression(info)
        self.mode = mode

    def init_params(self, seed):
        return self.inner.init_params(seed)

    def train(self, params, data, config):
        if config.participant == "site-01":
            if self.mode == "exit":
                os._exit(3)
            time.sleep(600)
        return self.inner.train(params, data, config)

    def predict(self, params, x):
        return self.inner.predict(params, x)


def build(info, *, mode="exit"):
    return Dying(info, mode)
'''


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("exit", "Ray actor died"), ("hang", "deadline")],
)
def test_a_dead_or_hung_actor_is_replaced(
    ray_local: Any, tmp_path: Path, mode: str, reason: str
) -> None:
    # Arrange: two actors; site-01 is alone in actor 1 and kills it (or hangs).
    (tmp_path / "dying_task.py").write_text(_DYING_TASK)
    cfg = _wine(
        tmp_path,
        task={"factory": "dying_task:build", "options": {"mode": mode}},
        simulation={"engine": "ray", "workers": 2},
        round={"quorum": 0.5, "deadline_s": 8},
        evaluation={"federated": False},
    ).model_copy(update={"base_dir": str(tmp_path)})
    # Act
    run, rounds = _run(cfg, tmp_path / "r.db")
    # Assert: both rounds completed with the other sites; site-01 failed in each
    # (so its actor came back for round 2), with the reason.
    assert [r.status for r in run.rounds] == ["completed"] * 2
    for r in rounds:
        by_site = {o.participant: o for o in r.outcomes}
        assert by_site["site-00"].status == "ok"
        assert by_site["site-02"].status == "ok"
        assert by_site["site-01"].status != "ok"
        assert reason in (by_site["site-01"].reason or "")


def test_ray_engine_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    # No actor in-process, an address without Ray, secure rounds or trees on Ray.
    with pytest.raises(ConfigError, match="workers"):
        _wine(tmp_path, simulation={"engine": "ray", "workers": 0})
    with pytest.raises(ConfigError, match="engine"):
        _wine(tmp_path, simulation={"address": "10.0.0.5:6379"})
    with pytest.raises(ConfigError, match="simulation.engine"):
        _wine(
            tmp_path,
            simulation={"engine": "ray"},
            secure_aggregation={"mode": "masking"},
        )
    with pytest.raises(ConfigError, match="simulation.engine"):  # trees: in-process
        config_from_mapping(
            {
                "data": {"dataset": "wine", "sites": 3},
                "model": {"kind": "gbdt"},
                "simulation": {"engine": "ray"},
            }
        )


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(MissingExtraError, match=r"accord\[ray\]"):
        _ray()


@pytest.mark.parametrize(
    ("jobs", "actors", "nbytes", "expected"),
    [
        (10, 2, 4096, 1),  # few sites: one per call, spread over the actors
        (10_000, 2, 4096, 64),  # many small sites: capped batches
        (1_000, 2, 4096, 63),  # eight calls per actor
        (10_000, 2, 40 * 2**20, 1),  # a 40 MiB model: one per call
    ],
)
def test_batch_size(jobs: int, actors: int, nbytes: int, expected: int) -> None:
    assert batch_size(jobs, actors, nbytes) == expected
