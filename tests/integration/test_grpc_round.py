"""Whole rounds over gRPC with mutual TLS: three participant runtimes in threads."""

from pathlib import Path

import pytest

from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.runtime import ParticipantRuntime
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


def _start_sites(coordinator, fed_toml: Path, logs: Path, background) -> dict:
    """A participant runtime per site, each in a thread; returns their goodbyes."""
    goodbyes: dict[str, str] = {}
    threads = []
    for name in SITES:
        data = load_local_data(f"sim:{fed_toml}#{name}")
        runtime = ParticipantRuntime(
            lambda n=name: coordinator.client(n),
            build_task(data, None),
            data,
            log=SiteLog(logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
        )

        def serve(r=runtime, n=name):
            try:
                goodbyes[n] = r.run()
            finally:
                r.log.close()

        threads.append(background(serve))
    assert coordinator.executor.wait_for(SITES, 20) == set(SITES)
    goodbyes["threads"] = threads
    return goodbyes


def test_three_rounds_over_mutual_tls_equal_the_simulation_bit_for_bit(
    coordinator, fed_toml, tmp_path, background
):
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    simulated = Coordinator(
        config, executor=InProcessExecutor(ctx), store=MemoryStore()
    ).run(initial)
    goodbyes = _start_sites(coordinator, fed_toml, tmp_path, background)

    store = MemoryStore()
    deployed = Coordinator(config, executor=coordinator.executor, store=store).run(
        initial
    )
    coordinator.executor.close()
    for thread in goodbyes.pop("threads"):
        thread.join(10)

    assert [r.status for r in deployed.rounds] == ["completed"] * 3
    assert deployed.params.digest() == simulated.params.digest()
    assert [r.metrics for r in deployed.rounds] == [r.metrics for r in simulated.rounds]
    assert not coordinator.executor.rejections.snapshot()
    events = [e["event"] for e in SiteLog.read(tmp_path / "site-01.jsonl")]
    assert events.count("sent_update") == 3
    assert events.count("sent_eval") == 3
    assert events[0] == "connected"
    assert goodbyes == dict.fromkeys(SITES, "run finished")


def test_a_participant_that_is_not_connected_fails_its_job_at_once(coordinator):
    from accord.coordinator.executor import JobFailed, TrainJob
    from accord.params import Params
    from accord.task.protocol import TrainConfig

    coordinator.executor.publish(Params({"w": [1.0, 2.0]}))
    coordinator.executor.submit_train(1, [TrainJob("site-00", TrainConfig(round=1))])

    event = coordinator.executor.next_event(5)

    assert isinstance(event, JobFailed)
    assert "not connected" in event.reason


def test_spool_files_are_gone_once_every_update_was_released(
    coordinator, fed_toml, tmp_path, background
):
    config = load_config(fed_toml)
    ctx = build_context(config)
    _start_sites(coordinator, fed_toml, tmp_path, background)

    Coordinator(config, executor=coordinator.executor, store=MemoryStore()).run(
        ctx.task.init_params(1)
    )

    assert list(coordinator.executor.spool_dir.iterdir()) == []
    coordinator.executor.close()
