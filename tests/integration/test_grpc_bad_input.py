"""Bad messages over real gRPC: each gets its status and reason, and changes nothing."""

import threading

import grpc
import numpy as np
import pytest

from accord.coordinator.executor import TrainDone, TrainJob
from accord.errors import SubmissionRefused
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport.messages import PackedHeader, UpdateHeader
from accord.transport.status import CODES

pytestmark = pytest.mark.timeout(180)

SITES = ("site-00", "site-01", "site-02")
MODEL = Params({"w": np.zeros((3, 4), np.float32), "b": np.zeros(3, np.float32)})


@pytest.fixture
def round_one(coordinator, listen):
    """Round 1 open with a train job for every site, all of them connected."""
    stop = threading.Event()
    streams = {name: listen(coordinator, name, stop) for name in SITES}
    assert coordinator.executor.wait_for(SITES, 60) == set(SITES)
    coordinator.executor.publish(MODEL)
    jobs = [TrainJob(n, TrainConfig(round=1, participant=n)) for n in SITES]
    coordinator.executor.submit_train(1, jobs)
    yield streams
    stop.set()


def _update(coordinator, values: Params, *, round=1, run_id=None, **overrides):
    header = UpdateHeader(
        run_id=run_id or coordinator.executor.run_id,
        round=round,
        base_digest=MODEL.digest(),
        params=PackedHeader(values.spec, values.spec.packed_nbytes, values.digest()),
        num_examples=10,
        duration_s=0.5,
    )
    for key, value in overrides.items():
        header = header.__class__(**{**header.__dict__, key: value})
    return header, values.spec.pack(values)


def _submit(coordinator, name, header, buffer):
    with coordinator.client(name) as client:
        return client.submit_update(header, buffer, timeout_s=10)


def _refusal(coordinator, name, header, buffer) -> SubmissionRefused:
    with pytest.raises(SubmissionRefused) as info:
        _submit(coordinator, name, header, buffer)
    return info.value


def _good() -> Params:
    return Params({"w": np.full((3, 4), 0.5, np.float32), "b": np.ones(3, np.float32)})


def test_a_good_update_arrives_as_a_read_only_view_and_gets_a_receipt(
    coordinator, round_one
):
    header, buffer = _update(coordinator, _good())

    receipt = _submit(coordinator, "site-00", header, buffer)
    event = coordinator.executor.next_event(5)

    assert receipt.participant == "site-00"
    assert receipt.digest == _good().digest() and receipt.bytes == len(buffer)
    assert isinstance(event, TrainDone) and event.participant == "site-00"
    assert event.update.digest() == _good().digest()
    assert not event.update["w"].flags.writeable
    coordinator.executor.release(event)
    assert list(coordinator.executor.spool_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "kind", "reason"),
    [
        (
            lambda: Params({"w": np.zeros((4, 4), np.float32), "b": np.zeros(3)}),
            "mismatch",
            "tensor 'w'",
        ),
        (
            lambda: Params(
                {"w": np.full((3, 4), np.nan, np.float32), "b": np.zeros(3, np.float32)}
            ),
            "mismatch",
            "NaN",
        ),
        (
            lambda: Params(
                {"w": np.zeros((30, 40), np.float32), "b": np.zeros(3, np.float32)}
            ),
            "too_large",
            "bytes",
        ),
    ],
    ids=["wrong-shape", "nan", "oversized"],
)
def test_a_bad_update_is_refused_with_its_code_and_reason(
    coordinator, round_one, make, kind, reason
):
    header, buffer = _update(coordinator, make())

    refusal = _refusal(coordinator, "site-01", header, buffer)

    assert refusal.kind == kind
    assert reason in refusal.reason
    assert coordinator.executor.next_event(0.3) is None
    assert list(coordinator.executor.spool_dir.iterdir()) == []
    logged = coordinator.executor.rejections.snapshot()[-1]
    assert (logged.participant, logged.round, logged.kind) == ("site-01", 1, kind)
    assert coordinator.events() == [("site-01", 1, kind)]  # recorded at once
    assert coordinator.store.rounds(coordinator.run_id) == []


def test_bytes_past_the_announced_size_are_refused_while_streaming(
    coordinator, round_one
):
    header, buffer = _update(coordinator, _good())
    buffer = bytes(buffer) + b"\0" * 64

    refusal = _refusal(coordinator, "site-01", header, buffer)

    assert refusal.kind == "too_large"
    assert "past" in refusal.reason
    assert coordinator.events() == [("site-01", 1, "too_large")]


def test_values_that_do_not_match_the_announced_digest_are_refused(
    coordinator, round_one
):
    header, buffer = _update(coordinator, _good())
    buffer[0] ^= 0x01

    refusal = _refusal(coordinator, "site-01", header, buffer)

    assert refusal.kind == "corrupt"
    assert CODES[refusal.kind] == grpc.StatusCode.DATA_LOSS
    assert coordinator.events() == [("site-01", 1, "corrupt")]


