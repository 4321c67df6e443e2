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
from accord.records import MetricValue
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store.memory import MemoryStore
from accord.task.personal_method import PersonalMethod

SITES = ("site-00", "site-01", "site-02")
OWN_CHOICE = "site-02"  # chooses ditto itself (--personalize), on a plain fed.toml

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
    coordinator, tmp_path: Path, sim_sites
):
    fed_toml, simulated, sim_rounds = _simulate(tmp_path, "ditto")
    plain_toml, plain, _ = _simulate(tmp_path, "off")
    config = load_config(fed_toml)
    initial = build_context(config).task.init_params(config.federation.seed)
    store = MemoryStore()
    sites = sim_sites(
        coordinator,
        lambda n: plain_toml if n == OWN_CHOICE else fed_toml,
        SITES,
        tmp_path,
        # --personalize ditto at a site of a plain fed.toml
        personal=lambda n: PersonalMethod(method="ditto") if n == OWN_CHOICE else None,
    )
    deployed = sites.run(config, initial, store=store)

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
