"""The codec: every message survives a round trip; malformed input is refused."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import SubmissionRefused
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport import codec
from accord.transport.messages import (
    CHUNK_BYTES,
    MAX_MESSAGE_BYTES,
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


# Chunk frames: written and read without protobuf objects, byte-exact with protobuf.


@pytest.mark.parametrize("offset", [0, 1, 127, 128, CHUNK_BYTES, 2**40, 2**63 - 1])
@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, CHUNK_BYTES])
@pytest.mark.parametrize("message", [pb.ModelPart, pb.UpdatePart])
def test_a_chunk_frame_is_exactly_what_protobuf_serializes(offset, size, message):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)

    frame = codec.chunk_frame(offset, data)

    expected = message(chunk=pb.Chunk(offset=offset, data=data)).SerializeToString()
    assert frame == expected
    chunk = codec.fast_chunk(frame)
    assert chunk is not None
    assert (chunk.offset, bytes(chunk.data)) == (offset, data)


def test_frames_of_a_model_and_an_update_decode_like_the_message_objects():
    big = Params({"w": np.arange(CHUNK_BYTES // 2 + 7, dtype=np.float32)})
    header = _header(big)
    buffer = big.spec.pack(big)
    update = UpdateHeader("run", 2, "b" * 64, header, 5, 0.5, {"loss": 1.0})

    model = list(codec.model_frames(header, buffer))
    sent = list(codec.update_frames(update, buffer))

    assert model == [
        p.SerializeToString() for p in codec.encode_model_parts(header, buffer)
    ]
    assert sent == [
        p.SerializeToString() for p in codec.encode_update_parts(update, buffer)
    ]
    read = codec.parse_chunk_or(codec.parse_or_malformed(pb.UpdatePart))
    parts = [codec.decode_update_part(read(f)) for f in sent]
    assert parts[0] == update
    assert b"".join(bytes(p.data) for p in parts[1:]) == bytes(buffer)


def _chunk(offset: int, data: bytes) -> bytes:
    return pb.UpdatePart(chunk=pb.Chunk(offset=offset, data=data)).SerializeToString()


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x12",
        _chunk(5, b"abc")[:-1],  # truncated
        _chunk(5, b"abc") + b"\x00",  # trailing byte
        _chunk(5, b"abc") + _chunk(6, b"d"),  # a second chunk field: merged
        b"\x12\x07\x12\x03abc\x08\x05",  # data before offset
        b"\x12\x07\x08\x05\x12\x05abc",  # data runs past the end
        b"\x12\x04\x18\x01\x08\x05",  # an unknown field
        b"\x12\x0d\x08" + b"\xff" * 10 + b"\x01\x12\x00",  # an 11-byte varint
        pb.UpdatePart(header=pb.UpdateHeader(run_id="r", round=1)).SerializeToString(),
    ],
)
def test_anything_but_a_canonical_chunk_goes_to_protobuf(frame):
    assert codec.fast_chunk(frame) is None


def test_an_offset_beyond_the_range_goes_to_protobuf_and_is_refused():
    frame = _chunk(2**63, b"x")
    read = codec.parse_chunk_or(codec.parse_or_malformed(pb.UpdatePart))

    part = read(frame)

    assert isinstance(part, pb.UpdatePart)
    with pytest.raises(SubmissionRefused, match="offset"):
        codec.decode_update_part(part)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_what_the_fast_path_accepts_protobuf_reads_the_same_way(frame):
    chunk = codec.fast_chunk(frame)
    if chunk is None:
        return
    msg = pb.UpdatePart.FromString(frame)
    assert msg.WhichOneof("part") == "chunk"
    assert (msg.chunk.offset, msg.chunk.data) == (chunk.offset, bytes(chunk.data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**63 - 1), st.binary(max_size=300))
def test_every_chunk_protobuf_writes_takes_the_fast_path(offset, data):
    chunk = codec.fast_chunk(_chunk(offset, data))

    assert chunk is not None
    assert (chunk.offset, bytes(chunk.data)) == (offset, data)


@pytest.mark.parametrize("chunked", [False, True], ids=["message", "chunk-frame"])
def test_a_message_over_the_limit_is_refused_unread_as_too_large(chunked):
    parse = codec.parse_or_malformed(pb.UpdatePart)
    if chunked:
        parse = codec.parse_chunk_or(parse)
        data = codec.chunk_frame(0, bytes(MAX_MESSAGE_BYTES))  # a valid chunk, too big
    else:
        data = b"\xff" * (MAX_MESSAGE_BYTES + 1)  # would not even parse

    refused = parse(data)

    assert isinstance(refused, codec.Malformed) and refused.kind == "too_large"
    assert f"of {len(data)} bytes" in refused.reason
    # At the limit it is read as usual.
    at_limit = parse(codec.chunk_frame(0, bytes(MAX_MESSAGE_BYTES - 16)))
    assert not isinstance(at_limit, codec.Malformed)
