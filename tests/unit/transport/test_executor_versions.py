"""A GrpcExecutor in async mode (``versions=True``): several model versions served.

Each job is admitted against the version it was given, never against the newest;
a replayed update of an earlier job is refused as stale; a version released by
:meth:`GrpcExecutor.keep` is no longer served. No socket: the handlers' calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from accord.coordinator.executor import TrainDone, TrainJob
from accord.errors import SubmissionRefused
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport.codec import iter_chunks
from accord.transport.executor import GrpcExecutor
from accord.transport.messages import PackedHeader, UpdateHeader, Welcome

SITES = ("a", "b")
RUN = "run-v"


def _model(value: float) -> Params:
    return Params({"w": np.full((2, 3), value, np.float32)})


V0, V1, V2 = _model(0.0), _model(1.0), _model(2.0)
OPEN: list[Iterator[object]] = []


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[GrpcExecutor]:
    ex = GrpcExecutor(SITES, run_id=RUN, spool_dir=tmp_path, versions=True)
    ex.publish(V0)
    for name in SITES:
        stream = ex.subscribe(name, lambda: True)
        assert isinstance(next(stream), Welcome)
        OPEN.append(stream)
    yield ex
    ex.close()
    OPEN.clear()


def _train(ex: GrpcExecutor, number: int, name: str) -> None:
    ex.submit_train(number, [TrainJob(name, TrainConfig(round=number))])


def _update(number: int, base: Params) -> Iterator[object]:
    values = _model(0.25)
    header = UpdateHeader(
        run_id=RUN,
        round=number,
        base_digest=base.digest(),
        params=PackedHeader(values.spec, values.spec.packed_nbytes, values.digest()),
        num_examples=5,
        duration_s=0.1,
        metrics={},
    )
    return iter([header, *iter_chunks(values.spec.pack(values), 16)])


def _refused(
    ex: GrpcExecutor, name: str, number: int, base: Params
) -> SubmissionRefused:
    with pytest.raises(SubmissionRefused) as info:
        ex.receive_update(name, _update(number, base))  # type: ignore[arg-type]
    return info.value


def test_an_older_version_stays_served_until_released(executor: GrpcExecutor) -> None:
    executor.publish(V1)
    executor.publish(V2)

    assert executor.model("a", RUN, V0.digest()).header.digest == V0.digest()
    assert executor.model("a", RUN, V2.digest()).header.digest == V2.digest()
    executor.keep({V1.digest()})
    assert executor.model("a", RUN, V1.digest()).header.digest == V1.digest()
    with pytest.raises(SubmissionRefused) as info:
        executor.model("a", RUN, V0.digest())
    assert info.value.kind == "stale"


def test_without_versions_only_the_current_model_is_served(tmp_path: Path) -> None:
    ex = GrpcExecutor(SITES, run_id=RUN, spool_dir=tmp_path)
    try:
        ex.publish(V0)
        ex.publish(V1)
        with pytest.raises(SubmissionRefused):
            ex.model("a", RUN, V0.digest())
    finally:
        ex.close()


def test_each_update_is_admitted_against_the_version_its_job_was_given(
    executor: GrpcExecutor,
) -> None:
    _train(executor, 1, "a")  # a trains from V0
    executor.publish(V1)
    _train(executor, 2, "b")  # b from V1, while a still trains from V0

    executor.receive_update("a", _update(1, V0))  # type: ignore[arg-type]
    wrong = _refused(executor, "b", 2, V0)  # b claims the version a was given
    executor.receive_update("b", _update(2, V1))  # type: ignore[arg-type]

    assert wrong.kind == "stale" and "trained from model" in wrong.reason
    done = [executor.next_event(1.0), executor.next_event(1.0)]
    assert [(e.participant, e.round) for e in done if isinstance(e, TrainDone)] == [
        ("a", 1),
        ("b", 2),
    ]


def test_a_replayed_update_of_an_old_version_is_refused(
    executor: GrpcExecutor,
) -> None:
    _train(executor, 1, "a")
    executor.receive_update("a", _update(1, V0))  # type: ignore[arg-type]
    executor.publish(V1)
    _train(executor, 2, "a")  # a reported: it trains from the newest version

    replay = _refused(executor, "a", 1, V0)
    again = _refused(executor, "a", 1, V1)

    assert replay.kind == "stale" and "replay: round 1 is over" in replay.reason
    assert again.kind == "stale"
