"""Uploads checked before they are read, and a participant removed mid-run."""

import pytest

from accord.coordinator.executor import JobFailed, eligible
from accord.errors import AuthenticationFailed, SubmissionRefused
from accord.transport.call_metadata import UploadTag
from accord.transport.executor import GrpcExecutor
from accord.transport.messages import TaskOrder, Welcome

from .test_executor import MODEL, SITES, connect, parts, train, update


@pytest.fixture
def executor(tmp_path):
    ex = GrpcExecutor(SITES, run_id="run-1", spool_dir=tmp_path, grace_s=10)
    ex.publish(MODEL)
    yield ex
    ex.close()


@pytest.mark.parametrize(
    ("name", "tag", "kind"),
    [
        ("stranger", UploadTag("run-1", 1), "forbidden"),
        ("a", UploadTag("old-run", 1), "stale"),
        ("a", UploadTag("run-1", 2), "forbidden"),  # no job in round 2
        ("a", UploadTag("run-1", 1, "share_keys"), "forbidden"),
        ("a", UploadTag("run-1", 1, "nonsense"), "malformed"),
    ],
)
def test_an_upload_nobody_asked_for_is_refused_from_its_tag_alone(
    executor, name, tag, kind
):
    connect(executor, "a")
    train(executor, 1, "a")

    with pytest.raises(SubmissionRefused) as info:
        executor.check_upload(name, tag)

    assert info.value.kind == kind
    executor.check_upload("a", UploadTag("run-1", 1))  # the open job's tag passes


def test_an_answered_job_refuses_a_second_upload_before_it_is_read(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    executor.receive_update("a", parts(*update()))

    with pytest.raises(SubmissionRefused) as info:
        executor.check_upload("a", UploadTag("run-1", 1))

    assert info.value.kind == "duplicate"


def test_an_expelled_participant_is_cut_off_its_jobs_fail_and_it_is_not_selected(
    executor,
):
    streams = {n: connect(executor, n) for n in SITES}
    train(executor, 1, *SITES)
    assert isinstance(next(streams["b"]), TaskOrder)

    executor.expel("b", "certificate of 'b' was revoked on 2026-01-01 12:00 UTC")

    with pytest.raises(AuthenticationFailed) as info:
        next(streams["b"])
    assert "removed from the run" in info.value.reason and info.value.name == "b"
    failed = executor.next_event(1)
    assert isinstance(failed, JobFailed) and failed.participant == "b"
    assert failed.round == 1 and "revoked" in failed.reason
    assert eligible(executor) == ("a", "c") and executor.removed == {"b"}
    (record,) = [r for r in executor.rejections.snapshot() if r.kind == "revoked"]
    assert record.participant == "b" and "1 open job(s) failed" in record.reason
    # Nothing more reaches it, and whatever it sends is refused.
    train(executor, 2, "b")
    assert "removed from the run" in executor.next_event(1).reason
    for call in (
        lambda: executor.check_member("b"),
        lambda: executor.check_upload("b", UploadTag("run-1", 1)),
        lambda: executor.subscribe("b", lambda: True),
    ):
        with pytest.raises(SubmissionRefused) as refused:
            call()
        assert refused.value.kind == "forbidden"
    # A second expel changes nothing; the others are untouched.
    executor.expel("b", "again")
    assert len([r for r in executor.rejections.snapshot() if r.kind == "revoked"]) == 1
    assert isinstance(next(streams["a"]), TaskOrder)


def test_an_upload_in_progress_of_an_expelled_participant_is_refused_at_its_end(
    executor,
):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()
    stream = parts(header, buffer)

    def expel_midway():
        yield next(stream)  # the header: the job is receiving
        executor.expel("a", "revoked")
        yield from stream

    with pytest.raises(SubmissionRefused) as info:
        executor.receive_update("a", expel_midway())

    assert info.value.kind == "stale"
    event = executor.next_event(1)
    assert isinstance(event, JobFailed) and event.participant == "a"
    assert executor.next_event(0.05) is None  # no TrainDone for it


def test_a_stranger_cannot_be_expelled_into_the_roster(executor):
    executor.expel("stranger", "whatever")

    assert executor.removed == frozenset()
    assert isinstance(next(executor.subscribe("a", lambda: True)), Welcome)