def test_a_duplicate_is_refused_and_the_first_update_stands(coordinator, round_one):
    header, buffer = _update(coordinator, _good())
    _submit(coordinator, "site-02", header, buffer)

    refusal = _refusal(coordinator, "site-02", header, buffer)

    assert refusal.kind == "duplicate"
    assert CODES["duplicate"] == grpc.StatusCode.ALREADY_EXISTS
    event = coordinator.executor.next_event(5)
    assert isinstance(event, TrainDone) and event.participant == "site-02"
    assert coordinator.executor.next_event(0.3) is None
    assert coordinator.events() == [("site-02", 1, "duplicate")]


def test_a_replay_from_an_earlier_round_is_refused(coordinator, round_one):
    header, buffer = _update(coordinator, _good())
    _submit(coordinator, "site-00", header, buffer)
    coordinator.executor.submit_train(2, [TrainJob("site-00", TrainConfig(round=2))])

    refusal = _refusal(coordinator, "site-00", header, buffer)

    assert refusal.kind == "stale"
    assert "replay" in refusal.reason
    assert CODES["stale"] == grpc.StatusCode.FAILED_PRECONDITION
    assert coordinator.events() == [("site-00", 1, "stale")]


def test_an_update_for_another_run_is_refused(coordinator, round_one):
    header, buffer = _update(coordinator, _good(), run_id="another-run")

    refusal = _refusal(coordinator, "site-00", header, buffer)

    assert refusal.kind == "stale"
    assert "run" in refusal.reason
    assert coordinator.events() == [("site-00", 1, "stale")]


def test_an_update_for_the_store_run_but_another_coordinator_process_is_refused(
    coordinator, round_one
):
    # What a site finishing its training after the coordinator was restarted sends:
    # the store's run id is the same, the process (the wire id's suffix) is not.
    header, buffer = _update(coordinator, _good(), run_id=f"{coordinator.run_id}.0")

    refusal = _refusal(coordinator, "site-00", header, buffer)

    assert refusal.kind == "stale"
    assert coordinator.executor.next_event(0.3) is None
    assert coordinator.events() == [("site-00", 1, "stale")]


def test_a_refused_update_leaves_the_job_open_for_a_correct_one(coordinator, round_one):
    bad, bad_buffer = _update(coordinator, _good())
    bad_buffer[5] ^= 0xFF
    _refusal(coordinator, "site-01", bad, bad_buffer)

    good, buffer = _update(coordinator, _good())
    _submit(coordinator, "site-01", good, buffer)

    event = coordinator.executor.next_event(5)
    assert isinstance(event, TrainDone) and event.participant == "site-01"


def test_raw_garbage_gets_invalid_argument_with_a_reason(
    coordinator, round_one, raw_channel
):
    with raw_channel("site-00") as channel:
        call = channel.unary_unary("/accord.v1.Federation/SubmitEval")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff", timeout=60)
        stream = channel.stream_unary("/accord.v1.Federation/SubmitUpdate")
        with pytest.raises(grpc.RpcError) as streamed:
            stream(iter([b"\x0a\xff\xff"]), timeout=60)

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid EvalReport" in info.value.details()
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert coordinator.executor.next_event(0.3) is None
    assert coordinator.events() == [
        ("site-00", None, "malformed"),
        ("site-00", None, "malformed"),
    ]


def test_a_site_without_a_job_in_the_round_is_refused(coordinator, round_one):
    coordinator.executor.abandon(1, ["site-02"])
    header, buffer = _update(coordinator, _good(), round=3)

    refusal = _refusal(coordinator, "site-02", header, buffer)

    assert refusal.kind == "forbidden"
    assert CODES["forbidden"] == grpc.StatusCode.PERMISSION_DENIED
    assert coordinator.events() == [("site-02", 3, "forbidden")]


def test_an_update_after_the_deadline_is_refused_as_stale(coordinator, round_one):
    coordinator.executor.abandon(1, ["site-02"])
    header, buffer = _update(coordinator, _good())

    refusal = _refusal(coordinator, "site-02", header, buffer)

    assert refusal.kind == "stale"
    assert "deadline" in refusal.reason
    assert coordinator.events() == [("site-02", 1, "stale")]


def test_eval_and_failure_reports_are_checked_too(coordinator, round_one):
    from accord.transport.messages import EvalReport, FailureReport

    with coordinator.client("site-00") as client:
        with pytest.raises(SubmissionRefused) as no_job:
            client.submit_eval(
                EvalReport(coordinator.executor.run_id, 1, MODEL.digest(), {}, 5, 0.1)
            )
        client.report_failure(
            FailureReport(coordinator.executor.run_id, 1, "train", "disk full")
        )
        with pytest.raises(SubmissionRefused) as again:
            client.report_failure(
                FailureReport(coordinator.executor.run_id, 1, "train", "again")
            )

    assert no_job.value.kind == "forbidden"
    assert again.value.kind == "duplicate"
    assert coordinator.events() == [
        ("site-00", 1, "forbidden"),
        ("site-00", 1, "duplicate"),
    ]
    event = coordinator.executor.next_event(5)
    assert event.participant == "site-00" and event.reason == "disk full"
