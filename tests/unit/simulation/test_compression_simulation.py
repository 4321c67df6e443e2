"""``[compression]`` end to end in a simulation: sent bytes counted, bad ones refused.

A small seeded federation (wine, three sites, numpy softmax regression) runs with
each method in-process and with a worker process: every site's bytes are recorded
per round beside the dense size, the run still learns, and a site whose payload
does not decode is refused with the reason while the round goes on without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import FedConfig, config_from_mapping
from accord.coordinator.transfers import EVENT_KIND, per_round
from accord.simulation.compression import SiteCompressors
from accord.simulation.engine import simulate
from accord.store import SqlStore


def _config(
    tmp_path: Path,
    method: str,
    *,
    workers: int = 0,
    warmup_rounds: int = 0,
    momentum: float = 0.0,
) -> FedConfig:
    return config_from_mapping(
        {
            "federation": {"rounds": 3, "seed": 2},
            "data": {"dataset": "wine", "sites": 3},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "train": {"learning_rate": 0.1, "epochs": 2},
            "evaluation": {"federated": False},
            "profile": {"enabled": False},
            "simulation": {"workers": workers},
            "store": {"directory": str(tmp_path / "runs"), "checkpoints": False},
            "compression": {
                "method": method,
                "fraction": 0.1,
                "warmup_rounds": warmup_rounds,
                "momentum": momentum,
            },
        }
    )


@pytest.mark.parametrize(
    ("method", "workers", "least_ratio"),
    [("q8", 0, 2.0), ("q4", 0, 4.0), ("topk", 0, 3.0), ("q8", 1, 2.0)],
)
def test_bytes_sent_are_recorded_per_site_per_round(
    tmp_path: Path, method: str, workers: int, least_ratio: float
) -> None:
    # Arrange
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    # Act
    run = simulate(_config(tmp_path, method, workers=workers), store=store).run
    events = [e for e in store.events(run.run_id) if e.kind == EVENT_KIND]
    rounds = store.rounds(run.run_id)
    store.close()
    # Assert: one count per site and round, each below the dense size.
    assert {(e.round, e.participant) for e in events} == {
        (r, f"site-{i:02d}") for r in (1, 2, 3) for i in range(3)
    }
    for e in events:
        detail = json.loads(e.detail)
        assert detail["method"] == method
        assert 0 < detail["bytes"] * least_ratio < detail["dense"]
    assert [t.sites for t in per_round(events)] == [3, 3, 3]
    assert all(o.status == "ok" for r in rounds for o in r.outcomes)
    assert rounds[-1].metrics  # it learned enough to be scored
    accuracy = [m.value for m in rounds[-1].metrics if m.name == "accuracy"]
    assert accuracy and accuracy[0] > 0.8


@pytest.mark.parametrize("workers", [0, 1])
def test_topk_warm_up_and_momentum_decode_each_round_with_its_density(
    tmp_path: Path, workers: int
) -> None:
    # Arrange: the softmax regression's weights and biases; the warm-up sends 25 % in
    # round 1, then the 10 % target from round 2 on.
    config = _config(tmp_path, "topk", workers=workers, warmup_rounds=3, momentum=0.5)
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    # Act
    run = simulate(config, store=store).run
    events = [e for e in store.events(run.run_id) if e.kind == EVENT_KIND]
    rounds = store.rounds(run.run_id)
    store.close()
    # Assert: every payload decoded (no site refused), round 1 the largest.
    assert all(o.status == "ok" for r in rounds for o in r.outcomes)
    sent = dict.fromkeys((1, 2, 3), 0)
    for e in events:
        sent[e.round] += json.loads(e.detail)["bytes"]
    assert sent[1] > 1.5 * sent[2] and sent[1] > 1.5 * sent[3]
    accuracy = [m.value for m in rounds[-1].metrics if m.name == "accuracy"]
    assert accuracy and accuracy[0] > 0.8


def test_no_compression_records_no_byte_counts(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    run = simulate(_config(tmp_path, "none"), store=store).run
    kinds = {e.kind for e in store.events(run.run_id)}
    store.close()
    assert EVENT_KIND not in kinds


def test_a_payload_that_does_not_decode_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: site-01 cuts its payload short, in round 2 only.
    real = SiteCompressors.compress

    def cut(self: SiteCompressors, site: str, number: int, update: object) -> bytes:
        payload = real(self, site, number, update)  # type: ignore[arg-type]
        return payload[:-3] if (site, number) == ("site-01", 2) else payload

    monkeypatch.setattr(SiteCompressors, "compress", cut)
    store = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    # Act
    run = simulate(_config(tmp_path, "q8"), store=store).run
    rounds = store.rounds(run.run_id)
    events = store.events(run.run_id)
    store.close()
    # Assert: refused, recorded with its reason, the round completed without it.
    second = {o.participant: o for o in rounds[1].outcomes}
    assert second["site-01"].status == "rejected"
    assert "compressed update" in (second["site-01"].reason or "")
    assert second["site-00"].status == second["site-02"].status == "ok"
    assert rounds[1].status == "completed"
    assert all(o.status == "ok" for o in rounds[2].outcomes)
    counted = {(e.round, e.participant) for e in events if e.kind == EVENT_KIND}
    assert (2, "site-01") not in counted and (3, "site-01") in counted


def test_runs_show_prints_the_bytes_per_round(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = SqlStore(url)
    run = simulate(_config(tmp_path, "q4"), store=store).run
    store.close()

    result = CliRunner().invoke(app, ["runs", "show", run.run_id, "--store", url])

    assert result.exit_code == 0, result.output
    assert "update bytes sent (q4)" in result.output
    assert "x fewer" in result.output
