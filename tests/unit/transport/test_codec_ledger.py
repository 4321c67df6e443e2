"""The ledger's wire fields: an entry on a train task, a receipt on an update."""

import numpy as np
import pytest

from accord.errors import SubmissionRefused
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport import codec
from accord.transport.messages import PackedHeader, TaskOrder, UpdateHeader
from accord.transport.proto import accord_pb2 as pb

CONFIG = TrainConfig(
    epochs=1, batch_size=8, learning_rate=0.1, seed=1, round=2, participant="s"
)


def _update(receipt: str) -> UpdateHeader:
    params = Params({"w": np.zeros(3, dtype=np.float32)})
    header = PackedHeader(params.spec, params.spec.packed_nbytes, params.digest())
    return UpdateHeader("run", 2, "b" * 64, header, 5, 0.5, {}, receipt=receipt)


def test_a_train_task_carries_its_ledger_entry():
    order = TaskOrder("run", 2, "train", "d" * 64, CONFIG, ledger_entry='{"e": 1}')

    wire = pb.Task.FromString(codec.encode_task(order).SerializeToString())

    assert codec.decode_task(wire) == order


def test_an_update_header_carries_its_receipt():
    header = _update('{"receipt": 1}')
    params = Params({"w": np.zeros(3, dtype=np.float32)})
    first = next(codec.encode_update_parts(header, params.spec.pack(params)))

    decoded = codec.decode_update_part(
        pb.UpdatePart.FromString(first.SerializeToString())
    )

    assert decoded == header


def test_older_peers_send_neither_field_and_read_as_empty():
    old = pb.Task(run_id="run", round=2, kind=pb.JOB_KIND_EVAL, model_digest="d")

    assert codec.decode_task(old).ledger_entry == ""


@pytest.mark.parametrize("size", [codec.MAX_LEDGER_TEXT, codec.MAX_LEDGER_TEXT + 1])
def test_a_receipt_past_the_bound_is_refused(size):
    header = _update("x" * size)
    params = Params({"w": np.zeros(3, dtype=np.float32)})
    first = next(codec.encode_update_parts(header, params.spec.pack(params)))

    if size > codec.MAX_LEDGER_TEXT:
        with pytest.raises(SubmissionRefused, match="receipt is longer than"):
            codec.decode_update_part(first)
    else:
        assert codec.decode_update_part(first).receipt == header.receipt
