"""What bounds a CKKS round's messages, and how the two protocols keep apart."""

import pytest

from accord.coordinator.executor import JobFailed
from accord.errors import SubmissionRefused
from accord.transport import secure_rounds
from accord.transport.jobs import CKKS_STAGES, JobBook
from accord.transport.messages import SecAggHeader, TaskOrder
from accord.transport.secure_rounds import (
    CkksLimits,
    check_stage_header,
    oversized_task,
)

LIMITS = CkksLimits(values=10, max_upload=5000)


def _header(stage: str, size: int) -> SecAggHeader:
    return SecAggHeader("run", 1, stage, size, 0.0)


def _kind(rule, stage: str, size: int) -> str | None:
    try:
        check_stage_header(_header(stage, size), rule)
    except SubmissionRefused as exc:
        return exc.kind
    return None


@pytest.mark.parametrize(
    ("stage", "size", "kind"),
    [
        ("ckks_upload", 5000, None),
        ("ckks_upload", 5001, "too_large"),
        ("ckks_upload", 0, "malformed"),
        ("ckks_decrypt", 88, None),  # 8 * (10 + 1)
        ("ckks_decrypt", 80, "mismatch"),
        ("ckks_decrypt", 96, "too_large"),
        ("advertise", 10, "mismatch"),
        ("masked_input", 10, "mismatch"),
    ],
)
def test_a_ckks_rounds_messages_are_bounded_by_its_values(stage, size, kind):
    assert _kind(LIMITS, stage, size) == kind


@pytest.mark.parametrize("stage", CKKS_STAGES)
def test_a_ckks_message_has_no_place_in_a_masking_round(stage):
    assert _kind(None, stage, 10) == "mismatch"


def test_the_ckks_stage_names_are_the_sessions():
    pytest.importorskip("cryptography")
    from accord.secagg import ckks_session

    assert (ckks_session.UPLOAD_STAGE, ckks_session.DECRYPT_STAGE) == CKKS_STAGES


def test_the_upload_bound_is_what_the_aggregator_accepts():
    pytest.importorskip("cryptography")
    from accord.secagg.ckks import max_upload_bytes
    from accord.secagg.ckks_keys import CkksParams

    params = CkksParams()
    one, two = max_upload_bytes(params, 100), max_upload_bytes(params, params.slots)
    assert params.max_chunk_bytes < one < 2 * params.max_chunk_bytes < two


def test_a_ckks_train_task_carries_its_job_and_no_certificate():
    pytest.importorskip("cryptography")
    from accord.secagg.ckks_keys import CkksParams
    from accord.secagg.ckks_session import CkksJob
    from accord.transport.identity import IdentityBook

    job = CkksJob("run", 1, values=10, clip=1.0, max_examples=5)
    order = TaskOrder("run", 1, "train", "d")

    sent, rule = secure_rounds.secure_order(
        order, job, identities=IdentityBook(), ckks_params=CkksParams()
    )

    assert CkksJob.from_json(sent.secure_json) == job and not sent.certificates
    assert isinstance(rule, CkksLimits) and rule.values == 10


def test_ckks_stages_are_admitted_like_the_masking_ones():
    book = JobBook("run", ["a"])
    book.open("a", TaskOrder("run", 1, "train", "d", secure_json='{"mode":"ckks"}'))
    book.admit_stage("a", "ckks_upload", 1, "run").state = "done"
    book.open("a", TaskOrder("run", 1, "secagg", "", stage="ckks_decrypt"))

    with pytest.raises(SubmissionRefused) as upload_again:
        book.admit_stage("a", "ckks_upload", 1, "run")
    with pytest.raises(SubmissionRefused) as masking:
        book.admit_stage("a", "unmask", 1, "run")

    assert upload_again.value.kind == "duplicate"
    assert masking.value.kind == "mismatch"
    assert book.admit_stage("a", "ckks_decrypt", 1, "run").order.stage == (
        "ckks_decrypt"
    )


def test_a_task_too_large_for_grpc_fails_its_job_at_once(tmp_path, monkeypatch):
    import numpy as np

    from accord.params import Params
    from accord.transport.executor import GrpcExecutor

    monkeypatch.setattr(secure_rounds, "MAX_TASK_PAYLOAD", 16)
    ex = GrpcExecutor(["a"], run_id="run", spool_dir=tmp_path)
    ex.publish(Params({"w": np.zeros(2, np.float32)}))
    try:
        ex.submit_secagg(1, "ckks_decrypt", {"a": b"x" * 17})

        event = ex.next_event(1)
    finally:
        ex.close()

    assert isinstance(event, JobFailed) and event.kind == "secagg"
    assert "more than a task carries" in event.reason
    assert oversized_task("ckks_decrypt", b"x" * 16) is None
