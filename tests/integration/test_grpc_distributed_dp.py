"""Participant-level DP with secure aggregation (distributed noise) over gRPC + mTLS.

Five enrolled sites each clip their update, weigh it 1 and add their share of
Skellam noise inside the ring encoding; the coordinator unmasks only the noised
sum. One site goes silent from the masked-input stage on in every round, so each
round's sum carries four noise shares: the stored epsilon must be the Skellam
accountant's for four contributors (not five), and the final model must equal a
simulation of the same run (same seeds, same dropout), bit for bit. A site that
was not told it may take a seeded noise share refuses the task, with its reason
recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import pytest

pytest.importorskip("cryptography")  # the secagg extra (pycryptodome)
pytest.importorskip("dp_accounting")  # the privacy extra

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.executor import Event, SecAggReply
from accord.coordinator.runner import Coordinator
from accord.privacy.distributed import SkellamAccountant, SkellamEvent
from accord.secagg.noised import DistributedNoise
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore
from accord.transport.jobs import STAGES

pytestmark = pytest.mark.timeout(180)

SITES = tuple(f"site-{i:02d}" for i in range(5))
SILENT = {"site-03": "masked_input"}
CLIP, MULTIPLIER, DELTA = 0.5, 1.0, 1e-5


def make_config(tmp_path: Path, rounds: int = 2) -> FedConfig:
    raw = {
        "federation": {"name": "grpc-distributed-dp", "rounds": rounds, "seed": 11},
        "data": {"dataset": "wine", "sites": len(SITES)},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "round": {"deadline_s": 120, "quorum": 0.5},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": "masking", "stage_timeout_s": 60},
        "privacy": {
            "level": "participant",
            "noise_multiplier": MULTIPLIER,
            "clip": CLIP,
            "delta": DELTA,
            "noise_seed": 5,
        },
    }
    return config_from_mapping(raw, base_dir=tmp_path)


class SimulatedClock:
    """Time passes only while nobody has anything to say."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lossy:
    """A simulation executor whose ``silent[p] = stage``: p's messages vanish."""

    def __init__(self, inner, silent: Mapping[str, str], clock: SimulatedClock):
        self.inner, self.silent, self.clock = inner, dict(silent), clock

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    @property
    def participants(self) -> tuple[str, ...]:
        return self.inner.participants

    def next_event(self, timeout: float | None) -> Event | None:
        event = self.inner.next_event(0)
        if event is None and timeout:
            self.clock.now += timeout  # nothing queued: the wait runs out
        if isinstance(event, SecAggReply):
            cut = self.silent.get(event.participant)
            if cut is not None and STAGES.index(event.stage) >= STAGES.index(cut):
                return None
        return event


def simulate(config: FedConfig):
    ctx = build_context(config)
    clock = SimulatedClock()
    executor = Lossy(InProcessExecutor(ctx), SILENT, clock)
    try:
        return Coordinator(
            config, executor=executor, store=MemoryStore(), clock=clock
        ).run(ctx.task.init_params(config.federation.seed))
    finally:
        executor.close()


@pytest.fixture
def deploy(federation, deploy_sites):
    for name in SITES:
        if not (federation.root / name).exists():
            federation.enrol(name)
    return functools.partial(deploy_sites, SITES)


def expected_epsilons(values: int, contributors: int, rounds: int) -> list[float]:
    """The Skellam accountant's epsilon after each round, by hand."""
    plan = DistributedNoise.plan(
        clip=CLIP,
        noise_multiplier=MULTIPLIER,
        participants=len(SITES),
        threshold=4,  # the safe default for five: 2 * 5 // 3 + 1
        values=values,
    )
    l2, l1 = plan.sensitivity
    accountant = SkellamAccountant()
    out = []
    for _ in range(rounds):
        accountant.compose(SkellamEvent(contributors * plan.noise_share, l2, l1))
        out.append(accountant.epsilon(DELTA))
    return out


def test_distributed_dp_over_mutual_tls_equals_the_simulation_with_a_dropout(
    deploy, tmp_path
):
    # Arrange
    config = make_config(tmp_path)
    simulated = simulate(config)
    deployed = deploy(config, silent=SILENT, accept_noise_seed=True)
    initial = build_context(config).task.init_params(config.federation.seed)

    # Act
    result, store = deployed.run(initial)

    # Assert: four contributors a round, each round accounted for four
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert [r.succeeded for r in result.rounds] == [4, 4]
    four = expected_epsilons(initial.size, 4, 2)
    five = expected_epsilons(initial.size, 5, 2)
    records = store.rounds(result.run_id)
    stored = [record.privacy[0].epsilon for record in records]
    assert stored == pytest.approx(four, rel=1e-12)
    assert all(s > f for s, f in zip(stored, five, strict=True))  # not five shares
    first = records[0].privacy[0]
    assert first.accountant == "skellam-rdp"
    assert first.details["distributed"] == 1.0
    assert first.details["contributors"] == 4.0
    assert store.get_run(result.run_id).summary["privacy"]["noise"] == "distributed"
    # The same seeds give the same noised model as the simulation, bit for bit.
    assert [r.epsilon for r in simulated.rounds] == stored
    assert result.params.digest() == simulated.params.digest()
    # No site sent an update in the clear.
    assert not deployed.site_log("site-01", "sent_update")


def test_a_site_refuses_a_seeded_noise_share_it_was_not_allowed(deploy, tmp_path):
    # Arrange: the sites do not accept a noise seed fixed by the coordinator
    config = make_config(tmp_path, rounds=1)
    deployed = deploy(config)
    initial = build_context(config).task.init_params(config.federation.seed)

    # Act
    result, store = deployed.run(initial)

    # Assert: nobody trained, the reason is recorded, nothing was accounted
    (record,) = store.rounds(result.run_id)
    assert record.status == "failed"
    assert record.privacy == ()
    for outcome in record.outcomes:
        assert outcome.status != "ok"
        assert "fixes the seed" in (outcome.reason or "")
