"""CKKS rounds over gRPC with mutual TLS: four participant runtimes in threads.

The test plays the key holder: every site gets the secret context, the coordinator
the public one. Sites encrypt their updates, the coordinator adds ciphertexts it
cannot read and has one contributor decrypt the sum; the model is the plain
deployment's within CKKS noise. Stray CKKS messages are refused, and recorded,
before the round sees them.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tenseal")
pytest.importorskip("cryptography")  # accord.secagg imports the secagg extra

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.executor import SecAggReply, TrainJob
from accord.errors import ConfigError, SubmissionRefused
from accord.params import Params
from accord.participant.policy import SitePolicy
from accord.secagg.ckks import max_upload_bytes
from accord.secagg.ckks_keys import KeyHolder
from accord.secagg.ckks_release import PRECISION
from accord.secagg.ckks_session import CkksJob
from accord.simulation.context import build_context
from accord.task.protocol import TrainConfig
from accord.transport.messages import SecAggHeader, TaskOrder, task_digest

pytestmark = pytest.mark.timeout(120)

SITES = tuple(f"site-{i:02d}" for i in range(4))


@pytest.fixture(scope="module")
def holder() -> KeyHolder:
    return KeyHolder.create()


def make_config(tmp_path: Path, mode: str = "ckks") -> FedConfig:
    raw: dict = {
        "federation": {"name": "grpc-ckks", "rounds": 1, "seed": 5},
        "data": {"dataset": "wine", "sites": len(SITES)},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        # Deadlines that only bound a failure: no site here is meant to be late,
        # however loaded the machine.
        "round": {"deadline_s": 120, "quorum": 0.5},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": mode, "stage_timeout_s": 60},
    }
    return config_from_mapping(raw, base_dir=tmp_path)


def initial_model(config: FedConfig) -> Params:
    return build_context(config).task.init_params(config.federation.seed)


def max_diff(a: Params, b: Params) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture
def deploy(deploy_sites, holder):
    """``deploy(config, **start)``: SITES, each holding the secret context."""

    def make(config: FedConfig, *, without=(), **start):
        secrets = {s: holder.secret_context for s in SITES if s not in without}
        return deploy_sites(
            SITES,
            config,
            executor={"ckks_params": holder.params},
            ckks_public=holder.public_context,
            ckks=secrets,
            **start,
        )

    return make


def test_a_ckks_deployment_round_gives_the_plain_deployment_model(deploy, tmp_path):
    plain_config = make_config(tmp_path, "off")
    start = initial_model(plain_config)
    plain_run, plain_store = deploy(plain_config).run(start)
    # The released sum is flooded and rounded to within PRECISION per value, so
    # the mean is within PRECISION * (1 + |mean|) / sum(w) (ckks_release); the
    # weights are the sites' example counts over max_examples.
    (plain_round,) = plain_store.rounds(plain_run.run_id)
    cap = make_config(tmp_path).secure_aggregation.max_examples
    total_weight = sum(o.num_examples for o in plain_round.outcomes) / cap
    largest = max(float(np.abs(plain_run.params[k] - start[k]).max()) for k in start)
    tolerance = PRECISION * (1 + largest) / total_weight
    config = make_config(tmp_path)
    deployed = deploy(
        config, policies={"site-01": SitePolicy(require_secure_aggregation=True)}
    )

    result, store = deployed.run(initial_model(config))

    assert [r.status for r in result.rounds] == ["completed"]
    assert result.rounds[0].succeeded == 4
    assert max_diff(result.params, plain_run.params) < tolerance
    assert max_diff(result.params, plain_run.params) > 0  # flooded, not exact
    assert not deployed.running.executor.rejections.snapshot()
    assert deployed.ended == dict.fromkeys(SITES, "run finished")
    stages = {
        s: [e["stage"] for e in deployed.site_log(s, "sent_secagg")] for s in SITES
    }
    assert all(sent[0] == "ckks_upload" for sent in stages.values())
    assert sum(sent == ["ckks_upload", "ckks_decrypt"] for sent in stages.values()) == 1
    assert not any(deployed.site_log(s, "sent_update") for s in SITES)
    (record,) = store.rounds(result.run_id)
    assert all(o.status == "ok" and o.num_examples == 0 for o in record.outcomes)


def test_a_site_without_a_context_refuses_and_the_round_goes_on(deploy, tmp_path):
    config = make_config(tmp_path)
    deployed = deploy(config, without={"site-00"})

    result, store = deployed.run(initial_model(config))

    (record,) = store.rounds(result.run_id)
    assert record.status == "completed" and result.rounds[0].succeeded == 3
    outcome = {o.participant: o for o in record.outcomes}["site-00"]
    assert outcome.status == "rejected"
    assert "refused by the site" in outcome.reason
    assert "no CKKS context" in outcome.reason
    (refused,) = deployed.site_log("site-00", "refused_task")
    assert "--ckks-context" in refused["reason"]
    assert not deployed.site_log("site-00", "sent_secagg")
    # site-01 is the first contributor: it decrypts.
    assert [e["stage"] for e in deployed.site_log("site-01", "sent_secagg")] == [
        "ckks_upload",
        "ckks_decrypt",
    ]


def test_a_site_demanding_a_threshold_refuses_a_ckks_round(deploy, tmp_path):
    config = make_config(tmp_path)
    deployed = deploy(config, policies={"site-03": SitePolicy(min_threshold=2)})

    result, store = deployed.run(initial_model(config))

    (record,) = store.rounds(result.run_id)
    outcome = {o.participant: o for o in record.outcomes}["site-03"]
    assert outcome.status == "rejected" and "CKKS round has no threshold" in (
        outcome.reason
    )
    assert record.status == "completed" and result.rounds[0].succeeded == 3


# Stray messages over real gRPC, without training: the test speaks for the sites.

MODEL = Params({"w": np.zeros((3, 4), np.float32), "b": np.zeros(3, np.float32)})


@pytest.fixture
def ckks_round(start_coordinator, holder, listen):
    """Round 1 of a CKKS run over SITES[:3]: a CKKS train job each, all connected."""
    sites = SITES[:3]
    running = start_coordinator(sites, ckks_params=holder.params)
    stop = threading.Event()
    streams = {name: listen(running, name, stop) for name in sites}
    assert running.executor.wait_for(sites, 60) == set(sites)
    running.executor.publish(MODEL)
    job = CkksJob("run", 1, values=MODEL.size, clip=1.0, max_examples=100)
    jobs = [TrainJob(n, TrainConfig(round=1, participant=n), secure=job) for n in sites]
    running.executor.submit_train(1, jobs)
    yield running, streams
    stop.set()


def _send(running, name, stage, payload, *, total=None):
    size = len(payload) if total is None else total
    kind = "train" if stage == "ckks_upload" else "secagg"
    task = running.executor.task(name, kind, 1)
    answers = "" if task is None else task_digest(task)
    header = SecAggHeader(
        running.executor.run_id, 1, stage, size, 0.25, answers=answers
    )
    with running.client(name) as client:
        return client.submit_secagg(header, payload, timeout_s=60)


def _refusal(running, name, stage, payload, **kw) -> SubmissionRefused:
    with pytest.raises(SubmissionRefused) as info:
        _send(running, name, stage, payload, **kw)
    return info.value


def _next_task(streams, name) -> TaskOrder:
    while True:
        item = streams[name].get(timeout=60)
        if isinstance(item, TaskOrder):
            return item


def test_a_ckks_train_task_carries_the_job_and_no_certificate(ckks_round):
    running, streams = ckks_round

    task = _next_task(streams, "site-01")

    assert task.kind == "train" and not task.certificates
    assert CkksJob.from_json(task.secure_json).values == MODEL.size


def test_an_upload_is_queued_and_the_decryption_answers_its_own_task(
    ckks_round, holder
):
    running, _ = ckks_round
    receipt = _send(running, "site-00", "ckks_upload", b"ciphertext")
    upload = running.executor.next_event(60)
    running.executor.submit_secagg(1, "ckks_decrypt", {"site-00": b"the sum"})
    reply = np.arange(MODEL.size + 1, dtype="<f8").tobytes()

    _send(running, "site-00", "ckks_decrypt", reply)

    assert isinstance(upload, SecAggReply) and upload.stage == "ckks_upload"
    assert receipt.digest == hashlib.sha256(b"ciphertext").hexdigest()
    decrypted = running.executor.next_event(60)
    assert isinstance(decrypted, SecAggReply) and decrypted.payload == reply
    assert not running.events()


def test_an_oversized_upload_is_refused_and_recorded(ckks_round, holder):
    running, _ = ckks_round
    limit = max_upload_bytes(holder.params, MODEL.size)

    refused = _refusal(running, "site-01", "ckks_upload", b"x", total=limit + 1)

    assert refused.kind == "too_large" and str(limit) in refused.reason
    assert ("site-01", 1, "too_large") in running.events()
    _send(running, "site-01", "ckks_upload", b"x" * 64)  # the job is still open


def test_stages_of_the_wrong_protocol_or_time_are_refused_and_recorded(ckks_round):
    running, _ = ckks_round
    advert = _refusal(running, "site-02", "advertise", b"advert")
    early = _refusal(running, "site-02", "ckks_decrypt", b"x" * 8)
    _send(running, "site-02", "ckks_upload", b"ciphertext")
    running.executor.submit_secagg(1, "ckks_decrypt", {"site-02": b"the sum"})

    masking = _refusal(running, "site-02", "share_keys", b"shares")
    short = _refusal(running, "site-02", "ckks_decrypt", b"x" * 8)
    long = _refusal(running, "site-02", "ckks_decrypt", b"x" * 8 * (MODEL.size + 2))

    assert advert.kind == "mismatch" and "runs CKKS" in advert.reason
    assert early.kind == "forbidden"
    assert masking.kind == "mismatch"
    assert short.kind == "mismatch" and long.kind == "too_large"
    events = running.events()
    for kind in ("mismatch", "forbidden", "too_large"):
        assert ("site-02", 1, kind) in events
    # Repeats of one (caller, method, kind) are recorded once, then counted.
    assert events.count(("site-02", 1, "mismatch")) == 1
    counts = {(r.kind, r.count) for r in running.executor.rejections.snapshot()}
    assert ("mismatch", 3) in counts


def test_a_coordinator_without_the_parameters_refuses_to_start_a_ckks_round(
    start_coordinator,
):
    running = start_coordinator(SITES[:1])
    running.executor.publish(MODEL)
    job = CkksJob("run", 1, values=MODEL.size, clip=1.0, max_examples=100)

    with pytest.raises(ConfigError, match="ckks_params"):
        running.executor.submit_train(1, [TrainJob(SITES[0], TrainConfig(), job)])
