"""Attacks and detection end to end in small, fast simulations (numpy task, digits).

The acceptance check of issue 10 in miniature: scaling and ALIE attackers are
flagged in the *stored* scores, a quarantined site's updates are recorded as
``quarantined`` and not aggregated, a backdoor's success is recorded with the
round's metrics, and the same seed gives the same model in-process and with
worker processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.store import MemoryStore, SqlStore


def _config(**sections: Any) -> FedConfig:
    raw: dict[str, Any] = {
        "federation": {"rounds": 3, "seed": 1},
        "data": {
            "dataset": "digits",
            "partition": "dirichlet",
            "alpha": 0.5,
            "sites": 10,
            "min_site_size": 20,
        },
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        "train": {"learning_rate": 0.1},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
    }
    raw.update(sections)
    return config_from_mapping(raw)


def _malicious(cfg: FedConfig) -> set[str]:
    return set(build_context(cfg, poison=True).malicious)


def test_scaling_attackers_are_flagged_then_quarantined_in_the_store(
    tmp_path: Path,
) -> None:
    cfg = _config(
        attack={"kind": "scaling", "count": 2},
        robustness={"max_norm_z": 3.0, "quarantine_after": 1},
    )
    bad = _malicious(cfg)
    store = SqlStore(f"sqlite:///{tmp_path / 'a.db'}")

    run = simulate(cfg, store=store).run
    rounds = store.rounds(run.run_id)
    events = store.events(run.run_id)
    store.close()

    assert len(bad) == 2
    first = {s.participant for s in rounds[0].scores if s.flagged}
    assert first == bad
    assert all(s.norm_z > 3 for s in rounds[0].scores if s.participant in bad)
    for r in rounds[1:]:
        status = {o.participant: o.status for o in r.outcomes}
        assert {p for p, s in status.items() if s == "quarantined"} == bad
        assert {s.participant for s in r.scores if s.excluded} == bad
    assert {e.participant for e in events if e.kind == "quarantined"} == bad
    assert all(r.status == "completed" for r in rounds)


def test_alie_attackers_are_flagged_as_copies_of_each_other() -> None:
    cfg = _config(
        attack={"kind": "alie", "count": 2},
        robustness={"min_nearest_ratio": 0.1},
    )
    bad = _malicious(cfg)
    store = MemoryStore()

    run = simulate(cfg, store=store).run

    for r in store.rounds(run.run_id):
        assert {s.participant for s in r.scores if s.flagged} == bad
        assert all(o.status == "ok" for o in r.outcomes)  # no quarantine asked


def test_malicious_sites_claim_the_attacks_count_and_the_bound_still_holds() -> None:
    # Arrange: label flippers that claim 600 examples (the data has ~1,200 rows)
    claim = {"kind": "label_flip", "count": 2, "examples": 600}
    cfg = _config(attack=claim)
    bad = _malicious(cfg)
    honest_run = simulate(
        _config(attack={**claim, "examples": None}),
        store=(honest_store := MemoryStore()),
    ).run
    store = MemoryStore()

    # Act
    run = simulate(cfg, store=store).run
    bounded = _config(attack=claim, strategy={"max_examples": 599})
    refused_store = MemoryStore()
    refused = simulate(bounded, store=refused_store).run

    # Assert: only the attackers' counts change, and the model with them
    honest = {
        o.participant: o.num_examples
        for o in honest_store.rounds(honest_run.run_id)[0].outcomes
    }
    for r in store.rounds(run.run_id):
        got = {o.participant: o.num_examples for o in r.outcomes}
        assert {p for p, n in got.items() if n == 600} == bad
        assert all(got[p] == honest[p] for p in got if p not in bad)
        assert all(honest[p] < 600 for p in bad)
    assert run.params.digest() != honest_run.params.digest()
    # A claim above max_examples is refused with the reason, as any site's is
    for r in refused_store.rounds(refused.run_id):
        status = {o.participant: (o.status, o.reason or "") for o in r.outcomes}
        assert {p for p, (st, _) in status.items() if st != "ok"} == bad
        assert all("above this federation's bound of 599" in status[p][1] for p in bad)


def test_without_robustness_nothing_is_scored() -> None:
    store = MemoryStore()

    run = simulate(_config(attack={"kind": "ipm", "count": 2}), store=store).run

    assert all(r.scores == () for r in store.rounds(run.run_id))


def test_a_backdoor_records_its_success_rate_with_the_round() -> None:
    cfg = _config(
        attack={
            "kind": "scaling",
            "count": 2,
            "scale": 5.0,
            "backdoor": {"target": 0, "fraction": 0.5},
        }
    )
    store = MemoryStore()

    run = simulate(cfg, store=store).run

    rates = [
        m.value
        for _, m in store.metrics(run.run_id)
        if m.scope == "central" and m.name == "backdoor_success"
    ]
    assert len(rates) == 3
    assert all(0.0 <= r <= 1.0 for r in rates)


@pytest.mark.parametrize("kind", ["min_sum", "sign_flip"])
def test_an_attacked_run_is_the_same_in_process_and_in_workers(kind: str) -> None:
    def digest(workers: int) -> str:
        cfg = _config(
            attack={"kind": kind, "count": 2},
            federation={"rounds": 2, "seed": 4},
            simulation={"workers": workers},
        )
        return simulate(cfg, store=MemoryStore()).run.params.digest()

    assert digest(0) == digest(2)


class _StopAfter:
    """Interrupts the run like Ctrl-C once round ``number`` is recorded."""

    def __init__(self, number: int) -> None:
        self.number = number

    def round_started(self, number: int, selected: object) -> None:
        pass

    def participant_finished(self, number: int, outcome: object) -> None:
        pass

    def round_finished(self, summary: Any) -> None:
        if summary.number == self.number:
            raise KeyboardInterrupt


def test_a_resumed_run_keeps_its_quarantine_from_the_stored_scores(
    tmp_path: Path,
) -> None:
    cfg = _config(
        federation={"rounds": 4, "seed": 1},
        attack={"kind": "scaling", "count": 2},
        robustness={"max_norm_z": 3.0, "quarantine_after": 2},
    )
    bad = _malicious(cfg)
    whole = MemoryStore()
    expected = simulate(cfg, store=whole).run
    store = MemoryStore()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        simulate(cfg, store=store, checkpoint_dir=ckpt, observer=_StopAfter(2))  # type: ignore[arg-type]
    (run,) = store.list_runs()

    resumed = simulate(cfg, store=store, checkpoint_dir=ckpt, resume=run.run_id).run

    later = store.rounds(run.run_id)[2:]
    assert [r.number for r in later] == [3, 4]
    for r in later:
        assert {o.participant for o in r.outcomes if o.status == "quarantined"} == bad
    assert resumed.params.digest() == expected.params.digest()
