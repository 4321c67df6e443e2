"""Updates held in reused memory buffers, under a budget, instead of spool files.

A buffer is written again only once no view of the update it held is left: a
round (or anything else) still reading an update released earlier must keep
seeing its values.
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.coordinator.executor import TrainDone
from accord.errors import SubmissionRefused
from accord.params import Params
from accord.transport.executor import GrpcExecutor
from accord.transport.spool import MemorySpool, SpooledUpdate

from .test_executor import MODEL, OPEN, SITES, connect, parts, train, update

KIB = 1024


def _values(fill: float) -> Params:
    return Params(
        {
            "a": np.full(1000, fill, np.float32),
            "b": np.arange(7, dtype=np.float64) * fill,
        }
    )


def _spool(tmp_path, values: Params, memory: MemorySpool | None) -> SpooledUpdate:
    spooled = SpooledUpdate(
        tmp_path, values.spec, digest=values.digest(), memory=memory
    )
    packed = bytes(values.spec.pack(values))
    for offset in range(0, len(packed), 333):
        spooled.write(offset, packed[offset : offset + 333])
    return spooled


def test_a_buffer_within_the_budget_and_none_past_it() -> None:
    spool = MemorySpool(10 * KIB)

    first = spool.take(6 * KIB)
    second = spool.take(4 * KIB)  # exactly up to the budget
    third = spool.take(1)  # one byte past it

    assert first is not None and first.nbytes == 6 * KIB
    assert second is not None and second.nbytes == 4 * KIB
    assert third is None
    assert spool.held == 10 * KIB


def test_a_zero_budget_holds_nothing_and_a_negative_one_is_refused() -> None:
    assert MemorySpool(0).take(1) is None
    assert MemorySpool(KIB).take(0) is None  # an empty update needs no buffer
    with pytest.raises(ValueError, match="negative"):
        MemorySpool(-1)


def test_a_returned_buffer_is_reused_only_once_no_view_of_it_is_left() -> None:
    spool = MemorySpool(2 * KIB)
    buffer = spool.take(KIB)
    assert buffer is not None
    view = buffer[10:20]  # what a round may still hold
    spool.give_back(buffer)
    address = buffer.ctypes.data
    del buffer

    other = spool.take(KIB)  # the first is still viewed: a second buffer
    assert other is not None and other.ctypes.data != address
    assert spool.take(KIB) is None  # and the budget is spent

    del view
    spool.give_back(other)
    del other
    again = spool.take(KIB)
    assert again is not None and spool.held == 2 * KIB  # reused, none made


def test_free_buffers_of_another_size_make_room() -> None:
    spool = MemorySpool(3 * KIB)
    small = spool.take(2 * KIB)
    assert small is not None
    spool.give_back(small)
    del small

    big = spool.take(3 * KIB)

    assert big is not None and spool.held == 3 * KIB


def test_an_update_in_memory_is_a_read_only_view_and_leaves_no_file(tmp_path) -> None:
    values = _values(0.25)
    spool = MemorySpool(KIB * 64)

    spooled = _spool(tmp_path, values, spool)
    view = spooled.finish()

    assert spooled.in_memory and list(tmp_path.iterdir()) == []
    assert view.digest() == values.digest()
    assert not view["a"].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view["a"][0] = 1.0
    assert spooled.norm == pytest.approx(
        float(
            np.sqrt(
                sum(float(np.sum(v.astype(np.float64) ** 2)) for v in values.values())
            )
        )
    )


def test_an_update_released_but_still_viewed_keeps_its_values(tmp_path) -> None:
    spool = MemorySpool(KIB * 64)
    first = _spool(tmp_path, _values(1.0), spool)
    kept = first.finish()
    first.discard()  # released by the round, but ``kept`` still reads it

    second = _spool(tmp_path, _values(-3.0), spool)
    second_view = second.finish()

    assert kept.digest() == _values(1.0).digest()
    assert second_view.digest() == _values(-3.0).digest()


def test_past_the_budget_an_update_goes_to_a_file_with_the_same_values(
    tmp_path,
) -> None:
    values = _values(2.0)
    spool = MemorySpool(values.spec.packed_nbytes - 1)  # one byte short

    spooled = _spool(tmp_path, values, spool)
    view = spooled.finish()

    assert not spooled.in_memory and len(list(tmp_path.iterdir())) == 1
    assert view.digest() == values.digest()
    spooled.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_refused_update_gives_its_buffer_back(tmp_path) -> None:
    values = _values(1.0)
    values["a"][3] = np.inf
    spool = MemorySpool(values.spec.packed_nbytes)
    with pytest.raises(SubmissionRefused, match="'a' contains"):
        spooled = SpooledUpdate(
            tmp_path, values.spec, digest=values.digest(), memory=spool
        )
        try:
            packed = bytes(values.spec.pack(values))
            spooled.write(0, packed)
        finally:
            spooled.discard()  # as the executor does with a refused stream
    del spooled

    good = _spool(tmp_path, _values(1.0), spool)  # the same buffer, reused

    assert good.in_memory and spool.held == values.spec.packed_nbytes


@pytest.fixture
def executor(tmp_path):
    ex = GrpcExecutor(SITES, run_id="run-1", spool_dir=tmp_path, grace_s=10)
    ex.publish(MODEL)
    yield ex
    ex.close()
    OPEN.clear()


def test_the_executor_holds_updates_in_memory_reused_round_after_round(executor):
    connect(executor, "a")
    size = MODEL.spec.packed_nbytes
    for round_number in (1, 2, 3):
        train(executor, round_number, "a")
        header, buffer = update(round=round_number)
        executor.receive_update("a", parts(header, buffer))
        event = executor.next_event(0)
        assert isinstance(event, TrainDone)
        assert event.update.digest() == header.params.digest
        assert list(executor.spool_dir.iterdir()) == []  # no file
        executor.release(event)
        del event
        assert executor._memory.held == size  # one buffer, reused


def test_the_executors_default_budget_is_the_configs() -> None:
    from accord.config import DeploymentConfig
    from accord.transport.executor import SPOOL_MEMORY

    assert DeploymentConfig().spool_memory_mib * 2**20 == SPOOL_MEMORY
