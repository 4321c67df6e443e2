"""The masked input's hand-framed wire form is protobuf's own, byte for byte."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import SubmissionRefused
from accord.secagg.messages import MaskedInput, Stage
from accord.transport.proto import accord_pb2 as pb
from accord.transport.secagg_wire import decode_to_coordinator, encode


def _protobufs(message: MaskedInput) -> bytes:
    wire = pb.SecAggMessage()
    wire.masked_input.run_id = message.run_id
    wire.masked_input.round = message.round_number
    wire.masked_input.sender = message.sender
    wire.masked_input.vector = message.vector
    return wire.SerializeToString()


@settings(max_examples=200, deadline=None)
@given(
    run_id=st.text(max_size=200),
    round_number=st.integers(min_value=0, max_value=2**32 - 1),
    sender=st.text(max_size=80),
    vector=st.binary(max_size=3000),
)
def test_a_masked_input_encodes_as_protobuf_would(run_id, round_number, sender, vector):
    message = MaskedInput(run_id, round_number, sender, vector)

    blob = encode(message)

    assert blob == _protobufs(message)
    assert decode_to_coordinator(blob, Stage.MASKED_INPUT) == message


@pytest.mark.parametrize("words", [0, 1, 32, 4096, 2**19, 2**20])
def test_lengths_across_varint_boundaries_encode_as_protobuf_would(words):
    # 128, 16,384 and 2,097,152 bytes (32, 4,096 and 2**19 words) each need one
    # more byte of length: a byte either side of each.
    for extra in (-1, 0, 1):
        vector = bytes(range(256)) * ((4 * words + extra) // 256 + 1)
        vector = vector[: max(0, 4 * words + extra)]
        message = MaskedInput("run-20261207", 7, "site-042", vector)
        assert encode(message) == _protobufs(message)


def test_a_masked_input_is_not_taken_for_another_stages_message():
    blob = encode(MaskedInput("run", 1, "a", b"\x00" * 8))

    with pytest.raises(SubmissionRefused, match="expects a consistency message"):
        decode_to_coordinator(blob, Stage.CONSISTENCY)
