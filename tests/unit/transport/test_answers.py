"""A stage message is admitted only as the answer to the task it names."""

import dataclasses

import pytest

from accord.errors import SubmissionRefused
from accord.transport.jobs import Job, check_answers
from accord.transport.messages import SecAggHeader, TaskOrder, task_digest
from accord.transport.proto import accord_pb2 as pb
from accord.transport.secure_codec import decode_secagg_part, secagg_frames

TRAINING = TaskOrder("run", 3, "secagg", "", stage="share_keys", payload=b"keys-a")
FAIRNESS = dataclasses.replace(TRAINING, payload=b"keys-b")


def _header(answers: str) -> SecAggHeader:
    return SecAggHeader("run", 3, "share_keys", 10, 0.0, answers=answers)


def test_the_digest_covers_the_message_and_not_only_its_stage_and_round():
    assert task_digest(TRAINING) != task_digest(FAIRNESS)
    assert task_digest(TRAINING) == task_digest(dataclasses.replace(TRAINING))
    # certificates only help the site check the task: not part of it
    assert task_digest(TRAINING) == task_digest(
        dataclasses.replace(TRAINING, certificates=(b"der",))
    )
    for change in ({"round": 4}, {"run_id": "other"}, {"stage": "unmask"}):
        assert task_digest(dataclasses.replace(TRAINING, **change)) != task_digest(
            TRAINING
        )


def test_an_answer_to_the_open_task_is_admitted():
    check_answers(_header(task_digest(FAIRNESS)), Job("site-00", FAIRNESS))


@pytest.mark.parametrize("answers", ["", "0" * 64], ids=["none", "unknown"])
def test_an_answer_naming_no_or_an_unknown_task_is_refused(answers):
    with pytest.raises(SubmissionRefused) as info:
        check_answers(_header(answers), Job("site-00", FAIRNESS))
    assert info.value.kind == "stale"


def test_a_replayed_answer_to_another_message_of_the_same_stage_is_refused():
    # The training round's share_keys answer, replayed while the fairness sum's
    # share_keys stage of the same round is open.
    replay = _header(task_digest(TRAINING))

    with pytest.raises(SubmissionRefused) as info:
        check_answers(replay, Job("site-00", FAIRNESS))

    assert info.value.kind == "stale"
    assert "does not answer the open task" in info.value.reason


def test_the_header_carries_the_digest_over_the_wire():
    header = _header(task_digest(FAIRNESS))
    first = next(secagg_frames(header, b"0123456789"))
    part = pb.SecAggPart.FromString(first)

    assert decode_secagg_part(part) == header


def test_a_digest_too_long_is_malformed():
    part = pb.SecAggPart(
        header=pb.SecAggHeader(
            run_id="run", round=3, stage="unmask", total_bytes=1, answers="f" * 65
        )
    )
    with pytest.raises(SubmissionRefused) as info:
        decode_secagg_part(part)
    assert info.value.kind == "malformed"
