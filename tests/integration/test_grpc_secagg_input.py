"""SubmitSecAgg over real gRPC: each stray message is refused, recorded, harmless."""

import dataclasses
import hashlib
import threading

import numpy as np
import pytest

pytest.importorskip("cryptography")  # the secagg extra

from accord.coordinator.executor import JobFailed, SecAggReply, TrainJob
from accord.data.handshake import FairnessSumRequest
from accord.errors import SubmissionRefused
from accord.params import Params
from accord.secagg.encoding import FixedPointEncoding
from accord.secagg.session import SecureJob
from accord.task.protocol import TrainConfig
from accord.transport.jobs import secagg_limit
from accord.transport.messages import (
    FailureReport,
    SecAggHeader,
    TaskOrder,
    task_digest,
)

pytestmark = pytest.mark.timeout(180)

SITES = ("site-00", "site-01", "site-02")
MODEL = Params({"w": np.zeros((3, 4), np.float32), "b": np.zeros(3, np.float32)})
WORDS = FixedPointEncoding.words(MODEL.size)
JOB = SecureJob(
    run_id="run",
    round_number=1,
    roster=SITES,
    vector_size=WORDS,
    threshold=3,
    degree=2,
    clip=1.0,
    max_examples=100,
    identity_keys=(("site-00", "00" * 32),),
)


@pytest.fixture
def secure_round(coordinator, listen):
    """Round 1 of a secure run: a secure train job for every site, all connected."""
    stop = threading.Event()
    streams = {name: listen(coordinator, name, stop) for name in SITES}
    assert coordinator.executor.wait_for(SITES, 60) == set(SITES)
    coordinator.executor.publish(MODEL)
    jobs = [TrainJob(n, TrainConfig(round=1, participant=n), secure=JOB) for n in SITES]
    coordinator.executor.submit_train(1, jobs)
    yield streams
    stop.set()


def _answers(executor, name, stage, round_number) -> str:
    """The digest of the task a message of ``stage`` answers ("": none open)."""
    kind = "train" if stage == "advertise" else "secagg"
    task = executor.task(name, kind, round_number)
    return "" if task is None else task_digest(task)


def _send(coordinator, name, stage, payload, *, round=1, run_id=None, total=None):
    header = SecAggHeader(
        run_id or coordinator.executor.run_id,
        round,
        stage,
        len(payload) if total is None else total,
        0.25,
        answers=_answers(coordinator.executor, name, stage, round),
    )
    with coordinator.client(name) as client:
        return client.submit_secagg(header, payload, timeout_s=60)


def _refusal(coordinator, name, stage, payload, **kw) -> SubmissionRefused:
    with pytest.raises(SubmissionRefused) as info:
        _send(coordinator, name, stage, payload, **kw)
    return info.value


def _next_task(streams, name) -> TaskOrder:
    while True:
        item = streams[name].get(timeout=60)
        if isinstance(item, TaskOrder):
            return item


def test_a_secure_train_task_carries_the_settings_and_the_roster_certificates(
    coordinator, secure_round
):
    task = _next_task(secure_round, "site-01")

    sent = SecureJob.from_json(task.secure_json)
    assert task.kind == "train" and sent.threshold == 3 and sent.roster == SITES
    assert sent.identity_keys == ()  # the site takes the keys from certificates
    assert len(task.certificates) == 3  # every enrolled site presented one


def test_an_advertisement_is_queued_with_its_stage_and_receipt(
    coordinator, secure_round
):
    receipt = _send(coordinator, "site-00", "advertise", b"advert" * 10)

    event = coordinator.executor.next_event(60)
    assert isinstance(event, SecAggReply)
    assert (event.participant, event.round, event.stage) == ("site-00", 1, "advertise")
    assert event.payload == b"advert" * 10 and event.duration_s == 0.25
    assert receipt.digest == hashlib.sha256(b"advert" * 10).hexdigest()
    assert receipt.bytes == 60 and receipt.participant == "site-00"


def test_a_stage_that_has_not_started_is_forbidden_and_recorded(
    coordinator, secure_round
):
    refused = _refusal(coordinator, "site-01", "masked_input", b"x" * 8)

    assert refused.kind == "forbidden"
    assert ("site-01", 1, "forbidden") in coordinator.events()


def test_an_unknown_stage_is_malformed(coordinator, secure_round):
    assert _refusal(coordinator, "site-01", "peek", b"x").kind == "malformed"
    assert ("site-01", 1, "malformed") in coordinator.events()


def test_replays_of_an_answered_or_a_past_stage_are_refused(coordinator, secure_round):
    ex = coordinator.executor
    _send(coordinator, "site-02", "advertise", b"first")
    assert _refusal(coordinator, "site-02", "advertise", b"again").kind == "duplicate"
    ex.submit_secagg(1, "share_keys", {"site-02": b"directory"})
    _send(coordinator, "site-02", "share_keys", b"shares")
    assert _refusal(coordinator, "site-02", "share_keys", b"more").kind == "duplicate"
    ex.submit_secagg(1, "masked_input", {"site-02": b"deliveries"})

    replay = _refusal(coordinator, "site-02", "share_keys", b"shares")
    advert = _refusal(coordinator, "site-02", "advertise", b"first")

    assert replay.kind == "stale" and "replay" in replay.reason
    assert advert.kind == "duplicate"
    events = coordinator.events()
    # Repeats of one (caller, method, kind) are recorded once, then counted.
    assert events.count(("site-02", 1, "duplicate")) == 1
    assert ("site-02", 1, "stale") in events
    counts = {(r.kind, r.count) for r in ex.rejections.snapshot()}
    assert counts == {("duplicate", 3), ("stale", 1)}
    stages = [e.stage for e in _drain(ex) if isinstance(e, SecAggReply)]
    assert stages == ["advertise", "share_keys"]  # nothing refused got through


