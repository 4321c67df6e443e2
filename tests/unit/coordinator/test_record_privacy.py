"""Record-level DP in simulation: declared plans, each site's epsilon, the budget,
simulated sites' own policies and ledgers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.record_privacy import RecordPrivacy
from accord.errors import ConfigError, PrivacyLedgerError
from accord.participant.privacy_ledger import PrivacyLedger
from accord.privacy.accountant import DpAccountant
from accord.privacy.dpsgd import site_mechanism
from accord.privacy.events import dp_sgd_event
from accord.simulation.engine import simulate
from accord.simulation.site_policy import ledger_path
from accord.store import MemoryStore

Z, CLIP, BATCH = 1.2, 1.0, 16


def make_config(
    tmp_path: Path,
    *,
    rounds: int = 3,
    privacy: dict[str, Any] | None = None,
    task: str = "accord.task.numpy_task:softmax_regression",
) -> FedConfig:
    raw: dict[str, Any] = {
        "federation": {"rounds": rounds, "seed": 5},
        "data": {"dataset": "synthetic", "sites": 3, "options": {"rows": 300}},
        "task": {"factory": task},
        "train": {"batch_size": BATCH, "epochs": 1},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "store": {"directory": str(tmp_path / "runs")},
        "privacy": privacy
        if privacy is not None
        else {
            "level": "record",
            "noise_multiplier": Z,
            "clip": CLIP,
            "accountant": "rdp",
            "noise_seed": 4,
        },
    }
    return config_from_mapping(raw, base_dir=tmp_path)


def expected_epsilon(
    rows: int, rounds: int, z: float = Z, kind: Literal["pld", "rdp"] = "rdp"
) -> float:
    q, steps = site_mechanism(rows, batch_size=BATCH, epochs=1)
    accountant = DpAccountant(kind)
    accountant.compose(dp_sgd_event(z, q, steps), rounds)
    return accountant.epsilon(1e-5)


def run_sim(config: FedConfig) -> tuple[Any, Any, list[Any]]:
    with MemoryStore() as store:
        result = simulate(config, store=store)
        (run,) = store.list_runs()
        return result, run, list(store.rounds(run.run_id))


def test_each_site_epsilon_per_round_equals_the_accountant(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    from accord.simulation.context import build_context

    rows = {s.name: len(s.train) for s in build_context(config).data.sites}

    _, run, rounds = run_sim(config)

    assert [r.status for r in rounds] == ["completed"] * 3
    for number, record in enumerate(rounds, start=1):
        by_site = {p.participant: p for p in record.privacy}
        assert set(by_site) == set(rows)
        for site, spent in by_site.items():
            q, steps = site_mechanism(rows[site], batch_size=BATCH, epochs=1)
            assert spent.level == "record"
            assert spent.sampling_rate == pytest.approx(q)
            assert spent.details["steps"] == steps
            assert spent.noise_multiplier == Z and spent.clip == CLIP
            assert spent.epsilon == pytest.approx(
                expected_epsilon(rows[site], number), rel=1e-9
            )
    assert run.summary["privacy"]["level"] == "record"
    assert run.summary["privacy"]["sites"] == pytest.approx(
        {s: expected_epsilon(n, 3) for s, n in rows.items()}
    )


def test_the_budget_stops_before_a_round_that_would_take_a_site_past_it(
    tmp_path: Path,
) -> None:
    probe = make_config(tmp_path)
    from accord.simulation.context import build_context

    smallest = min(len(s.train) for s in build_context(probe).data.sites)
    # Between the worst site's epsilon after 2 and after 3 rounds.
    budget = (expected_epsilon(smallest, 2) + expected_epsilon(smallest, 3)) / 2
    config = make_config(
        tmp_path,
        rounds=5,
        privacy={
            "level": "record",
            "noise_multiplier": Z,
            "clip": CLIP,
            "accountant": "rdp",
            "noise_seed": 4,
            "budget_epsilon": budget,
        },
    )

    result, run, rounds = run_sim(config)

    assert [r.number for r in rounds] == [1, 2]
    assert run.status == "completed"
    assert run.summary["reason"].startswith("budget exhausted before round 3: site ")
    assert max(p.epsilon for p in rounds[-1].privacy) <= budget
    assert result.run.stopped == run.summary["reason"]


def test_target_epsilon_is_met_by_the_worst_site(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        privacy={
            "level": "record",
            "target_epsilon": 2.0,
            "clip": CLIP,
            "accountant": "rdp",
        },
    )
    rows = {"a": 50, "b": 200}
    privacy = RecordPrivacy.of(config, rows=rows)
    assert privacy is not None
    z = privacy.noise_multiplier
    worst = max(expected_epsilon(n, 3, z) for n in rows.values())
    assert worst == pytest.approx(2.0, rel=1e-3) and worst <= 2.0
    assert privacy.plan("run", "a").sampling_rate == BATCH / 50


def test_a_deployment_without_declared_rows_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with pytest.raises(ConfigError, match="declared_examples"):
        RecordPrivacy.of(config, rows=None)


def test_an_sklearn_task_is_refused_at_run_start_naming_it(tmp_path: Path) -> None:
    config = make_config(tmp_path, task="accord.task.sklearn:sgd_classifier")
    with MemoryStore() as store:
        with pytest.raises(ConfigError, match=r"sgd_classifier.*numpy_task"):
            simulate(config, store=store)
        assert store.list_runs() == []


def test_record_level_needs_a_clip(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs clip"):
        make_config(tmp_path, privacy={"level": "record", "noise_multiplier": 1.0})


def _policy_config(tmp_path: Path, sites: dict[str, Any], **privacy: Any) -> FedConfig:
    return make_config(
        tmp_path,
        rounds=2,
        privacy={**privacy, "sites": sites},
    )


def test_a_site_requiring_dp_refuses_a_plain_task_and_the_round_goes_on(
    tmp_path: Path,
) -> None:
    config = _policy_config(tmp_path, {"site-00": {"require_dp": "record"}})

    _, run, rounds = run_sim(config)

    assert [r.status for r in rounds] == ["completed", "completed"]
    for record in rounds:
        outcomes = {o.participant: o for o in record.outcomes}
        assert outcomes["site-00"].status == "rejected"
        assert "--require-dp record" in (outcomes["site-00"].reason or "")
        assert all(o.status == "ok" for p, o in outcomes.items() if p != "site-00")


def test_a_site_refuses_a_round_over_its_max_epsilon_and_keeps_a_ledger(
    tmp_path: Path,
) -> None:
    probe = make_config(tmp_path)
    from accord.simulation.context import build_context

    rows = len(build_context(probe).data.sites[0].train)
    # site-00 allows one round of this run, not two (its ledger accounts by PLD).
    limit = (
        expected_epsilon(rows, 1, kind="pld") + expected_epsilon(rows, 2, kind="pld")
    ) / 2
    privacy = {
        "level": "record",
        "noise_multiplier": Z,
        "clip": CLIP,
        "accountant": "pld",
    }
    config = _policy_config(tmp_path, {"site-00": {"max_epsilon": limit}}, **privacy)

    _, run, rounds = run_sim(config)

    first = {o.participant: o for o in rounds[0].outcomes}
    second = {o.participant: o for o in rounds[1].outcomes}
    assert first["site-00"].status == "ok"
    assert second["site-00"].status == "rejected"
    assert "--max-epsilon" in (second["site-00"].reason or "")
    assert rounds[1].status == "completed"  # the others carried the round
    # The coordinator counted site-0 once; the others twice.
    eps = {p.participant: p.epsilon for p in rounds[1].privacy}
    assert "site-00" not in eps and len(eps) == 2
    ledger = json.loads(ledger_path(config, "site-00").read_text())
    assert ledger["schema"] == "accord.privacy-ledger/1"
    assert list(ledger["runs"]) == [run.run_id]
    assert list(ledger["runs"][run.run_id]["rounds"]) == ["1"]
    assert ledger["total_epsilon"] <= limit


def test_a_sites_ledger_carries_epsilon_over_two_runs_and_refuses_the_third(
    tmp_path: Path,
) -> None:
    # Arrange: site-00 allows two rounds of this federation in all, not three.
    probe = make_config(tmp_path)
    from accord.simulation.context import build_context

    rows = len(build_context(probe).data.sites[0].train)
    # More noise than the other tests: PLD accounts it faster.
    two, three = (expected_epsilon(rows, n, z=3.0, kind="pld") for n in (2, 3))
    privacy = {
        "level": "record",
        "noise_multiplier": 3.0,
        "clip": CLIP,
        "accountant": "rdp",  # the coordinator's; a site's ledger keeps PLD
        "sites": {"site-00": {"max_epsilon": (two + three) / 2}},
    }
    config = make_config(tmp_path, rounds=1, privacy=privacy)

    # Act: three runs of one round, one after the other, as one site sees them.
    runs = [run_sim(config) for _ in range(3)]

    # Assert
    site = [
        {o.participant: o for o in rounds[0].outcomes}["site-00"] for *_, rounds in runs
    ]
    assert [o.status for o in site] == ["ok", "ok", "rejected"]
    assert "--max-epsilon" in (site[2].reason or "")
    assert [rounds[0].status for *_, rounds in runs] == ["completed"] * 3
    ledger = json.loads(ledger_path(config, "site-00").read_text())
    assert set(ledger["runs"]) == {run.run_id for _, run, _ in runs[:2]}
    assert ledger["total_epsilon"] == pytest.approx(two, rel=1e-6)


def test_a_corrupt_simulated_ledger_stops_the_run_at_start(tmp_path: Path) -> None:
    config = _policy_config(tmp_path, {"site-01": {"max_epsilon": 5.0}})
    path = ledger_path(config, "site-01")
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": "accord.privacy-ledger/1", "runs": [')
    with MemoryStore() as store, pytest.raises(PrivacyLedgerError, match="unusable"):
        simulate(config, store=store)
    assert path.read_text().endswith("[")  # never reset


def test_unknown_policy_sites_are_refused(tmp_path: Path) -> None:
    config = _policy_config(tmp_path, {"site-9": {"require_dp": "record"}})
    with MemoryStore() as store, pytest.raises(ConfigError, match="site-9"):
        simulate(config, store=store)


class _Crash(BaseException):
    """The coordinator's process ending there (an observer's own Exception would
    only detach it: :mod:`accord.coordinator.observer`)."""


class _CrashAfter:
    """Stops the coordinator once ``site`` finished round ``number``."""

    def __init__(self, number: int, site: str) -> None:
        self.number, self.site = number, site

    def round_started(self, number: int, selected: Any) -> None:
        pass

    def participant_finished(self, number: int, outcome: Any) -> None:
        if (number, outcome.participant) == (self.number, self.site):
            raise _Crash

    def round_finished(self, summary: Any) -> None:
        pass


def test_resume_keeps_the_ledger_consistent_a_round_counted_once(
    tmp_path: Path,
) -> None:
    privacy = {
        "level": "record",
        "noise_multiplier": Z,
        "clip": CLIP,
        "accountant": "pld",
    }
    config = make_config(
        tmp_path,
        rounds=3,
        privacy={**privacy, "sites": {"site-00": {"max_epsilon": 100.0}}},
    )
    with MemoryStore() as store:
        # The coordinator stops in round 2, after site-00 trained it (and its
        # ledger counted it) but before the round was recorded.
        with pytest.raises(_Crash):
            simulate(
                config,
                store=store,
                observer=_CrashAfter(2, "site-00"),
                checkpoint_dir=tmp_path / "ckpt",
            )
        (run,) = store.list_runs()
        assert [r.number for r in store.rounds(run.run_id)] == [1]

        simulate(
            config, store=store, resume=run.run_id, checkpoint_dir=tmp_path / "ckpt"
        )
        rounds = store.rounds(run.run_id)

    # Round 2 ran again without site-00 (it had spent it); round 3 with it.
    assert [r.number for r in rounds] == [1, 2, 3]
    again = {o.participant: o for o in rounds[1].outcomes}["site-00"]
    assert again.status == "rejected" and "already trained" in (again.reason or "")
    ledger = PrivacyLedger(ledger_path(config, "site-00"))
    assert sorted(ledger.runs[run.run_id]) == [1, 2, 3]  # each round once
    # Round 2's first attempt reached the coordinator before it stopped: its
    # privacy_dispatched event counts it on resume, so the coordinator's figure
    # is the ledger's, the authority's: every round trained (1, 2, 3).
    recorded = {p.participant: p.epsilon for p in rounds[2].privacy}
    q, steps = site_mechanism(
        len(_site_rows(config)["site-00"]), batch_size=BATCH, epochs=1
    )
    assert recorded["site-00"] == pytest.approx(_pld(q, steps, 3), rel=1e-9)
    assert ledger.epsilon(run.run_id) == pytest.approx(_pld(q, steps, 3), rel=1e-9)


def _site_rows(config: FedConfig) -> dict[str, Any]:
    from accord.simulation.context import build_context

    return {s.name: s.train for s in build_context(config).data.sites}


def _pld(q: float, steps: int, rounds: int) -> float:
    accountant = DpAccountant("pld")
    accountant.compose(dp_sgd_event(Z, q, steps), rounds)
    return accountant.epsilon(1e-5)


def _event(number: int, detail: str) -> Any:
    from datetime import UTC, datetime

    from accord.coordinator.record_privacy import DISPATCHED_EVENT
    from accord.records import RunEvent

    return RunEvent("run", datetime.now(UTC), number, None, DISPATCHED_EVENT, detail)


def test_restore_counts_every_attempt_the_records_do_not(tmp_path: Path, caplog):
    config = make_config(tmp_path, rounds=5)
    rows = {"site-00": 100, "site-01": 120, "site-02": 90}
    whole = RecordPrivacy.of(config, rows=rows)
    assert whole is not None
    recorded = []
    for number in (1, 2):  # two rounds recorded, every site in each
        record = whole.dispatched(number, list(rows))
        assert json.loads(record.detail) == {"sites": sorted(rows)}
        spent = whole.settle([_ok(site) for site in rows])
        recorded.append(_record(number, spent))

    resumed = RecordPrivacy.of(config, rows=rows)
    assert resumed is not None
    events = [
        _event(1, json.dumps({"sites": sorted(rows)})),  # recorded: nothing more
        _event(2, json.dumps({"sites": ["site-00"]})),  # a lost first attempt
        _event(2, json.dumps({"sites": sorted(rows)})),  # the attempt recorded
        _event(3, json.dumps({"sites": ["site-00", "site-01"]})),  # never recorded
        _event(3, "{not json"),  # unreadable: logged, counts for no one
        _event(4, json.dumps({"sites": ["nobody"]})),  # not a site of the run
    ]
    resumed.restore(recorded, events)

    def rounds_of(site: str, n: int) -> float:
        q, steps = site_mechanism(rows[site], batch_size=BATCH, epochs=1)
        accountant = DpAccountant("rdp")
        accountant.compose(dp_sgd_event(Z, q, steps), n)
        return accountant.epsilon(1e-5)

    epsilons = resumed.epsilons()
    assert epsilons["site-00"] == pytest.approx(rounds_of("site-00", 4), rel=1e-9)
    assert epsilons["site-01"] == pytest.approx(rounds_of("site-01", 3), rel=1e-9)
    assert epsilons["site-02"] == pytest.approx(rounds_of("site-02", 2), rel=1e-9)
    assert "privacy_dispatched event is unreadable" in caplog.text


def _ok(site: str) -> Any:
    from accord.records import ParticipantOutcome

    return ParticipantOutcome(site, "ok", None, 10, None, 0.1)


def _record(number: int, spent: Any) -> Any:
    from datetime import UTC, datetime

    from accord.records import RoundRecord

    now = datetime.now(UTC)
    return RoundRecord(
        "run", number, now, now, "completed", "0" * 64, (), (), (), None, spent
    )
