"""What a site reports beside its update: metrics, receipts and losses that pass
the codec but could stop or corrupt a round (one enrolled participant, mTLS)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from accord.config import load_config
from accord.params import Params
from accord.task.protocol import TrainResult

from .test_integrity import (
    ATTACKER,
    FED,
    _attacked,
    _outcomes,
    _without_attacker,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def fed_toml(tmp_path: Path) -> Path:
    path = tmp_path / "fed.toml"
    path.write_text(FED)
    return path


class Reports:
    """A real task whose updates report ``metrics`` (finite, passes the codec)."""

    def __init__(self, task: Any, metrics: dict[str, float], count: int | None = None):
        self._task = task
        self._metrics = metrics
        self._count = count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def train(self, params: Params, data: Any, config: Any) -> TrainResult:
        result = self._task.train(params, data, config)
        out = replace(result, metrics={**result.metrics, **self._metrics})
        if self._count is not None:
            out = replace(out, num_examples=self._count)
        return out


def test_a_train_metric_with_an_empty_name_does_not_stop_the_run(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    honest = _without_attacker(load_config(fed_toml))
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        task=lambda t: Reports(t, {"": 1.0}),
    )
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    assert result.params.digest() == honest.params.digest()
    outcome = _outcomes(store, result, ATTACKER)
    assert [o.status for o in outcome] == ["rejected", "rejected"]
    assert all("empty name" in (o.reason or "") for o in outcome), outcome


def test_a_huge_finite_train_metric_does_not_record_infinity(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        task=lambda t: Reports(t, {"loss": 1.7e308}),
    )
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    values = {
        (r.number, m.scope, m.name): m.value
        for r in store.rounds(result.run_id)
        for m in r.metrics
    }
    bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
    assert bad == {}


class EvalSays:
    """A site's connection whose eval reports carry extra (finite) metrics."""

    def __init__(self, client: Any, metrics: dict[str, float]) -> None:
        self.client = client
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def submit_eval(self, report: Any, **kw: Any) -> Any:
        lie = replace(report, metrics={**report.metrics, **self._metrics})
        return self.client.submit_eval(lie, **kw)


def test_an_eval_metric_with_an_empty_name_does_not_stop_the_run(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        client=lambda c: EvalSays(c, {"": 0.5}),
    )
    assert [r.status for r in result.rounds] == ["completed", "completed"]


def test_an_in_range_eval_loss_does_not_make_the_federated_loss_infinite(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    # "loss" has the range [0, inf): 1.7e308 passes check_eval_report.
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        client=lambda c: EvalSays(c, {"loss": 1.7e308}),
    )
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    fed = [
        m.value
        for r in store.rounds(result.run_id)
        for m in r.metrics
        if m.scope == "federated" and m.name == "loss"
    ]
    assert fed and all(v is not None and math.isfinite(v) for v in fed), fed


LEDGER_FED = """
[federation]
name = "audit-ledger"
rounds = 3
seed = 5
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
"""


def test_a_receipt_with_a_deeply_nested_payload_does_not_abort_the_run(
    deploy_sites, federation, tmp_path, monkeypatch
):
    import base64
    import json

    from accord.cli.ledger_setup import deployment_ledger
    from accord.ledger.receipt import RECEIPT_TYPE
    from accord.participant.receipts import Receipts
    from accord.simulation.context import build_context
    from accord.transport import pki

    from ..integration.conftest import SITES

    honest_sign = Receipts.sign

    def sign(self, order):  # site-02 lies; the others sign honestly
        text = honest_sign(self, order)
        if not text or self._signing.name != "site-02":
            return text
        bomb = base64.b64encode(b"[" * 200_000).decode()
        env = {
            "payloadType": RECEIPT_TYPE,
            "payload": bomb,
            "signatures": [{"keyid": "x", "sig": base64.b64encode(b"s").decode()}],
        }
        return json.dumps(env)

    monkeypatch.setattr(Receipts, "sign", sign)
    (tmp_path / "fed.toml").write_text(LEDGER_FED)
    config = load_config(tmp_path / "fed.toml")
    setup = deployment_ledger(
        config, pki.load_identity(federation.root / "coordinator"), federation.ca
    )
    deployed = deploy_sites(SITES, config)
    initial = build_context(config).task.init_params(config.federation.seed)
    result, store = deployed.run(initial, ledger=setup, in_store=True)
    assert [r.status for r in result.rounds] == ["completed"] * 3


class UpdateSays:
    """A site's connection whose update headers carry extra (finite) metrics."""

    def __init__(self, client: Any, metrics: dict[str, float]) -> None:
        self.client = client
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def submit_update(self, header: Any, payload: Any, **kw: Any) -> Any:
        lie = replace(header, metrics={**header.metrics, **self._metrics})
        return self.client.submit_update(lie, payload, **kw)


def test_a_huge_finite_initial_loss_under_qfedavg_does_not_abort_the_run(
    federation, start_coordinator, background, fed_toml, tmp_path
):
    fed_toml.write_text(FED + 'aggregation = "qfedavg"\nq = 2.0\n')
    result, store, running = _attacked(
        federation,
        start_coordinator,
        background,
        fed_toml,
        tmp_path,
        client=lambda c: UpdateSays(c, {"initial_loss": 1e200}),
    )
    assert [r.status for r in result.rounds] == ["completed", "completed"]
    outcome = _outcomes(store, result, ATTACKER)
    assert [o.status for o in outcome] == ["rejected", "rejected"]
