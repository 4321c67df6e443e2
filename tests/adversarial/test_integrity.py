"""Model integrity: one enrolled member must not take over the model or the score.

Three honest sites and one attacker ("mallory", enrolled by the same CA, on the
roster) run a federation over real gRPC with mutual TLS. The attacker runs the
ordinary participant runtime with a lying task or a lying connection. Each test
asserts that the lie is refused, that the refusal is recorded (the round's outcome
or run event, the coordinator's record of refused messages, and the reason the
attacker's own site log received on the wire), and that the final global model
is, bit for bit, the model of the same federation without the attacker (the
in-process simulation of the three honest sites).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from accord.cli.main import app
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
max_examples = 1000
"""
BOUND = 1000  # [strategy] max_examples above
#: The coordinator's record of two refusals alike: the first when it is made, then
#: the group's count (2) when the run ends.
ON_ARRIVAL = [(ATTACKER, 1, "out_of_bounds"), (ATTACKER, 2, "out_of_bounds")]


class Claims:
    """A real task whose updates claim ``count`` examples."""

    def __init__(self, task: Any, count: int = 2**63 - 1) -> None:
        self._task = task
        self._count = count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def train(self, params: Params, data: Any, config: Any) -> TrainResult:
        result = self._task.train(params, data, config)
        return replace(result, num_examples=self._count)


def AbsurdCount(task: Any) -> Claims:  # noqa: N802 (used like the other wrappers)
    """A real task whose updates claim ``2**63 - 1`` examples."""
    return Claims(task)


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
    """A site's connection that reports a perfect AUC over ``count`` examples."""

    def __init__(self, client: Any, count: int = 2**63 - 1) -> None:
        self.client = client
        self._count = count

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def submit_eval(self, report: Any, **kw: Any) -> Any:
        lie = replace(
            report,
            metrics={**report.metrics, "auc": 1.0, "accuracy": 1.0},
            num_examples=self._count,
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
) -> tuple[RunResult, MemoryStore, Any]:
    """Run the honest sites and the attacker against one coordinator.

    Returns the result, the run's store and the coordinator (``Running``: its
    SQLite store holds every message refused on arrival).
    """
    federation.enrol(ATTACKER)
    running = start_coordinator((*HONEST, ATTACKER))
    sites = []
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

        sites.append(background(serve))
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
    # The sites log a receipt after the coordinator has the message: read their
    # logs only once they have said goodbye and stopped.
    for thread in sites:
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{thread.name} did not stop"
    return result, store, running


def _site_log(logs: Path, who: str, event: str) -> list[dict[str, Any]]:
    return [e for e in SiteLog.read(logs / f"{who}.jsonl") if e["event"] == event]


def _refused_on_arrival(running: Any, method: str) -> list[tuple[Any, ...]]:
    """(participant, round, kind) of the refusals of ``method`` the store holds."""
    return [
        (e.participant, e.round, e.kind)
        for e in running.store.events(running.run_id)
        if e.detail.startswith(f"{method}:")
    ]


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

    result, store, running = _attacked(
        federation, start_coordinator, background, fed_toml, tmp_path, task=AbsurdCount
    )

    refused = _outcomes(store, result, ATTACKER)
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("9223372036854775807 is above" in (o.reason or "") for o in refused)
    assert all(o.num_examples == 0 for o in refused)
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert result.params.digest() == honest.params.digest()
    # Refused on arrival, on the wire: the attacker got no receipt but the reason.
    told = _site_log(tmp_path, ATTACKER, "refused_by_coordinator")
    assert [(e["round"], e["refusal"]) for e in told] == [
        (1, "out_of_bounds"),
        (2, "out_of_bounds"),
    ]
    assert all("9223372036854775807 is above" in e["reason"] for e in told)
    assert _site_log(tmp_path, ATTACKER, "sent_update") == []
    assert _refused_on_arrival(running, "SubmitUpdate") == ON_ARRIVAL


