"""The preprocessing's secure sum on the wire: its task, its bounds, its stages."""

import pytest

from accord.data.handshake import PrepareRequest, StatisticsRequest
from accord.errors import SubmissionRefused
from accord.transport.identity import IdentityBook
from accord.transport.jobs import JobBook, secagg_limit
from accord.transport.messages import SecAggHeader, TaskOrder
from accord.transport.secure_rounds import check_stage_header, statistics_order

pytest.importorskip("cryptography")
from accord.secagg.session import SecureJob  # noqa: E402

JOB = SecureJob(
    run_id="run",
    round_number=0,
    roster=("a", "b", "c"),
    vector_size=924,
    threshold=2,
    degree=2,
    clip=1.0,
    max_examples=10,
)


def _order(stage: str, payload: bytes = b"{}") -> TaskOrder:
    return TaskOrder("run", 0, "secagg", "", stage=stage, payload=payload)


def test_the_statistics_task_names_the_job_that_bounds_the_sum():
    request = StatisticsRequest(PrepareRequest(1, 0.2, 0, "masking"), ("x",), "")
    payload = StatisticsRequest(request.request, ("x",), JOB.to_json()).to_json()

    order, job = statistics_order(
        _order("statistics", payload), identities=IdentityBook()
    )

    assert job == JOB and order.payload == payload
    largest = secagg_limit("masked_input", vector_size=924, roster_size=3)
    check_stage_header(SecAggHeader("run", 0, "masked_input", largest, 0.0), job)
    with pytest.raises(SubmissionRefused) as refused:
        check_stage_header(
            SecAggHeader("run", 0, "masked_input", largest + 1, 0.0), job
        )
    assert refused.value.kind == "too_large"


def test_the_sum_follows_the_statistics_stage_in_round_0():
    book = JobBook("run", ["a", "b"])
    book.open("a", _order("statistics"))
    book.admit_stage("a", "statistics", 0, "run").state = "done"
    with pytest.raises(SubmissionRefused) as early:
        book.admit_stage("a", "encoding", 0, "run")

    book.open("a", _order("share_keys"))

    assert book.admit_stage("a", "share_keys", 0, "run").order.stage == "share_keys"
    with pytest.raises(SubmissionRefused) as late:
        book.admit_stage("a", "statistics", 0, "run")
    assert early.value.kind == "forbidden"
    assert late.value.kind == "mismatch"
