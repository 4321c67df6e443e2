"""Participant-level DP over gRPC with mutual TLS equals the simulation bit for bit.

With the same run seed and the same (test-only) noise seed, the deployed
coordinator clips the same updates, draws the same noise and accounts the same
epsilon as a simulation: DP keeps the code base's simulation-vs-deployment digest
equality.
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
name = "grpc-dp"
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
[privacy]
level = "participant"
noise_multiplier = 0.8
clip = 0.5
accountant = "rdp"
noise_seed = 5
"""


def test_dp_rounds_over_mutual_tls_equal_the_simulation(
    coordinator, tmp_path: Path, sim_sites
):
    # Arrange
    fed_toml = tmp_path / "fed.toml"
    fed_toml.write_text(FED)
    config = load_config(fed_toml)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    sim_store = MemoryStore()
    simulated = Coordinator(
        config, executor=InProcessExecutor(ctx), store=sim_store
    ).run(initial)
    # Act
    store = MemoryStore()
    sites = sim_sites(coordinator, fed_toml, SITES, tmp_path)
    deployed = sites.run(config, initial, store=store)

    # Assert: same model, and the same epsilon accounted after every round
    assert [r.status for r in deployed.rounds] == ["completed"] * 3
    assert deployed.params.digest() == simulated.params.digest()
    deployed_eps = [r.epsilon for r in deployed.rounds]
    assert deployed_eps == [r.epsilon for r in simulated.rounds]
    assert deployed_eps == sorted(set(deployed_eps))  # strictly increasing
    (run,) = store.list_runs()
    recorded = store.rounds(run.run_id)
    assert [r.privacy[0].epsilon for r in recorded] == deployed_eps
    assert {r.privacy[0].clip for r in recorded} == {0.5}