@pytest.mark.parametrize("claim", [BOUND, BOUND + 1], ids=["at-bound", "past-bound"])
def test_an_update_past_max_examples_is_refused_on_arrival_and_the_site_told(
    federation, start_coordinator, background, fed_toml, tmp_path, claim
):
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        task=lambda task: Claims(task, claim),
    )

    outcomes = _outcomes(store, result, ATTACKER)
    told = _site_log(tmp_path, ATTACKER, "refused_by_coordinator")
    sent = _site_log(tmp_path, ATTACKER, "sent_update")
    if claim == BOUND:  # the bound itself is allowed: a receipt, folded
        assert [o.status for o in outcomes] == ["ok", "ok"]
        assert [o.num_examples for o in outcomes] == [BOUND, BOUND]
        assert told == []
        assert [e["receipt_digest"] for e in sent] == [e["digest"] for e in sent]
        assert len(sent) == 2
        assert _refused_on_arrival(running, "SubmitUpdate") == []
        return
    honest = _without_attacker(load_config(fed_toml))
    reason = f"num_examples {BOUND + 1} is above this federation's bound of {BOUND}"
    assert [o.status for o in outcomes] == ["rejected", "rejected"]
    assert all(reason in (o.reason or "") for o in outcomes)
    assert sent == []
    assert [(e["round"], e["kind"], e["refusal"]) for e in told] == [
        (1, "train", "out_of_bounds"),
        (2, "train", "out_of_bounds"),
    ]
    assert all(reason in e["reason"] and "max_examples" in e["reason"] for e in told)
    assert _refused_on_arrival(running, "SubmitUpdate") == ON_ARRIVAL
    assert result.params.digest() == honest.params.digest()


