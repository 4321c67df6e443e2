"""``[round] mode = "async"`` deployed: FedBuff over gRPC with mutual TLS.

Three participant runtimes in threads; site-02 is slow. Its training does not
sleep a fixed time (that would make the test depend on the machine's load): it
waits until the coordinator has published a given number of newer versions, so
its first update is certainly beyond ``max_staleness`` (refused, recorded) and its
second certainly stale by at least one version but within the bound (folded with
the staleness weight ``1/sqrt(1+s)``). The fast sites meanwhile make the versions
on their own: the run completes without ever waiting for the slow site.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord.cli.ledger_setup import deployment_ledger
from accord.cli.main import app
from accord.config import config_from_mapping
from accord.coordinator.asynchronous import REFUSED_EVENT
from accord.coordinator.runner import Coordinator
from accord.ledger.export import export_run
from accord.params import Params
from accord.participant.backoff import Backoff
from accord.participant.data import LocalData
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.context import build_context
from accord.transport import pki
from accord.transport.identity import load_signing_identity

SITES = ("site-00", "site-01", "site-02")
SLOW = "site-02"
VERSIONS = 8
MAX_STALENESS = 3

pytestmark = pytest.mark.timeout(180)


class Versions:
    """Counts the models the coordinator publishes; lets a thread wait for more."""

    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()
        self._cond = threading.Condition()

    def published(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, count: int) -> None:
        with self._cond:
            self._cond.wait_for(
                lambda: self.count >= count or self.done.is_set(), timeout=60
            )


class SlowTask:
    """A task whose n-th training waits for ``waits[n]`` more published versions."""

    def __init__(self, task: Any, versions: Versions, waits: tuple[int, ...]) -> None:
        self._task = task
        self._versions = versions
        self._waits = list(waits)

    def train(self, params: Params, data: Any, config: Any) -> Any:
        more = self._waits.pop(0) if self._waits else 0
        self._versions.wait_for(self._versions.count + more)
        return self._task.train(params, data, config)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


def _config(tmp_path: Path):
    return config_from_mapping(
        {
            "federation": {"name": "grpc-async", "rounds": VERSIONS, "seed": 3},
            "data": {"dataset": "wine", "sites": 3},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "train": {"learning_rate": 0.1, "epochs": 1, "batch_size": 16},
            "evaluation": {"federated": False},
            "profile": {"enabled": False},
            "round": {
                "mode": "async",
                "buffer_size": 2,
                "max_staleness": MAX_STALENESS,
                "deadline_s": 90,
            },
            "store": {"directory": str(tmp_path / "runs")},
        }
    )


def test_a_slow_site_is_folded_stale_or_refused_and_the_run_completes(
    start_coordinator, federation, tmp_path: Path, background
) -> None:
    cfg = _config(tmp_path)
    ledger = deployment_ledger(
        cfg, pki.load_identity(federation.root / "coordinator"), federation.ca
    )
    running = start_coordinator(SITES, versions=True)
    executor = running.executor
    versions = Versions()
    publish = executor.publish

    def counting(params: Params, *, digest: str | None = None) -> None:
        publish(params, digest=digest)
        versions.published()

    executor.publish = counting  # type: ignore[method-assign]
    threads = []
    for name in SITES:
        ctx = build_context(cfg)
        site = ctx.site(name)
        data = LocalData(name, ctx.data.info, site.train, site.holdout)
        # First job: beyond max_staleness; second: one version behind (at least).
        task = (
            SlowTask(ctx.task, versions, (MAX_STALENESS + 2, 1))
            if name == SLOW
            else ctx.task
        )
        folder = federation.root / name
        runtime = ParticipantRuntime(
            lambda n=name: running.client(n),
            task,
            data,
            log=SiteLog(tmp_path / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
            signing=load_signing_identity(folder),
            ca_pem=pki.load_identity(folder).ca_pem,
        )

        def serve(r: ParticipantRuntime = runtime) -> None:
            try:
                r.run()
            finally:
                r.log.close()

        threads.append(background(serve))
    assert executor.wait_for(SITES, 30) == set(SITES)
    store = running.store
    initial = build_context(cfg).task.init_params(cfg.federation.seed)
    try:
        result = Coordinator(cfg, executor=executor, store=store, ledger=ledger).run(
            initial, run_id=running.run_id
        )
    finally:
        versions.done.set()
        executor.close()
    for thread in threads:
        thread.join(10)

    records = store.rounds(result.run_id)
    assert [r.status for r in result.rounds] == ["completed"] * VERSIONS
    assert len(records) == VERSIONS
    assert store.get_run(result.run_id).status == "completed"
    folded = [o for r in records for o in r.outcomes if o.status == "ok"]
    # Every version folds buffer_size updates; all within the bound, weighted.
    assert all(sum(o.status == "ok" for o in r.outcomes) == 2 for r in records)
    for o in folded:
        s = o.metrics["staleness"]
        assert 0 <= s <= MAX_STALENESS
        assert o.metrics["staleness_weight"] == pytest.approx(1 / math.sqrt(1 + s))
    slow = [o for o in folded if o.participant == SLOW]
    assert slow, "the slow site's second update is folded"
    assert slow[0].metrics["staleness"] >= 1
    assert slow[0].metrics["staleness_weight"] < 1
    # Its first update trained from version 0, more than MAX_STALENESS behind.
    refused = [
        e
        for e in store.events(result.run_id)
        if e.kind == REFUSED_EVENT and e.participant == SLOW
    ]
    assert refused and "stale: trained from version 0" in refused[0].detail
    assert "round.max_staleness = 3" in refused[0].detail
    # The fast sites made versions without waiting for it: the slow site has
    # nothing before version MAX_STALENESS + 2, at most one update per version.
    assert len(slow) <= VERSIONS - (MAX_STALENESS + 2) + 1
    # The jobs still out when the last version was made ended before the run.
    assert all(not t.is_alive() for t in threads)
    # The model moved, and each version is recorded with its own model.
    assert result.params.digest() != initial.digest()
    assert len({r.global_digest for r in records}) == VERSIONS
    # The ledger: one entry per version, countersigned by the sites that
    # contributed (receipts of an entry older than the newest are accepted within
    # max_staleness), and the export verifies offline.
    events = {e.kind for e in store.events(result.run_id)}
    assert "receipt_refused" not in events
    receipts = store.receipts(result.run_id)
    assert {r.participant for r in receipts} >= {"site-00", "site-01"}
    export = tmp_path / "ledger.jsonl"
    export.write_text(export_run(result.run_id, store.ledger(result.run_id), receipts))
    verified = CliRunner().invoke(
        app, ["audit", "verify", str(export), "--trust", str(federation.ca), "--json"]
    )
    assert verified.exit_code == 0, verified.output
