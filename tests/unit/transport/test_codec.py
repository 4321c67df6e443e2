"""The codec: every message survives a round trip; malformed input is refused."""

import math

import numpy as np
import pytest

from accord.errors import SubmissionRefused
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport import codec
from accord.transport.messages import (
    CHUNK_BYTES,
    EvalReport,
    FailureReport,
    Goodbye,
    PackedHeader,
    Receipt,
    TaskOrder,
    UpdateHeader,
    Welcome,
)
from accord.transport.proto import accord_pb2 as pb


def _params() -> Params:
    return Params(
        {
            "w": np.arange(12, dtype=np.float32).reshape(3, 4),
            "b": np.array([0.5, -1.5], dtype=np.float64),
            "s": np.float16(2.0),
        }
    )


def _header(params: Params) -> PackedHeader:
    return PackedHeader(params.spec, params.spec.packed_nbytes, params.digest())


def test_train_task_round_trips_with_its_config():
    config = TrainConfig(
        epochs=2,
        batch_size=16,
        learning_rate=0.1,
        seed=123,
        round=4,
        participant="site-01",
        options={"mu": 0.01, "tags": ["a"]},
    )
    order = TaskOrder("run1", 4, "train", "d" * 64, config)

    decoded = codec.decode_task(
        pb.Task.FromString(codec.encode_task(order).SerializeToString())
    )

    assert decoded == order


@pytest.mark.parametrize(
    "message", [TaskOrder("r", 2, "eval", "abc"), Goodbye("r", "done"), Welcome("r", 3)]
)
def test_other_stream_messages_round_trip(message):
    assert codec.decode_task(codec.encode_task(message)) == message


def test_model_parts_rebuild_the_packed_bytes_in_chunks_of_at_most_1_mib():
    big = Params({"w": np.ones(CHUNK_BYTES // 2 + 7, dtype=np.float32) * 0.25})
    header = _header(big)
    buffer = big.spec.pack(big)

    parts = [
        codec.decode_model_part(p) for p in codec.encode_model_parts(header, buffer)
    ]

    assert parts[0] == header
    chunks = parts[1:]
    assert len(chunks) == 3
    assert all(len(c.data) <= CHUNK_BYTES for c in chunks)
    assert b"".join(c.data for c in chunks) == bytes(buffer)
    assert [c.offset for c in chunks] == [0, CHUNK_BYTES, 2 * CHUNK_BYTES]


def test_update_header_round_trips():
    params = _params()
    header = UpdateHeader(
        run_id="run",
        round=3,
        base_digest="b" * 64,
        params=_header(params),
        num_examples=40,
        duration_s=1.5,
        metrics={"loss": 0.25, "accuracy": 0.9},
    )
    parts = list(codec.encode_update_parts(header, params.spec.pack(params)))

    decoded = codec.decode_update_part(
        pb.UpdatePart.FromString(parts[0].SerializeToString())
    )

    assert decoded == header
    assert isinstance(codec.decode_update_part(parts[1]), codec.Chunk)


def test_reports_and_receipts_round_trip():
    ev = EvalReport("r", 2, "m" * 64, {"auc": 0.75}, 30, 0.2)
    fail = FailureReport(
        "r", 2, "train", "out of memory", refused=False, duration_s=3.0
    )
    receipt = Receipt("r", 2, "site-00", "d" * 64, 4096)

    assert codec.decode_eval(codec.encode_eval(ev)) == ev
    assert codec.decode_failure(codec.encode_failure(fail)) == fail
    assert codec.decode_receipt(codec.encode_receipt(receipt)) == receipt


@pytest.mark.parametrize(
    ("tensor", "reason"),
    [
        (pb.TensorHeader(name="w", dtype="<i4", shape=[2]), "dtype"),
        (pb.TensorHeader(name="w", dtype="|O", shape=[2]), "dtype"),
        (pb.TensorHeader(name="w", dtype="<f4", shape=[2**50]), "impossible shape"),
        (pb.TensorHeader(name="w", dtype="<f4", shape=[1] * 40), "impossible shape"),
    ],
)
def test_a_header_with_a_forbidden_dtype_or_shape_is_malformed(tensor, reason):
    with pytest.raises(SubmissionRefused, match=reason) as info:
        codec.decode_packed_header(pb.PackedHeader(tensors=[tensor], total_bytes=8))
    assert info.value.kind == "malformed"


def test_duplicate_tensor_names_are_malformed():
    t = pb.TensorHeader(name="w", dtype="<f4", shape=[1])
    with pytest.raises(SubmissionRefused, match="duplicate"):
        codec.decode_packed_header(pb.PackedHeader(tensors=[t, t]))


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_metrics_are_refused(value):
    msg = pb.EvalReport(run_id="r", round=1, metrics={"auc": value}, num_examples=3)
    with pytest.raises(SubmissionRefused, match="finite"):
        codec.decode_eval(msg)


def test_negative_duration_is_refused():
    with pytest.raises(SubmissionRefused, match="duration"):
        codec.decode_failure(
            pb.FailureReport(run_id="r", kind=pb.JOB_KIND_TRAIN, duration_s=-1)
        )


def test_an_unknown_job_kind_is_refused():
    with pytest.raises(SubmissionRefused, match="job kind"):
        codec.decode_failure(pb.FailureReport(run_id="r", kind=7))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"epochs": 1}',
        '{"epochs": "1", "batch_size": 1, "seed": 1, "round": 1, '
        '"learning_rate": 0.1, "participant": "a", "options": {}}',
        '{"epochs": 1, "batch_size": 1, "seed": 1, "round": 1, '
        '"learning_rate": NaN, "participant": "a", "options": {}}',
    ],
)
def test_a_bad_training_configuration_is_malformed(text):
    with pytest.raises(SubmissionRefused) as info:
        codec.decode_train_config(text)
    assert info.value.kind == "malformed"


def test_undecodable_bytes_become_a_malformed_value_not_an_exception():
    parse = codec.parse_or_malformed(pb.EvalReport)

    bad = parse(b"\xff\xff\xff\xff")
    good = parse(pb.EvalReport(run_id="r").SerializeToString())

    assert isinstance(bad, codec.Malformed)
    assert "EvalReport" in bad.reason
    assert isinstance(good, pb.EvalReport)


def test_an_empty_part_is_malformed():
    with pytest.raises(SubmissionRefused, match="neither"):
        codec.decode_update_part(pb.UpdatePart())
    with pytest.raises(SubmissionRefused, match="neither"):
        codec.decode_model_part(pb.ModelPart())