def test_huge_finite_values_are_refused_and_the_model_is_the_honest_one(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    honest = _without_attacker(load_config(fed_toml))

    result, store, _ = _attacked(
        federation, start_coordinator, background, fed_toml, tmp_path, task=HugeValues
    )

    refused = _outcomes(store, result, ATTACKER)
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("max_update_norm of 1000" in (o.reason or "") for o in refused)
    assert all(np.isfinite(a).all() for a in result.params.values())
    assert result.params.digest() == honest.params.digest()


class Scaled:
    """A real task whose update (trained minus global) is a million times larger."""

    def __init__(self, task: Any) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def train(self, params: Params, data: Any, config: Any) -> TrainResult:
        result = self._task.train(params, data, config)
        scaled = Params(
            {
                n: (params[n] + 1e6 * (a - params[n])).astype(a.dtype)
                for n, a in result.params.items()
            }
        )
        return replace(result, params=scaled)


@pytest.mark.parametrize("attack", [HugeValues, Scaled], ids=["huge", "scaled-1e6"])
def test_with_default_settings_a_huge_update_is_refused_and_the_model_is_honest(
    federation, start_coordinator, background, fed_toml, tmp_path, attack
):
    # No max_update_norm: the default [strategy] max_norm_ratio alone.
    fed_toml.write_text(FED.replace("max_update_norm = 1000.0\n", ""))
    config = load_config(fed_toml)
    assert config.strategy.max_update_norm is None
    honest = _without_attacker(config)

    result, store, _ = _attacked(
        federation, start_coordinator, background, fed_toml, tmp_path, task=attack
    )

    refused = _outcomes(store, result, ATTACKER)
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("median norm" in (o.reason or "") for o in refused)
    assert all("[strategy] max_norm_ratio" in (o.reason or "") for o in refused)
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert result.params.digest() == honest.params.digest()


def test_a_lying_eval_report_is_refused_recorded_and_left_out_of_the_score(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    honest = _without_attacker(load_config(fed_toml))

    # Its updates lie too (and are refused), so the model is the honest sites' and
    # their scores of it are the honest federation's.
    result, store, running = _attacked(
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
    # Refused on arrival: the attacker's site heard why, and the refusal is kept.
    told = [
        (e["round"], e["refusal"])
        for e in _site_log(tmp_path, ATTACKER, "refused_by_coordinator")
        if e["kind"] == "eval"
    ]
    assert told == [(1, "out_of_bounds"), (2, "out_of_bounds")]
    assert _site_log(tmp_path, ATTACKER, "sent_eval") == []
    assert _refused_on_arrival(running, "SubmitEval") == ON_ARRIVAL


@pytest.mark.parametrize("claim", [BOUND, BOUND + 1], ids=["at-bound", "past-bound"])
def test_an_eval_report_past_max_examples_is_refused_on_arrival(
    federation, start_coordinator, background, fed_toml, tmp_path, claim
):
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        client=lambda client: LyingEval(client, claim),
    )

    refused = [e for e in store.events(result.run_id) if e.kind == "eval_refused"]
    told = _site_log(tmp_path, ATTACKER, "refused_by_coordinator")
    if claim == BOUND:  # allowed: a receipt (the AUC of 1.0 is in range)
        assert refused == told == []
        assert len(_site_log(tmp_path, ATTACKER, "sent_eval")) == 2
        return
    assert [(e.round, e.participant) for e in refused] == [(1, ATTACKER), (2, ATTACKER)]
    assert all(f"num_examples {BOUND + 1} is above" in e.detail for e in refused)
    assert [(e["round"], e["kind"], e["refusal"]) for e in told] == [
        (1, "eval", "out_of_bounds"),
        (2, "eval", "out_of_bounds"),
    ]
    assert all(f"num_examples {BOUND + 1} is above" in e["reason"] for e in told)
    assert _refused_on_arrival(running, "SubmitEval") == ON_ARRIVAL


def test_accord_participant_shows_the_reason_its_update_was_refused(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    # An operator's ordinary mistake: the site holds more rows than it declared.
    fed_toml.write_text(FED + "[deployment]\ndeclared_examples = { mallory = 10 }\n")
    federation.enrol(ATTACKER)
    running = start_coordinator((*HONEST, ATTACKER))
    for name in HONEST:
        data = load_local_data(f"sim:{fed_toml}#{name}")
        runtime = ParticipantRuntime(
            lambda n=name: running.client(n),
            build_task(data, None),
            data,
            backoff=Backoff(initial_s=0.05, maximum_s=0.5),
        )
        background(runtime.run)
    config = load_config(fed_toml)
    initial = build_context(config).task.init_params(config.federation.seed)
    store = MemoryStore()
    results: list[RunResult] = []

    def coordinate() -> None:
        everyone = {*HONEST, ATTACKER}
        try:
            assert running.executor.wait_for(tuple(everyone), 60) == everyone
            coordinator = Coordinator(config, executor=running.executor, store=store)
            results.append(coordinator.run(initial))
        finally:
            running.executor.close()  # the goodbye that ends the CLI below

    background(coordinate)
    site_log = tmp_path / "mallory-site-log.jsonl"

    cli = CliRunner().invoke(
        app,
        [
            "participant",
            "--coordinator",
            running.target,
            "--identity",
            str(federation.root / ATTACKER),
            "--data",
            f"sim:{fed_toml}#site-00",
            "--site-log",
            str(site_log),
        ],
    )

    shown = " ".join(cli.output.split())  # rich wraps long lines
    assert cli.exit_code == 0, shown
    reason = "above this federation's bound of 10 ([deployment] declared_examples for"
    assert (
        "the coordinator refused this site's update of round 1 (out_of_bounds)" in shown
    )
    assert reason in shown
    told = [e for e in SiteLog.read(site_log) if e["event"] == "refused_by_coordinator"]
    assert [(e["round"], e["refusal"]) for e in told] == [
        (1, "out_of_bounds"),
        (2, "out_of_bounds"),
    ]
    assert all(reason in e["reason"] for e in told)
    assert [o.status for o in _outcomes(store, results[0], ATTACKER)] == [
        "rejected",
        "rejected",
    ]
