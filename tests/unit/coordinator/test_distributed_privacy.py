"""Participant-level DP under masking in the round loop: distributed noise.

Five simulated sites (threshold 4 by default) each clip and noise their own update
inside the ring; the run accounts each round with the Skellam accountant for the
sites whose noised input is in the unmasked sum, stops before a round that could
pass the budget (checked with the fewest contributors the protocol allows),
rebuilds its accountant on resume, and reaches a target epsilon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("cryptography")  # the secagg extra
pytest.importorskip("dp_accounting")  # the privacy extra

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.privacy import CentralPrivacy
from accord.privacy.distributed import SkellamAccountant, SkellamEvent
from accord.secagg.noised import DistributedNoise
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.store import MemoryStore

SITES, THRESHOLD, Z, CLIP = 5, 4, 1.5, 0.5


def make_config(tmp_path: Path, *, rounds: int = 3, **privacy: Any) -> FedConfig:
    raw: dict[str, Any] = {
        "federation": {"rounds": rounds, "seed": 3},
        "data": {"dataset": "synthetic", "sites": SITES, "options": {"rows": 400}},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": "masking"},
        "privacy": {
            "level": "participant",
            "noise_multiplier": Z,
            "clip": CLIP,
            "noise_seed": 99,
            **privacy,
        },
    }
    return config_from_mapping(raw, base_dir=tmp_path)


def epsilons(config: FedConfig, contributors: list[int], z: float = Z) -> list[float]:
    """The accountant's epsilon after each round, by the plan of the round."""
    values = build_context(config).task.init_params(0).size
    plan = DistributedNoise.plan(
        clip=CLIP,
        noise_multiplier=z,
        participants=SITES,
        threshold=THRESHOLD,
        values=values,
    )
    l2, l1 = plan.sensitivity
    accountant, out = SkellamAccountant(), []
    for k in contributors:
        accountant.compose(SkellamEvent(k * plan.noise_share, l2, l1))
        out.append(accountant.epsilon(1e-5))
    return out


def test_each_round_is_accounted_for_its_contributors(tmp_path: Path) -> None:
    config = make_config(tmp_path, rounds=2)

    with MemoryStore() as store:
        result = simulate(config, store=store)
        rounds = store.rounds(result.run.run_id)
        summary = store.get_run(result.run.run_id).summary

    assert [r.privacy[0].epsilon for r in rounds] == pytest.approx(
        epsilons(config, [5, 5]), rel=1e-12
    )
    assert summary is not None and summary["privacy"]["noise"] == "distributed"
    assert summary["privacy"]["accountant"] == "skellam-rdp"


def test_a_budget_stops_the_run_checked_with_the_fewest_contributors(
    tmp_path: Path,
) -> None:
    # Arrange: the budget admits 2 rounds of 5 and even of 4 contributors, but
    # not a third round of the 4 the protocol could unmask
    config0 = make_config(tmp_path)
    worst = epsilons(config0, [5, 5, 4])
    assert epsilons(config0, [5, 4])[-1] < worst[-1]
    budget = (epsilons(config0, [5, 4])[-1] + worst[-1]) / 2
    config = make_config(tmp_path, rounds=5, budget_epsilon=budget)

    # Act
    with MemoryStore() as store:
        result = simulate(config, store=store)
        rounds = store.rounds(result.run.run_id)

    # Assert
    assert len(rounds) == 2
    assert result.run.stopped is not None
    assert "budget exhausted before round 3" in result.run.stopped


def test_restore_rebuilds_the_skellam_accountant(tmp_path: Path) -> None:
    config = make_config(tmp_path, rounds=2)
    with MemoryStore() as store:
        result = simulate(config, store=store)
        recorded = store.rounds(result.run.run_id)
    privacy = CentralPrivacy.of(config, participants=SITES)
    assert privacy is not None and privacy.placement == "distributed"

    privacy.restore(recorded)

    assert privacy.epsilon() == pytest.approx(recorded[-1].privacy[0].epsilon)


def test_target_epsilon_is_met_with_the_fewest_contributors(tmp_path: Path) -> None:
    # Arrange
    config = make_config(tmp_path, noise_multiplier=None, target_epsilon=4.0)
    privacy = CentralPrivacy.of(config, participants=SITES)
    assert privacy is not None
    z = privacy.noise_multiplier

    # Act / Assert: three rounds of the fewest contributors spend just under 4
    worst = epsilons(config, [4, 4, 4], z=z)[-1]
    assert 4.0 * 0.999 < worst <= 4.0
    with MemoryStore() as store:
        result = simulate(config, store=store)
        rounds = store.rounds(result.run.run_id)
    assert len(rounds) == 3
    assert rounds[-1].privacy[0].epsilon <= worst


def test_worker_processes_give_the_in_process_model(tmp_path: Path) -> None:
    # The job (with its noise plan) crosses to the workers as JSON and back.
    config = make_config(tmp_path, rounds=1)
    pooled = config.model_copy(
        update={"simulation": config.simulation.model_copy(update={"workers": 2})}
    )

    with MemoryStore() as store:
        inline = simulate(config, store=store).run
    with MemoryStore() as store:
        workers = simulate(pooled, store=store).run

    assert workers.rounds[0].succeeded == SITES
    assert workers.params.digest() == inline.params.digest()
    assert workers.rounds[0].epsilon == inline.rounds[0].epsilon
