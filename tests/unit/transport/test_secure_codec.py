"""Secure rounds on the wire, and their admission rules, without sockets."""

import pytest

from accord.errors import SubmissionRefused
from accord.task.protocol import TrainConfig
from accord.transport import codec
from accord.transport.jobs import STAGES, JobBook, secagg_limit
from accord.transport.messages import CHUNK_BYTES, Chunk, SecAggHeader, TaskOrder
from accord.transport.proto import accord_pb2 as pb
from accord.transport.secure_codec import (
    MAX_CERTIFICATE_BYTES,
    assemble,
    decode_secagg_part,
    secagg_frames,
)


def _round_trip(order: TaskOrder) -> TaskOrder:
    wire = pb.Task.FromString(codec.encode_task(order).SerializeToString())
    return codec.decode_task(wire)


def test_a_secure_train_task_round_trips_with_its_certificates():
    order = TaskOrder(
        "run",
        3,
        "train",
        "d" * 64,
        TrainConfig(round=3, participant="a"),
        secure_json='{"threshold": 2}',
        certificates=(b"cert-a", b"cert-b"),
    )

    assert _round_trip(order) == order


def test_a_stage_task_round_trips_without_model_or_config():
    order = TaskOrder("run", 3, "secagg", "", stage="share_keys", payload=b"\x01\x02")

    assert _round_trip(order) == order


def test_a_stage_task_must_name_its_stage():
    wire = pb.Task(run_id="r", round=1, kind=pb.JOB_KIND_SECAGG)

    with pytest.raises(SubmissionRefused, match="names no stage"):
        codec.decode_task(wire)


def test_an_oversized_certificate_is_malformed():
    wire = pb.Task(
        run_id="r",
        round=1,
        kind=pb.JOB_KIND_TRAIN,
        config_json=codec.encode_train_config(TrainConfig(round=1)),
        identity_certificates=[b"x" * (MAX_CERTIFICATE_BYTES + 1)],
    )

    with pytest.raises(SubmissionRefused, match="larger than"):
        codec.decode_task(wire)


@pytest.mark.parametrize("size", [0, 5, CHUNK_BYTES, 2 * CHUNK_BYTES + 7])
def test_a_stage_message_streams_in_chunks_and_reassembles(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    header = SecAggHeader("run", 2, "masked_input", len(payload), 0.5)

    frames = list(secagg_frames(header, payload))
    parts = [
        decode_secagg_part(codec.parse_chunk_or(pb.SecAggPart.FromString)(f))
        for f in frames
    ]

    assert parts[0] == header
    assert all(isinstance(p, Chunk) and len(p.data) <= CHUNK_BYTES for p in parts[1:])
    assert assemble(iter(parts[1:]), len(payload)) == payload


@pytest.mark.parametrize(
    ("parts", "total", "kind"),
    [
        ([Chunk(0, b"ab"), Chunk(3, b"c")], 4, "malformed"),  # a gap
        ([Chunk(0, b"abc")], 2, "too_large"),
        ([Chunk(0, b"a")], 2, "malformed"),  # ended early
        ([Chunk(0, b"a"), SecAggHeader("r", 1, "unmask", 1, 0.0)], 2, "malformed"),
    ],
)
def test_assembly_refuses_gaps_excess_and_a_second_header(parts, total, kind):
    with pytest.raises(SubmissionRefused) as info:
        assemble(iter(parts), total)

    assert info.value.kind == kind


def test_the_stage_names_are_the_protocols():
    from accord.secagg.messages import Stage

    protocol = tuple(s.value for s in Stage)
    assert protocol[: len(STAGES)] == STAGES


def test_the_masked_input_bound_is_four_bytes_a_word_plus_framing():
    masked = secagg_limit("masked_input", vector_size=1000, roster_size=9)
    assert 4 * 1000 + 100 < masked < 4 * 1000 + 5000
    assert secagg_limit("unmask", vector_size=10, roster_size=100) > 100 * 300


# Admission, stage by stage.


def _book() -> JobBook:
    book = JobBook("run", ["a", "b"])
    for p in ("a", "b"):
        book.open(p, TaskOrder("run", 1, "train", "d", secure_json="{}"))
    return book


def _refused(book, *args) -> str:
    with pytest.raises(SubmissionRefused) as info:
        book.admit_stage(*args)
    return info.value.kind


def test_advertise_answers_a_secure_train_job_only():
    book = JobBook("run", ["a"])
    book.open("a", TaskOrder("run", 1, "train", "d"))

    assert _refused(book, "a", "advertise", 1, "run") == "forbidden"


def test_each_stage_is_admitted_once_and_only_while_it_is_open():
    book = _book()
    book.admit_stage("a", "advertise", 1, "run").state = "done"
    book.open("a", TaskOrder("run", 1, "secagg", "", stage="share_keys"))

    assert _refused(book, "a", "advertise", 1, "run") == "duplicate"
    assert _refused(book, "a", "masked_input", 1, "run") == "forbidden"
    book.admit_stage("a", "share_keys", 1, "run").state = "done"
    assert _refused(book, "a", "share_keys", 1, "run") == "duplicate"
    book.open("a", TaskOrder("run", 1, "secagg", "", stage="masked_input"))
    assert _refused(book, "a", "share_keys", 1, "run") == "stale"
    assert _refused(book, "a", "masked_input", 1, "other-run") == "stale"
    assert _refused(book, "b", "share_keys", 1, "run") == "forbidden"
    assert _refused(book, "a", "nonsense", 1, "run") == "malformed"
    assert book.admit_stage("a", "masked_input", 1, "run").order.stage == (
        "masked_input"
    )


def test_an_abandoned_stage_refuses_its_late_message_as_stale():
    book = _book()
    book.open("a", TaskOrder("run", 1, "secagg", "", stage="consistency"))

    book.abandon(1, ["a"])

    assert _refused(book, "a", "consistency", 1, "run") == "stale"
