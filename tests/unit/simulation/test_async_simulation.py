"""``[round] mode = "async"`` end to end in a small simulation (wine, numpy task).

Versions are recorded like rounds, with each contribution's staleness; updates
older than ``max_staleness`` are refused and recorded; the virtual clock orders
updates, so worker processes give the in-process model; a stopped async run
resumes after its last version; the deployed coordinator refuses async mode with
federated evaluation (a site is always training, so an evaluation would wait).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import FedConfig, config_from_mapping
from accord.coordinator.asynchronous import REFUSED_EVENT, Schedule, sync_round_time
from accord.records import ParticipantOutcome, RoundRecord
from accord.simulation.engine import simulate
from accord.store import SqlStore


def _config(tmp_path: Path, **round_: Any) -> FedConfig:
    workers = round_.pop("workers", 0)
    rounds = round_.pop("rounds", 6)
    slowdown = round_.pop("slowdown", {"site-03": 6.0})
    return config_from_mapping(
        {
            "federation": {"rounds": rounds, "seed": 4},
            "data": {"dataset": "wine", "sites": 4},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "train": {"learning_rate": 0.1, "epochs": 2, "batch_size": 16},
            "evaluation": {"federated": False},
            "profile": {"enabled": False},
            "simulation": {"workers": workers, "slowdown": slowdown},
            "store": {"directory": str(tmp_path / "runs")},
            "round": {"mode": "async", "buffer_size": 2, **round_},
        }
    )


def _run(tmp_path: Path, cfg: FedConfig, name: str = "r") -> list[RoundRecord]:
    store = SqlStore(f"sqlite:///{tmp_path / name}.db")
    try:
        run = simulate(cfg, store=store, checkpoint_dir=tmp_path / name).run
        return list(store.rounds(run.run_id))
    finally:
        store.close()


def _metric(record: RoundRecord, name: str, scope: str = "train") -> float:
    return next(
        m.value
        for m in record.metrics
        if m.scope == scope and m.name == name and m.participant is None
    )


def test_schedule_orders_by_finish_time_then_dispatch() -> None:
    times = {"a": 1.0, "b": 3.0, "c": 1.0}
    schedule = Schedule(times.__getitem__)
    for site in ("b", "a", "c"):
        schedule.dispatch(site, 0, 0.0)
    schedule.dispatch("a", 1, 1.5)  # finishes at 2.5
    order = [(j.site, j.finish) for j in (schedule.next() for _ in range(4))]
    assert order == [("a", 1.0), ("c", 1.0), ("a", 2.5), ("b", 3.0)]


def test_sync_round_time_waits_for_the_slowest_or_the_close_fraction() -> None:
    times = {"a": 2.0, "b": 9.0, "c": 4.0, "d": 3.0}.__getitem__
    assert sync_round_time(("a", "b", "c", "d"), times, 1.0) == 9.0
    assert sync_round_time(("a", "b", "c", "d"), times, 0.5) == 3.0  # 2nd fastest
    assert sync_round_time(("a", "b", "c", "d"), times, 0.6) == 4.0  # ceil(2.4) = 3


def test_versions_are_recorded_with_staleness_and_the_virtual_clock(
    tmp_path: Path,
) -> None:
    rounds = _run(tmp_path, _config(tmp_path))
    assert [r.number for r in rounds] == [1, 2, 3, 4, 5, 6]
    assert all(r.status == "completed" and r.checkpoint for r in rounds)
    for r in rounds:
        ok = [o for o in r.outcomes if o.status == "ok"]
        assert len(ok) == 2  # buffer_size valid updates per version
        assert set(r.selected) == {o.participant for o in r.outcomes}
        for o in ok:
            s = o.metrics["staleness"]
            assert 0 <= s <= 10 and o.metrics["base_version"] == r.number - 1 - s
            assert o.metrics["staleness_weight"] == pytest.approx((1 + s) ** -0.5)
    clock = [_metric(r, "virtual_time") for r in rounds]
    assert clock == sorted(clock) and clock[0] > 0
    # The slow site (6 times slower) is the stalest contributor when it comes.
    slow = [o for r in rounds for o in r.outcomes if o.participant == "site-03"]
    fast = [o for r in rounds for o in r.outcomes if o.participant != "site-03"]
    assert len(slow) < len(fast) / 3
    assert rounds[-1].metrics and _metric(rounds[-1], "accuracy", "central") > 0.6


def test_updates_beyond_max_staleness_are_refused_and_recorded(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, max_staleness=0, rounds=8)
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        run = simulate(cfg, store=store).run
        rounds = store.rounds(run.run_id)
        events = [e for e in store.events(run.run_id) if e.kind == REFUSED_EVENT]
    finally:
        store.close()
    assert len(rounds) == 8
    refused = [o for r in rounds for o in r.outcomes if o.status == "rejected"]
    assert refused, "stale updates must be refused"
    assert all(o.reason.startswith("stale:") for o in refused)
    assert all(o.metrics["staleness"] > 0 and o.num_examples == 0 for o in refused)
    assert len(events) >= len(refused)
    assert all(e.detail.startswith("rejected: stale:") for e in events)
    assert any(e.participant == "site-03" for e in events)  # the slow site
    ok = [o for r in rounds for o in r.outcomes if o.status == "ok"]
    assert len(ok) == 8 * 2 and all(o.metrics["staleness"] == 0 for o in ok)


def test_worker_processes_give_the_in_process_model(tmp_path: Path) -> None:
    inproc = _run(tmp_path, _config(tmp_path, rounds=4), "a")
    workers = _run(tmp_path, _config(tmp_path, rounds=4, workers=2), "b")
    assert [r.global_digest for r in inproc] == [r.global_digest for r in workers]
    assert [r.selected for r in inproc] == [r.selected for r in workers]


def test_uniform_weighting_changes_the_model(tmp_path: Path) -> None:
    def weighted(weighting: str) -> FedConfig:
        # No weight cap: with two updates a buffer, a 0.5 cap evens them anyway.
        cfg = _config(tmp_path, rounds=3)
        strategy = {"weighting": weighting, "max_weight_share": 1.0}
        return cfg.model_copy(
            update={"strategy": cfg.strategy.model_copy(update=strategy)}
        )

    by_examples = _run(tmp_path, weighted("examples"), "a")
    uniform = _run(tmp_path, weighted("uniform"), "b")
    assert by_examples[-1].global_digest != uniform[-1].global_digest


class _StopAtVersion3:
    def round_started(self, number: int, selected: Sequence[str]) -> None:
        if number == 3:
            raise KeyboardInterrupt

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: object) -> None:
        pass


def test_a_stopped_async_run_resumes_after_its_last_version(tmp_path: Path) -> None:
    cfg = _config(tmp_path, rounds=5)
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(KeyboardInterrupt):
            simulate(
                cfg,
                store=store,
                checkpoint_dir=tmp_path / "ck",
                observer=_StopAtVersion3(),
            )
        (info,) = store.list_runs()
        assert [r.number for r in store.rounds(info.run_id)] == [1, 2]
        before = _metric(store.rounds(info.run_id)[-1], "virtual_time")
        simulate(cfg, store=store, checkpoint_dir=tmp_path / "ck", resume=info.run_id)
        rounds = store.rounds(info.run_id)
        (done,) = store.list_runs()
    finally:
        store.close()
    assert done.status == "completed"
    assert [r.number for r in rounds] == [1, 2, 3, 4, 5]
    assert _metric(rounds[2], "virtual_time") > before  # the clock goes on


def test_a_synchronous_run_with_slowdown_is_timed_by_its_slowest_site(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, rounds=2)
    cfg = cfg.model_copy(
        update={"round": cfg.round.model_copy(update={"mode": "sync"})}
    )
    rounds = _run(tmp_path, cfg)
    # site-03: 2 epochs x ceil(rows / 16) steps x 6; the fast sites take a sixth.
    per_round = _metric(rounds[0], "virtual_time")
    assert per_round % 12 == 0 and per_round >= 12
    assert _metric(rounds[1], "virtual_time") == 2 * per_round


def test_the_deployed_coordinator_refuses_async_with_federated_evaluation(
    tmp_path: Path,
) -> None:
    config = tmp_path / "fed.toml"
    config.write_text(
        '[data]\ndataset = "wine"\nsites = 3\n'
        '[task]\nfactory = "accord.task.numpy_task:softmax_regression"\n'
        '[round]\nmode = "async"\nbuffer_size = 2\n'
    )
    result = CliRunner().invoke(
        app, ["coordinator", str(config), "--listen", "127.0.0.1:0", "--insecure"]
    )
    assert result.exit_code == 2
    assert "evaluation.federated" in result.output and "async" in result.output


def test_close_fraction_on_the_virtual_clock_cuts_the_slowest_site(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, rounds=2)
    cfg = cfg.model_copy(
        update={
            "round": cfg.round.model_copy(
                update={"mode": "sync", "close_fraction": 0.75}
            )
        }
    )
    rounds = _run(tmp_path, cfg)
    for r in rounds:
        late = [o for o in r.outcomes if o.status == "timeout"]
        assert [o.participant for o in late] == ["site-03"]  # 6 times slower
        assert late[0].reason.startswith("late: on the simulation's virtual clock")
        assert sum(o.status == "ok" for o in r.outcomes) == 3
        assert r.selected == ("site-00", "site-01", "site-02", "site-03")
    # The round lasts until the third fastest site is done: a fast site's time.
    assert _metric(rounds[0], "virtual_time") < 12 * 6


def test_compressed_async_updates_record_their_bytes_per_version(
    tmp_path: Path,
) -> None:
    from accord.coordinator.transfers import EVENT_KIND

    cfg = _config(tmp_path, rounds=3)
    cfg = cfg.model_copy(
        update={"compression": cfg.compression.model_copy(update={"method": "q8"})}
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        run = simulate(cfg, store=store).run
        rounds = store.rounds(run.run_id)
        events = [e for e in store.events(run.run_id) if e.kind == EVENT_KIND]
    finally:
        store.close()
    folded = {(r.number, o.participant) for r in rounds for o in r.outcomes}
    assert {(e.round, e.participant) for e in events} == folded
