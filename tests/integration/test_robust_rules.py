"""Every robust rule through the real engine: ``accord simulate`` on digits, a
deployment over gRPC with mutual TLS, and FLTrust's root set in simulation.

No quality claims: these check that each rule runs end to end with the coordinator
applying it, and that a deployment applies it exactly as the simulation does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from accord.aggregation import RULE_NAMES
from accord.cli.main import app
from accord.config import config_from_mapping, load_config
from accord.coordinator.runner import Coordinator
from accord.errors import ConfigError
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.simulation.inprocess import InProcessExecutor
from accord.simulation.root import DEFAULT_ROOT_EXAMPLES, root_source
from accord.store.memory import MemoryStore

pytestmark = pytest.mark.timeout(300)

#: The options each rule needs from ``[strategy]`` (the others take defaults).
OPTIONS = {"norm_bounding": {"norm_bound": 5.0}, "multi_krum": {"attackers": 1}}


def digits(rule: str, **extra) -> dict:
    return {
        "federation": {"rounds": 2, "seed": 5},
        "data": {"dataset": "digits", "partition": "dirichlet", "sites": 5},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "strategy": {"aggregation": rule, **OPTIONS.get(rule, {})},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "round": {"deadline_s": 120},
        **extra,
    }


@pytest.mark.parametrize("rule", [r for r in RULE_NAMES if r != "mean"])
def test_every_rule_runs_through_the_simulation_engine(rule):
    config = config_from_mapping(digits(rule))
    initial = build_context(config).task.init_params(config.federation.seed)

    result = simulate(config, store=MemoryStore()).run

    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert "central.accuracy" in result.rounds[-1].metrics
    moved = [not np.array_equal(result.params[k], initial[k]) for k in initial]
    assert any(moved)
    assert all(np.isfinite(a).all() for a in result.params.values())


def test_accord_simulate_takes_a_rule_and_its_options_from_fed_toml(tmp_path):
    fed = tmp_path / "fed.toml"
    fed.write_text(
        """
[federation]
rounds = 2
seed = 3
[data]
dataset = "digits"
sites = 4
[task]
factory = "accord.task.numpy_task:softmax_regression"
[strategy]
aggregation = "multi_krum"
attackers = 0
select = 3
server_optimizer = "adam"
server_lr = 0.05
[simulation]
workers = 0
"""
    )

    result = CliRunner().invoke(
        app,
        ["simulate", str(fed), "--json", "--store", f"sqlite:///{tmp_path}/r.db"],
    )

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["status"] for r in out["rounds"]] == ["completed"] * 2


def test_accord_simulate_refuses_an_impossible_bound_before_any_round(tmp_path):
    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[data]\ndataset = "digits"\nsites = 6\n'
        '[task]\nfactory = "accord.task.numpy_task:softmax_regression"\n'
        '[strategy]\naggregation = "bulyan"\nattackers = 1\n'
    )

    result = CliRunner().invoke(app, ["simulate", str(fed)])

    assert result.exit_code == 2
    assert "n >= 4f + 3" in result.output


def test_fltrust_root_set_comes_out_of_the_test_set_and_repeats_per_round():
    config = config_from_mapping(digits("fltrust"))
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)

    root_update, rest = root_source(config, ctx)
    again, _ = root_source(config, build_context(config))

    assert len(rest.data.test) == len(ctx.data.test) - DEFAULT_ROOT_EXAMPLES
    assert root_update(initial, 2).digest() == again(initial, 2).digest()
    assert root_update(initial, 2).digest() != root_update(initial, 3).digest()
    small = config_from_mapping(
        digits(
            "fltrust",
            strategy={"aggregation": "fltrust", "root_examples": len(ctx.data.test)},
        )
    )
    with pytest.raises(ConfigError, match="root_examples"):
        root_source(small, ctx)


DEPLOYED = """
[federation]
name = "robust-grpc"
rounds = 2
seed = 11
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[strategy]
aggregation = "{rule}"
[simulation]
workers = 0
[round]
deadline_s = 60
[deployment]
participants = ["site-00", "site-01", "site-02"]
"""


@pytest.mark.parametrize("rule", [r for r in RULE_NAMES if r != "mean"])
def test_a_deployment_config_accepts_every_rule_but_fltrust(rule, tmp_path):
    fed = tmp_path / "fed.toml"
    extra = "norm_bound = 5.0\n" if rule == "norm_bounding" else ""
    fed.write_text(
        DEPLOYED.format(rule=rule).replace("[simulation]", extra + "[simulation]")
    )
    config = load_config(fed)

    if rule == "fltrust":
        with pytest.raises(ConfigError, match="a deployed coordinator has none"):
            Coordinator(config, executor=None, store=MemoryStore())  # type: ignore[arg-type]
        result = CliRunner().invoke(
            app, ["coordinator", str(fed), "--listen", "127.0.0.1:0", "--insecure"]
        )
        assert result.exit_code == 2 and "root dataset" in result.output
    else:
        Coordinator(config, executor=None, store=MemoryStore())  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", ["centered_clip", "weighted_trimmed_mean"])
def test_a_deployment_over_mutual_tls_applies_the_rule_as_the_simulation_does(
    rule, coordinator, tmp_path, sim_sites
):
    # Arrange: the same fed.toml simulated in-process and deployed to 3 sites
    fed = tmp_path / "fed.toml"
    fed.write_text(DEPLOYED.format(rule=rule))
    config = load_config(fed)
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    simulated = Coordinator(
        config, executor=InProcessExecutor(ctx), store=MemoryStore()
    ).run(initial)

    # Act
    sites = sim_sites(coordinator, fed, ("site-00", "site-01", "site-02"), tmp_path)
    deployed = sites.run(config, initial)

    # Assert: bit for bit, the clipping center carried between rounds included
    assert [r.status for r in deployed.rounds] == ["completed"] * 2
    assert deployed.params.digest() == simulated.params.digest()


class _StopAt:
    """Raises KeyboardInterrupt as round ``number`` starts (a killed coordinator)."""

    def __init__(self, number: int) -> None:
        self.number = number

    def round_started(self, number, selected) -> None:
        if number == self.number:
            raise KeyboardInterrupt

    def participant_finished(self, number, outcome) -> None:
        pass

    def round_finished(self, summary) -> None:
        pass


@pytest.mark.parametrize("rule", ["centered_clip", "fltrust"])
def test_a_resumed_run_repeats_the_rounds_state_and_root_updates(rule, tmp_path):
    # centered clipping's center lives in the checkpointed strategy state, and
    # FLTrust's root update is seeded by the round: resuming gives the same model
    config = config_from_mapping(
        digits(
            rule,
            federation={"rounds": 3, "seed": 5},
            strategy={
                "aggregation": rule,
                "server_optimizer": "adam",
                "server_lr": 0.05,
            },
        )
    )
    whole = simulate(config, store=MemoryStore(), checkpoint_dir=tmp_path / "a").run

    store = MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        simulate(
            config, store=store, checkpoint_dir=tmp_path / "b", observer=_StopAt(3)
        )
    (run,) = store.list_runs()
    resumed = simulate(
        config, store=store, checkpoint_dir=tmp_path / "b", resume=run.run_id
    ).run

    assert [r.global_digest for r in resumed.rounds] == [
        r.global_digest for r in whole.rounds
    ]