def test_a_replayed_answer_of_the_training_sum_is_refused_in_the_fairness_sum(
    coordinator, secure_round
):
    # Round 1's training sum: site-00 answers its share_keys stage.
    ex = coordinator.executor
    _send(coordinator, "site-00", "advertise", b"advert")
    ex.submit_secagg(1, "share_keys", {"site-00": b"training directory"})
    training = _answers(ex, "site-00", "share_keys", 1)
    _send(coordinator, "site-00", "share_keys", b"training shares")
    # Round 1's fairness sum opens stages of the same names, its own tasks.
    job = dataclasses.replace(JOB, run_id="run/fairness", identity_keys=())
    request = FairnessSumRequest("ab" * 32, ("blue", "red"), job.to_json())
    ex.submit_secagg(1, "fairness", {"site-00": request.to_json()})
    _send(coordinator, "site-00", "fairness", b"fairness advert")
    ex.submit_secagg(1, "share_keys", {"site-00": b"fairness directory"})

    # The training answer, replayed, and one tampered to name no task.
    replayed = SecAggHeader(ex.run_id, 1, "share_keys", 15, 0.1, answers=training)
    tampered = dataclasses.replace(replayed, answers="")
    refusals = []
    for header in (replayed, tampered):
        with (
            pytest.raises(SubmissionRefused) as info,
            coordinator.client("site-00") as client,
        ):
            client.submit_secagg(header, b"training shares", timeout_s=60)
        refusals.append(info.value)

    assert [r.kind for r in refusals] == ["stale", "stale"]
    assert all("does not answer the open task" in r.reason for r in refusals)
    assert ("site-00", 1, "stale") in coordinator.events()
    # The answer to the open task still goes through, once.
    assert training != _answers(ex, "site-00", "share_keys", 1)
    _send(coordinator, "site-00", "share_keys", b"fairness shares")
    stages = [(e.stage, e.payload) for e in _drain(ex) if isinstance(e, SecAggReply)]
    assert stages == [
        ("advertise", b"advert"),
        ("share_keys", b"training shares"),
        ("fairness", b"fairness advert"),
        ("share_keys", b"fairness shares"),
    ]


def test_another_run_or_round_is_refused(coordinator, secure_round):
    assert _refusal(coordinator, "site-00", "advertise", b"x", run_id="old").kind == (
        "stale"
    )
    assert _refusal(coordinator, "site-00", "advertise", b"x", round=2).kind == (
        "forbidden"
    )


def test_oversized_messages_are_refused_as_too_large_and_recorded(
    coordinator, secure_round
):
    advert_limit = secagg_limit("advertise", vector_size=WORDS, roster_size=3)
    masked_limit = secagg_limit("masked_input", vector_size=WORDS, roster_size=3)
    coordinator.executor.submit_secagg(1, "share_keys", {"site-01": b"directory"})

    big = _refusal(coordinator, "site-00", "advertise", b"\0" * (advert_limit + 1))
    _send(coordinator, "site-01", "advertise", b"a")
    _send(coordinator, "site-01", "share_keys", b"s")
    coordinator.executor.submit_secagg(1, "masked_input", {"site-01": b"deliveries"})
    masked = _refusal(
        coordinator, "site-01", "masked_input", b"\0" * (masked_limit + 1)
    )

    assert big.kind == masked.kind == "too_large"
    assert masked_limit < 4 * WORDS + 5000
    events = coordinator.events()
    assert ("site-00", 1, "too_large") in events and (
        "site-01",
        1,
        "too_large",
    ) in events
    # Within its bound the same site's masked input still goes through.
    _send(coordinator, "site-01", "masked_input", b"\0" * (4 * WORDS + 40))


def test_a_stream_that_breaks_its_announced_size_is_refused(coordinator, secure_round):
    longer = _refusal(coordinator, "site-00", "advertise", b"x" * 100, total=50)
    shorter = _refusal(coordinator, "site-00", "advertise", b"x" * 50, total=100)

    assert longer.kind == "too_large" and shorter.kind == "malformed"
    # The job stayed open: the site may still send its message.
    _send(coordinator, "site-00", "advertise", b"x" * 50)


def test_a_reported_secagg_failure_fails_the_stage(coordinator, secure_round):
    ex = coordinator.executor
    _send(coordinator, "site-01", "advertise", b"a")
    ex.submit_secagg(1, "share_keys", {"site-01": b"directory"})
    report = FailureReport(ex.run_id, 1, "secagg", "aborted: a share did not decrypt")

    with coordinator.client("site-01") as client:
        client.report_failure(report)

    failed = [e for e in _drain(ex) if isinstance(e, JobFailed)]
    assert [(f.participant, f.kind, f.status) for f in failed] == [
        ("site-01", "secagg", "failed")
    ]
    assert "did not decrypt" in failed[0].reason


def test_a_stage_task_reaches_the_site_with_its_message(coordinator, secure_round):
    _next_task(secure_round, "site-02")  # the train task
    coordinator.executor.submit_secagg(1, "share_keys", {"site-02": b"directory"})

    task = _next_task(secure_round, "site-02")

    assert (task.kind, task.stage, task.payload) == (
        "secagg",
        "share_keys",
        b"directory",
    )
    assert task.model_digest == "" and task.config is None


def _drain(executor) -> list:
    events = []
    while (event := executor.next_event(0.3)) is not None:
        events.append(event)
    return events
