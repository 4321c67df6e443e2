"""Model integrity: one enrolled member must not take over the model or the score.

Three honest sites and one attacker ("mallory", enrolled by the same CA, on the
roster) run a federation over real gRPC with mutual TLS. The attacker runs the
ordinary participant runtime with a lying task or a lying connection. Each test
asserts that the lie is refused, that the refusal is recorded, and that the final
global model is, bit for bit, the model of the same federation without the
attacker (the in-process simulation of the three honest sites).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accord.config import FedConfig, load_config
from accord.coordinator.runner import Coordinator, RunResult
from accord.params import Params
from accord.participant.backoff import Backoff
from accord.participant.data import build_task, load_local_data
from accord.participant.runtime import ParticipantRuntime
from accord.participant.sitelog import SiteLog
from accord.simulation.context import build_context
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore
from accord.task.protocol import TrainResult

pytestmark = pytest.mark.timeout(180)

HONEST = ("site-00", "site-01", "site-02")
ATTACKER = "mallory"

FED = """
[federation]
name = "integrity"
rounds = 2
seed = 8
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
[strategy]
max_update_norm = 1000.0
"""


class AbsurdCount:
    """A real task whose updates claim ``2**63 - 1`` examples."""

    def __init__(self, task: Any) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def train(self, params: Params, data: Any, config: Any) -> TrainResult:
        result = self._task.train(params, data, config)
        return replace(result, num_examples=2**63 - 1)


class HugeValues:
    """A task whose "trained" model is finite but at half its dtype's limit."""

    def __init__(self, task: Any) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def train(self, params: Params, data: Any, config: Any) -> TrainResult:
        huge = Params(
            {n: np.full_like(a, np.finfo(a.dtype).max / 2) for n, a in params.items()}
        )
        return TrainResult(huge, num_examples=len(data))


class LyingEval:
    """A site's connection that reports a perfect AUC over an absurd holdout."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def submit_eval(self, report: Any, **kw: Any) -> Any:
        lie = replace(
            report,
            metrics={**report.metrics, "auc": 1.0, "accuracy": 1.0},
            num_examples=2**63 - 1,
        )
        return self.client.submit_eval(lie, **kw)


@pytest.fixture
def fed_toml(tmp_path: Path) -> Path:
    path = tmp_path / "fed.toml"
    path.write_text(FED)
    return path


def _without_attacker(config: FedConfig) -> RunResult:
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    return Coordinator(
        config, executor=InProcessExecutor(ctx), store=MemoryStore()
    ).run(initial)


def _attacked(
    federation,
    start_coordinator,
    background,
    fed_toml: Path,
    logs: Path,
    *,
    task=None,
    client=None,
) -> tuple[RunResult, MemoryStore]:
    """Run the honest sites and the attacker against one coordinator."""
    federation.enrol(ATTACKER)
    running = start_coordinator((*HONEST, ATTACKER))
    for name in (*HONEST, ATTACKER):
        site = "site-00" if name == ATTACKER else name  # the attacker has real data
        data = load_local_data(f"sim:{fed_toml}#{site}")
        honest_task = build_task(data, None)
        attacking = name == ATTACKER

        def connect(n=name, wrap=client if attacking else None):
            c = running.client(n)
            return wrap(c) if wrap else c

        runtime = ParticipantRuntime(
            connect,
            task(honest_task) if attacking and task else honest_task,
            data,
            log=SiteLog(logs / f"{name}.jsonl"),
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
        )

        def serve(r=runtime):
            try:
                r.run()
            finally:
                r.log.close()

        background(serve)
    everyone = {*HONEST, ATTACKER}
    assert running.executor.wait_for(tuple(everyone), 20) == everyone
    config = load_config(fed_toml)
    initial = build_context(config).task.init_params(config.federation.seed)
    store = MemoryStore()
    try:
        result = Coordinator(config, executor=running.executor, store=store).run(
            initial
        )
    finally:
        running.executor.close()
    return result, store


def _outcomes(store: MemoryStore, result: RunResult, who: str) -> list[Any]:
    return [
        o
        for record in store.rounds(result.run_id)
        for o in record.outcomes
        if o.participant == who
    ]


def test_an_absurd_example_count_is_refused_and_the_model_is_the_honest_one(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    honest = _without_attacker(load_config(fed_toml))

    result, store = _attacked(
        federation, start_coordinator, background, fed_toml, tmp_path, task=AbsurdCount
    )

    refused = _outcomes(store, result, ATTACKER)
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("9223372036854775807 is above" in (o.reason or "") for o in refused)
    assert all(o.num_examples == 0 for o in refused)
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert result.params.digest() == honest.params.digest()


def test_huge_finite_values_are_refused_and_the_model_is_the_honest_one(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    honest = _without_attacker(load_config(fed_toml))

    result, store = _attacked(
        federation, start_coordinator, background, fed_toml, tmp_path, task=HugeValues
    )

    refused = _outcomes(store, result, ATTACKER)
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("max_update_norm of 1000" in (o.reason or "") for o in refused)
    assert all(np.isfinite(a).all() for a in result.params.values())
    assert result.params.digest() == honest.params.digest()


def test_a_lying_eval_report_is_refused_recorded_and_left_out_of_the_score(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    honest = _without_attacker(load_config(fed_toml))

    # Its updates lie too (and are refused), so the model is the honest sites' and
    # their scores of it are the honest federation's.
    result, store = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        task=AbsurdCount,
        client=LyingEval,
    )

    events = [
        (e.round, e.participant, e.kind)
        for e in store.events(result.run_id)
        if e.kind == "eval_refused"
    ]
    assert events == [(1, ATTACKER, "eval_refused"), (2, ATTACKER, "eval_refused")]
    site_auc = {
        m.participant: m.value
        for m in store.rounds(result.run_id)[-1].metrics
        if m.scope == "site" and m.name == "auc"
    }
    assert ATTACKER not in site_auc  # never folded in, not even as a site score
    assert [r.metrics for r in result.rounds] == [r.metrics for r in honest.rounds]
    assert result.rounds[-1].metrics["federated.auc"] < 1.0
    assert result.params.digest() == honest.params.digest()
