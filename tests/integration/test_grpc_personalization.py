"""Fine-tuning at deployed sites over gRPC with mutual TLS equals the simulation.

Three participant runtimes in threads, on ``sim:`` data whose fed.toml asks for
``[personalization] method = "finetune"``: each evaluation report carries the
global model's and the site's fine-tuned model's scores, the same figures the
simulation gives; the global model is the one a run without personalization ends
with (fine-tuning changes nothing the federation trains).
"""

from pathlib import Path

import pytest

from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.records import MetricValue
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store.memory import MemoryStore

SITES = ("site-00", "site-01", "site-02")

pytestmark = pytest.mark.timeout(120)

FED = """
[federation]
name = "grpc-personalization"
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
epochs = 3
"""


def _sites(metrics: tuple[MetricValue, ...]) -> dict[tuple[str, str], float]:
    return {
        (m.participant, m.name): m.value
        for m in metrics
        if m.scope == "site" and m.participant is not None
    }


def _simulate(tmp_path: Path, method: str) -> tuple[Path, str, list]:
    """Simulate; the fed.toml, the final model's digest and the recorded rounds."""
    fed_toml = tmp_path / f"{method}.toml"
    fed_toml.write_text(FED.format(store=tmp_path / "sim", method=method))
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    store = MemoryStore()
    run = Coordinator(config, executor=InProcessExecutor(ctx), store=store).run(initial)
    return fed_toml, run.params.digest(), store.rounds(run.run_id)


def test_deployed_sites_fine_tune_as_the_simulation_does(
    coordinator, tmp_path: Path, sim_sites
):
    fed_toml, simulated, sim_rounds = _simulate(tmp_path, "finetune")
    _, plain, _ = _simulate(tmp_path, "off")
    config = load_config(fed_toml)
    initial = build_context(config).task.init_params(config.federation.seed)
    store = MemoryStore()
    sites = sim_sites(coordinator, fed_toml, SITES, tmp_path)
    deployed = sites.run(config, initial, store=store)

    assert [r.status for r in deployed.rounds] == ["completed"] * 2
    assert deployed.params.digest() == simulated == plain
    dep_rounds = store.rounds(deployed.run_id)
    for dep, sim in zip(dep_rounds, sim_rounds, strict=True):
        figures = _sites(dep.metrics)
        assert {(s, "personalized_accuracy") for s in SITES} <= set(figures)
        assert figures == _sites(sim.metrics)
