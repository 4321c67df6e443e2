"""Ditto at deployed sites over gRPC with mutual TLS equals the simulation.

Three participant runtimes in threads: two on ``sim:`` data whose fed.toml asks
for ``[personalization] method = "ditto"``, one on a fed.toml without it whose
operator chose Ditto itself (``accord participant --personalize ditto``). Every
evaluation report carries the global model's and the site's personal model's
scores, the figures the simulation gives; the global model is FedAvg's, the one a
run without personalization ends with; each personal model is in its site's state
folder, as safetensors, and nowhere else.
"""

from pathlib import Path

import pytest
from safetensors.numpy import load_file

from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.records import MetricValue
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store.memory import MemoryStore
from accord.task.personal_method import PersonalMethod

SITES = ("site-00", "site-01", "site-02")

pytestmark = pytest.mark.timeout(120)

FED = """
[federation]
name = "grpc-ditto"
rounds = 2
seed = 5
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
[store]
directory = "{store}"
[personalization]
method = "{method}"
"""


def _sites(metrics: tuple[MetricValue, ...]) -> dict[tuple[str, str], float]:
    return {
        (m.participant, m.name): m.value
        for m in metrics
        if m.scope == "site" and m.participant is not None
    }


def _simulate(tmp_path: Path, method: str) -> tuple[Path, str, list]:
    fed_toml = tmp_path / f"{method}.toml"
    fed_toml.write_text(FED.format(store=tmp_path / "sim", method=method))
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    store = MemoryStore()
    run = Coordinator(config, executor=InProcessExecutor(ctx), store=store).run(initial)
    return fed_toml, run.params.digest(), store.rounds(run.run_id)


def test_deployed_sites_train_ditto_as_the_simulation_does(
    coordinator, tmp_path: Path, background
):
    fed_toml, simulated, sim_rounds = _simulate(tmp_path, "ditto")
    plain_toml, plain, _ = _simulate(tmp_path, "off")
    config = load_config(fed_toml)
    initial = build_context(config).task.init_params(config.federation.seed)
    threads = []
    for name in SITES:
        own_choice = name == "site-02"  # --personalize ditto on a plain fed.toml
        data = load_local_data(f"sim:{plain_toml if own_choice else fed_toml}#{name}")
        runtime = ParticipantRuntime(
            lambda n=name: coordinator.client(n),
            build_task(data, None),
            data,
            log=SiteLog(tmp_path / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            state_dir=tmp_path / "state" / name,
            personal=PersonalMethod(method="ditto") if own_choice else None,
        )

        def serve(r=runtime):
            try:
                r.run()
            finally:
                r.log.close()

        threads.append(background(serve))
    assert coordinator.executor.wait_for(SITES, 20) == set(SITES)

    store = MemoryStore()
    deployed = Coordinator(config, executor=coordinator.executor, store=store).run(
        initial
    )
    coordinator.executor.close()
    for thread in threads:
        thread.join(10)

    assert [r.status for r in deployed.rounds] == ["completed"] * 2
    assert deployed.params.digest() == simulated == plain
    for dep, sim in zip(store.rounds(deployed.run_id), sim_rounds, strict=True):
        figures = _sites(dep.metrics)
        assert {(s, "personalized_accuracy") for s in SITES} <= set(figures)
        assert figures == _sites(sim.metrics)
    for name in SITES:
        kept = sorted((tmp_path / "state" / name / "personal").glob("*/*/round-*"))
        assert [p.name for p in kept] == [
            "round-00001.safetensors",
            "round-00002.safetensors",
        ], name
        assert sorted(load_file(kept[-1])) == ["b", "w"]
