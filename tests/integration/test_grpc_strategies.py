"""SCAFFOLD and q-FedAvg over gRPC with mutual TLS equal their simulation bit for bit.

Three participant runtimes in threads, each keeping its SCAFFOLD control variate in
its own state folder (only delta_c leaves, with the update) or reporting its loss
before training for q-FedAvg; the deployed run ends with the simulated model.
"""

from pathlib import Path

import pytest

from accord.config import load_config
from accord.coordinator.runner import Coordinator
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store.memory import MemoryStore

SITES = ("site-00", "site-01", "site-02")

pytestmark = pytest.mark.timeout(120)

FED = """
[federation]
name = "grpc-strategies"
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
[store]
directory = "{store}"
[strategy]
{strategy}
"""


@pytest.mark.parametrize(
    "strategy",
    ["scaffold = true", 'aggregation = "qfedavg"\nq = 2.0'],
    ids=["scaffold", "qfedavg"],
)
def test_a_deployed_run_equals_the_simulation(
    coordinator, tmp_path: Path, sim_sites, strategy: str
):
    fed_toml = tmp_path / "fed.toml"
    fed_toml.write_text(FED.format(store=tmp_path / "sim", strategy=strategy))
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    simulated = Coordinator(
        config, executor=InProcessExecutor(ctx), store=MemoryStore()
    ).run(initial)
    store = MemoryStore()
    sites = sim_sites(coordinator, fed_toml, SITES, tmp_path)
    deployed = sites.run(config, initial, store=store)

    assert [r.status for r in deployed.rounds] == ["completed"] * 3
    assert deployed.params.digest() == simulated.params.digest()
    kept = sorted((tmp_path / "state").glob("*/scaffold/*/*/round-*.safetensors"))
    if "scaffold" in strategy:
        assert {p.parts[-5] for p in kept} == set(SITES)
    else:
        assert kept == []
        outcomes = store.rounds(deployed.run_id)[0].outcomes
        assert all(o.metrics["initial_loss"] > 0 for o in outcomes)
