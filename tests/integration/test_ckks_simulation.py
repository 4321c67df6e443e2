"""CKKS rounds in a simulation: the coordinator adds ciphertexts it cannot read."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tenseal")

from accord.config import config_from_mapping
from accord.coordinator.executor import JobFailed, SecAggReply
from accord.coordinator.runner import Coordinator
from accord.errors import ConfigError
from accord.secagg.ckks_keys import KeyHolder
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore


def make_config(tmp_path, mode="ckks", **extra):
    raw = {
        "federation": {"rounds": 2, "seed": 3},
        "data": {"dataset": "digits", "partition": "iid", "sites": 4},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        # No test waits for a deadline: long ones, so that a slow machine never
        # turns an honest site's late answer into a timeout.
        "round": {"deadline_s": 120, "quorum": 0.5},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": mode, "stage_timeout_s": 60.0},
    }
    for section, values in extra.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_mapping(raw, base_dir=tmp_path)


def max_diff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.parametrize("workers", [0, 2])
def test_ckks_run_gives_the_plain_mean(tmp_path, workers):
    plain = simulate(make_config(tmp_path, "off"), store=MemoryStore()).run
    store = MemoryStore()
    ckks = simulate(
        make_config(tmp_path, simulation={"workers": workers}), store=store
    ).run
    assert [r.status for r in ckks.rounds] == ["completed", "completed"]
    assert max_diff(ckks.params, plain.params) < 1e-5
    for record in store.rounds(ckks.run_id):
        for outcome in record.outcomes:
            assert outcome.status == "ok"
            assert outcome.num_examples == 0 and outcome.metrics == {}


class Tampering(InProcessExecutor):
    """Corrupts site-01's upload and keeps site-00 from answering a decryption."""

    def next_event(self, timeout):
        event = super().next_event(timeout)
        if not isinstance(event, SecAggReply):
            return event
        if (event.participant, event.stage) == ("site-01", "ckks_upload"):
            return SecAggReply("site-01", event.round, event.stage, b"junk")
        if (event.participant, event.stage) == ("site-00", "ckks_decrypt"):
            return JobFailed("site-00", event.round, "secagg", "failed", "gone")
        return event


def run_with(executor_type, config, *, public=True):
    ctx = build_context(config)
    holder = KeyHolder.create()
    executor = executor_type(ctx, ckks_secret=holder.secret_context)
    store = MemoryStore()
    try:
        result = Coordinator(
            config,
            executor=executor,
            store=store,
            ckks_public_context=holder.public_context if public else None,
        ).run(ctx.task.init_params(config.federation.seed))
    finally:
        executor.close()
    return result, store, ctx


def test_a_bad_upload_is_refused_and_another_site_decrypts(tmp_path):
    config = make_config(tmp_path, federation={"rounds": 1})
    result, store, _ = run_with(Tampering, config)
    (record,) = store.rounds(result.run_id)
    assert record.status == "completed"
    outcomes = {o.participant: o for o in record.outcomes}
    assert outcomes["site-01"].status == "rejected"
    assert "ckks_upload" in outcomes["site-01"].reason
    assert {p for p, o in outcomes.items() if o.status == "ok"} == {
        "site-00",
        "site-02",
        "site-03",
    }


def test_too_few_uploads_leave_the_model_unchanged(tmp_path):
    config = make_config(tmp_path, federation={"rounds": 1}, round={"quorum": 1.0})
    result, store, ctx = run_with(Tampering, config)
    (record,) = store.rounds(result.run_id)
    assert record.status == "failed"
    assert "3 encrypted updates, needs 4" in result.rounds[0].reason
    initial = ctx.task.init_params(config.federation.seed)
    assert result.params.digest() == initial.digest()


def test_the_coordinator_needs_the_public_context(tmp_path):
    with pytest.raises(ConfigError, match="public context"):
        run_with(InProcessExecutor, make_config(tmp_path), public=False)


def test_ckks_has_no_threshold(tmp_path):
    with pytest.raises(ConfigError, match="belong to masking"):
        make_config(tmp_path, secure_aggregation={"mode": "ckks", "threshold": 3})
