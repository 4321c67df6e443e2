"""Whole rounds over gRPC with mutual TLS: three participant runtimes in threads."""

from pathlib import Path

import pytest

from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.participant.sitelog import SiteLog
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store.memory import MemoryStore

SITES = ("site-00", "site-01", "site-02")

pytestmark = pytest.mark.timeout(120)

FED = """
[federation]
name = "grpc-round"
rounds = 3
seed = 11
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
"""


@pytest.fixture
def fed_toml(tmp_path: Path) -> Path:
    path = tmp_path / "fed.toml"
    path.write_text(FED)
    return path


def test_three_rounds_over_mutual_tls_equal_the_simulation_bit_for_bit(
    coordinator, fed_toml, tmp_path, sim_sites
):
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    simulated = Coordinator(
        config, executor=InProcessExecutor(ctx), store=MemoryStore()
    ).run(initial)
    sites = sim_sites(coordinator, fed_toml, SITES, tmp_path)

    deployed = sites.run(config, initial)

    assert [r.status for r in deployed.rounds] == ["completed"] * 3
    assert deployed.params.digest() == simulated.params.digest()
    assert [r.metrics for r in deployed.rounds] == [r.metrics for r in simulated.rounds]
    assert not coordinator.executor.rejections.snapshot()
    events = [e["event"] for e in SiteLog.read(tmp_path / "site-01.jsonl")]
    assert events.count("sent_update") == 3
    assert events.count("sent_eval") == 3
    assert events[0] == "connected"
    assert sites.goodbyes == dict.fromkeys(SITES, "run finished")


def test_a_participant_that_is_not_connected_fails_its_job_at_once(coordinator):
    from accord.coordinator.executor import JobFailed, TrainJob
    from accord.params import Params
    from accord.task.protocol import TrainConfig

    coordinator.executor.publish(Params({"w": [1.0, 2.0]}))
    coordinator.executor.submit_train(1, [TrainJob("site-00", TrainConfig(round=1))])

    event = coordinator.executor.next_event(5)

    assert isinstance(event, JobFailed)
    assert "not connected" in event.reason


@pytest.mark.parametrize("in_memory", [False, True], ids=["files", "memory"])
def test_the_spool_keeps_nothing_of_a_released_update(
    start_coordinator, fed_toml, tmp_path, sim_sites, in_memory
):
    config = load_config(fed_toml)
    initial = build_context(config).task.init_params(1)
    budget = 1 << 30 if in_memory else 0
    coordinator = start_coordinator(SITES, spool_memory=budget)
    sites = sim_sites(coordinator, fed_toml, SITES, tmp_path)

    result = sites.run(config, initial, close=False)

    assert [r.status for r in result.rounds] == ["completed"] * 3
    assert list(coordinator.executor.spool_dir.iterdir()) == []
    # In memory: one buffer per site of a round, reused from round to round.
    held = coordinator.executor._memory.held
    assert held == (len(SITES) * initial.spec.packed_nbytes if in_memory else 0)
    sites.close()
