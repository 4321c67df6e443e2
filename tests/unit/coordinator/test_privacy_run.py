"""Participant-level DP in the round loop: noise, epsilon per round, the budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.privacy import RELEASED_EVENT as RELEASED
from accord.coordinator.privacy import CentralPrivacy
from accord.coordinator.summary import RoundSummary
from accord.errors import ConfigError
from accord.privacy.accountant import DpAccountant
from accord.privacy.events import participant_round_event
from accord.records import ParticipantOutcome
from accord.simulation.engine import simulate
from accord.store import MemoryStore

#: 4 sites, 2 selected per round: sampling rate 0.5.
SITES, FRACTION, Z = 4, 0.5, 1.5


def make_config(tmp_path: Path, *, rounds: int = 4, **privacy: Any) -> FedConfig:
    raw: dict[str, Any] = {
        "federation": {"rounds": rounds, "seed": 3},
        "data": {"dataset": "synthetic", "sites": SITES, "options": {"rows": 400}},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "selection": {"fraction": FRACTION},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "privacy": {
            "level": "participant",
            "noise_multiplier": Z,
            "clip": 0.5,
            "accountant": "rdp",
            "noise_seed": 99,
            **privacy,
        },
    }
    return config_from_mapping(raw, base_dir=tmp_path)


def epsilon_after(rounds: int) -> float:
    accountant = DpAccountant("rdp")
    accountant.compose(participant_round_event(Z, FRACTION), rounds)
    return accountant.epsilon(1e-5)


def test_a_budget_stops_the_run_before_the_round_that_would_exceed_it(
    tmp_path: Path,
) -> None:
    # Arrange: the budget lies between epsilon after 2 and after 3 rounds
    budget = (epsilon_after(2) + epsilon_after(3)) / 2
    config = make_config(tmp_path, rounds=6, budget_epsilon=budget)

    # Act
    with MemoryStore() as store:
        result = simulate(config, store=store)
        (run,) = store.list_runs()
        rounds = store.rounds(run.run_id)

    # Assert: rounds 1 and 2 ran, round 3 never started
    assert [r.number for r in rounds] == [1, 2]
    epsilons = [r.privacy[0].epsilon for r in rounds]
    assert epsilons == pytest.approx([epsilon_after(1), epsilon_after(2)])
    assert epsilons[0] < epsilons[1] <= budget
    assert all(r.privacy[0].sampling_rate == FRACTION for r in rounds)
    assert run.status == "completed"
    assert run.summary is not None
    assert run.summary["reason"].startswith("budget exhausted before round 3")
    assert run.summary["privacy"]["epsilon"] == pytest.approx(epsilon_after(2))
    assert result.run.stopped == run.summary["reason"]
    assert [r.epsilon for r in result.run.rounds] == pytest.approx(epsilons)


def test_a_budget_too_small_for_one_round_trains_nothing_and_says_why(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, budget_epsilon=epsilon_after(1) * 0.99)

    with MemoryStore() as store:
        simulate(config, store=store)
        (run,) = store.list_runs()
        assert store.rounds(run.run_id) == []

    assert run.status == "failed"
    assert run.summary is not None
    assert "none of its 0 round(s)" in run.summary["reason"]


def test_seeded_noise_gives_the_same_model_and_another_seed_another(
    tmp_path: Path,
) -> None:
    def digest(**privacy: Any) -> str:
        config = make_config(tmp_path, rounds=2, **privacy)
        with MemoryStore() as store:
            return simulate(config, store=store).run.params.digest()

    assert digest() == digest()
    assert digest(noise_seed=100) != digest()


def test_noise_changes_the_model_against_the_plain_mean(tmp_path: Path) -> None:
    with MemoryStore() as store:
        noisy = simulate(make_config(tmp_path, rounds=1), store=store).run
        quiet = simulate(
            make_config(tmp_path, rounds=1, noise_multiplier=1e-9, budget_epsilon=None),
            store=store,
        ).run
    assert noisy.params.digest() != quiet.params.digest()


def test_an_adaptive_clip_moves_and_is_recorded(tmp_path: Path) -> None:
    config = make_config(tmp_path, rounds=3, clip=None, adaptive_clip=True)

    with MemoryStore() as store:
        simulate(config, store=store)
        (run,) = store.list_runs()
        rounds = store.rounds(run.run_id)

    clips = [r.privacy[0].clip for r in rounds]
    nexts = [r.privacy[0].details["next_clip"] for r in rounds]
    assert clips[0] == 0.1
    assert clips[1:] == nexts[:-1]  # each round uses the clip the last one chose
    assert len(set(clips)) == 3
    # the count's noise is inside the accounted multiplier: epsilon is unchanged
    assert [r.privacy[0].epsilon for r in rounds] == pytest.approx(
        [epsilon_after(n) for n in (1, 2, 3)]
    )
    assert rounds[0].privacy[0].details["update_noise_multiplier"] > Z


def test_target_epsilon_is_reached_at_the_last_planned_round(tmp_path: Path) -> None:
    config = make_config(tmp_path, rounds=3, noise_multiplier=None, target_epsilon=4.0)

    with MemoryStore() as store:
        simulate(config, store=store)
        (run,) = store.list_runs()
        rounds = store.rounds(run.run_id)

    assert len(rounds) == 3
    assert rounds[-1].privacy[0].epsilon == pytest.approx(4.0, rel=2e-3)
    assert rounds[-1].privacy[0].epsilon <= 4.0


def test_restore_rebuilds_the_accountant_from_recorded_rounds(tmp_path: Path) -> None:
    config = make_config(tmp_path, rounds=2)
    with MemoryStore() as store:
        simulate(config, store=store)
        (run,) = store.list_runs()
        recorded = store.rounds(run.run_id)
    privacy = CentralPrivacy.of(config, participants=SITES)
    assert privacy is not None

    privacy.restore(recorded)

    assert privacy.epsilon() == pytest.approx(recorded[-1].privacy[0].epsilon)


class _StopAtRound:
    """Interrupts the loop like Ctrl-C as round ``number`` starts."""

    def __init__(self, number: int) -> None:
        self.number = number

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        if number == self.number:
            raise KeyboardInterrupt

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        pass


def test_a_resumed_run_continues_its_epsilon_and_adaptive_clip(tmp_path: Path) -> None:
    # Arrange: the same DP run, straight through and interrupted at round 3
    config = make_config(tmp_path, rounds=4, clip=None, adaptive_clip=True)
    with MemoryStore() as store:
        straight = simulate(config, store=store, checkpoint_dir=tmp_path / "a").run
    with MemoryStore() as store:
        with pytest.raises(KeyboardInterrupt):
            simulate(
                config,
                store=store,
                checkpoint_dir=tmp_path / "b",
                observer=_StopAtRound(3),
            )
        (run,) = store.list_runs()

        # Act
        resumed = simulate(
            config, store=store, checkpoint_dir=tmp_path / "b", resume=run.run_id
        ).run
        rounds = store.rounds(run.run_id)

    # Assert: the same clips, epsilons and model as without the interruption
    assert resumed.params.digest() == straight.params.digest()
    assert [r.epsilon for r in resumed.rounds] == [r.epsilon for r in straight.rounds]
    assert [r.privacy[0].epsilon for r in rounds] == pytest.approx(
        [epsilon_after(n) for n in (1, 2, 3, 4)]
    )


def test_an_unreachable_target_is_refused_before_any_run_exists(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path, rounds=50, noise_multiplier=None, target_epsilon=1e-3
    )

    with MemoryStore() as store:
        with pytest.raises(ConfigError, match="raise target_epsilon") as err:
            simulate(config, store=store)
        assert store.list_runs() == []
    assert err.value.key == "privacy.target_epsilon"


def _dp_config(tmp_path: Path, rounds: int) -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": rounds, "seed": 3},
            "data": {"dataset": "synthetic", "sites": 4, "options": {"rows": 400}},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "evaluation": {"federated": True},
            "simulation": {"workers": 0},
            "privacy": {
                "level": "participant",
                "noise_multiplier": 1.5,
                "clip": 0.5,
                "accountant": "rdp",
            },
        },
        base_dir=tmp_path,
    )


def test_a_release_a_stop_kept_from_being_recorded_is_still_accounted(
    tmp_path: Path,
) -> None:
    """Round 2's noised model reached the sites (and their evaluation), then the
    coordinator stopped before recording it: the resumed run runs round 2 again
    with fresh noise, so the sites saw three releases, and three are accounted."""

    class StopsOnce(MemoryStore):
        stopped = False

        def record_round(self, record: Any, *a: Any, **k: Any) -> None:
            if record.number == 2 and not StopsOnce.stopped:
                StopsOnce.stopped = True
                raise KeyboardInterrupt("stopped after round 2 was released")
            super().record_round(record, *a, **k)

    with StopsOnce() as store:
        with pytest.raises(KeyboardInterrupt):
            simulate(_dp_config(tmp_path, 2), store=store, checkpoint_dir=tmp_path)
        (run,) = store.list_runs()
        released = [e.round for e in store.events(run.run_id) if e.kind == RELEASED]
        assert released == [1, 2]
        resumed = simulate(
            _dp_config(tmp_path, 2),
            store=store,
            checkpoint_dir=tmp_path,
            resume=run.run_id,
        )
    with MemoryStore() as clean:
        three = simulate(
            _dp_config(tmp_path / "clean", 3),
            store=clean,
            checkpoint_dir=tmp_path / "clean",
        )
    two = [r.epsilon for r in three.run.rounds]

    assert resumed.run.rounds[-1].epsilon == pytest.approx(two[2])  # three releases
    assert resumed.run.rounds[-1].epsilon > two[1]
