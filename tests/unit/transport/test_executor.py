"""GrpcExecutor without sockets: streams, admission rules, spooling, failures."""

import itertools

import numpy as np
import pytest

from accord.coordinator.executor import EvalDone, JobFailed, TrainDone, TrainJob
from accord.coordinator.integrity import ExampleBounds
from accord.errors import RunAborted, SubmissionRefused
from accord.params import Params
from accord.task.protocol import TrainConfig
from accord.transport.codec import Chunk, iter_chunks
from accord.transport.executor import GrpcExecutor
from accord.transport.messages import (
    EvalReport,
    FailureReport,
    Goodbye,
    PackedHeader,
    TaskOrder,
    UpdateHeader,
    Welcome,
)

SITES = ("a", "b", "c")
MODEL = Params({"w": np.zeros((2, 3), np.float32), "b": np.zeros(2, np.float64)})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def executor(tmp_path, clock):
    # spool_memory=0: every update goes to a spool file, which these tests look at
    # (test_spool_memory.py has the updates held in memory).
    ex = GrpcExecutor(
        SITES,
        run_id="run-1",
        spool_dir=tmp_path,
        spool_memory=0,
        grace_s=10,
        clock=clock,
    )
    ex.publish(MODEL)
    yield ex
    ex.close()
    OPEN.clear()


OPEN: list = []  # a handler holds its stream; dropping it would disconnect


def connect(ex, name):
    stream = ex.subscribe(name, lambda: True)
    assert isinstance(next(stream), Welcome)
    OPEN.append(stream)
    return stream


def train(ex, round_number, *names):
    ex.submit_train(
        round_number, [TrainJob(n, TrainConfig(round=round_number)) for n in names]
    )


def update(values=None, *, round=1, run_id="run-1", base=None, examples=5):
    values = values or Params(
        {"w": np.full((2, 3), 0.5, np.float32), "b": np.ones(2, np.float64)}
    )
    header = UpdateHeader(
        run_id=run_id,
        round=round,
        base_digest=base or MODEL.digest(),
        params=PackedHeader(values.spec, values.spec.packed_nbytes, values.digest()),
        num_examples=examples,
        duration_s=0.1,
        metrics={"loss": 0.5},
    )
    return header, values.spec.pack(values)


def parts(header, buffer, size=16):
    return iter([header, *iter_chunks(buffer, size)])


def refused(ex, name, stream) -> SubmissionRefused:
    with pytest.raises(SubmissionRefused) as info:
        ex.receive_update(name, stream)
    return info.value


def test_a_connected_participant_receives_its_task_on_the_stream(executor):
    stream = connect(executor, "a")

    train(executor, 1, "a")

    order = next(stream)
    assert isinstance(order, TaskOrder)
    assert (order.kind, order.round, order.model_digest) == (
        "train",
        1,
        MODEL.digest(),
    )
    assert order.config == TrainConfig(round=1)


def test_a_participant_without_a_stream_fails_at_once(executor):
    train(executor, 1, "b")

    event = executor.next_event(0)

    assert isinstance(event, JobFailed) and "not connected" in event.reason


def test_an_update_becomes_a_read_only_view_on_a_spool_file(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()

    receipt = executor.receive_update("a", parts(header, buffer))
    event = executor.next_event(0)

    assert receipt.bytes == len(buffer) and receipt.participant == "a"
    assert isinstance(event, TrainDone)
    assert event.update.digest() == header.params.digest
    assert event.metrics == {"loss": 0.5} and event.num_examples == 5
    assert not event.update["w"].flags.writeable
    assert len(list(executor.spool_dir.iterdir())) == 1
    executor.release(event)
    assert list(executor.spool_dir.iterdir()) == []
    assert float(event.update["w"][0, 0]) == 0.5  # still readable until dropped


@pytest.mark.parametrize(
    ("mutate", "kind", "reason"),
    [
        (lambda h, b: (h, b[:-8]), "malformed", "ended after"),
        (lambda h, b: (h, bytes(b) + b"\0"), "too_large", "past"),
        (lambda h, b: (h, bytes([b[0] ^ 1]) + bytes(b[1:])), "corrupt", "digest"),
    ],
    ids=["truncated", "excess", "altered"],
)
def test_a_damaged_stream_is_refused_and_leaves_no_file(executor, mutate, kind, reason):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = mutate(*update())

    refusal = refused(executor, "a", parts(header, buffer))

    assert (refusal.kind, reason in refusal.reason) == (kind, True)
    assert list(executor.spool_dir.iterdir()) == []
    assert executor.next_event(0) is None


def test_chunks_out_of_order_are_refused(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()
    chunks = list(iter_chunks(buffer, 16))

    refusal = refused(executor, "a", iter([header, chunks[1], chunks[0]]))

    assert refusal.kind == "malformed" and "order" in refusal.reason


def test_a_stream_must_start_with_its_header(executor):
    refusal = refused(executor, "a", iter([Chunk(0, b"x")]))

    assert refusal.kind == "malformed"


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (
            lambda: update(
                Params({"w": np.zeros((3, 3), np.float32), "b": np.zeros(2)})
            ),
            "mismatch",
        ),
        (
            lambda: update(
                Params({"w": np.zeros((2, 30), np.float32), "b": np.zeros(2)})
            ),
            "too_large",
        ),
        (lambda: update(Params({"w": np.zeros((2, 3), np.float32)})), "mismatch"),
        (lambda: update(examples=0), "mismatch"),
        (lambda: update(base="0" * 64), "stale"),
        (lambda: update(run_id="run-0"), "stale"),
        (lambda: update(round=2), "forbidden"),
    ],
    ids=[
        "shape",
        "bigger",
        "missing",
        "no-examples",
        "old-model",
        "other-run",
        "no-job",
    ],
)
def test_a_header_that_does_not_fit_is_refused_before_any_chunk(executor, make, kind):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = make()

    refusal = refused(executor, "a", parts(header, buffer))

    assert refusal.kind == kind
    assert list(executor.spool_dir.iterdir()) == []


def test_non_finite_values_are_refused_in_the_chunk_that_carries_them(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    bad = Params({"w": np.full((2, 3), np.inf, np.float32), "b": np.zeros(2)})
    header, buffer = update(bad)

    def stream():
        yield header
        chunks = iter_chunks(buffer, 16)
        yield next(chunks)
        raise AssertionError("read past the chunk with the infinite value")

    refusal = refused(executor, "a", stream())

    assert refusal.kind == "mismatch" and "NaN or infinite" in refusal.reason
    assert "'w'" in refusal.reason
    assert list(executor.spool_dir.iterdir()) == []


@pytest.mark.parametrize("size", [1, 3, 7, 13, 64, 1000])
def test_chunks_that_split_values_are_checked_and_digested_whole(executor, size):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()

    executor.receive_update("a", parts(header, buffer, size))
    event = executor.next_event(0)

    assert isinstance(event, TrainDone) and event.values_checked
    assert event.update.digest() == header.params.digest


@pytest.mark.parametrize("size", [3, 5, 7])
def test_a_nan_split_across_two_chunks_is_found(executor, size):
    connect(executor, "a")
    train(executor, 1, "a")
    b = np.ones(2, np.float64)
    b[1] = np.nan  # bytes 8..16 of "b": a chunk of 3, 5 or 7 bytes splits it
    refusal = refused(
        executor,
        "a",
        parts(*update(Params({"w": np.zeros((2, 3), np.float32), "b": b})), size),
    )

    assert refusal.kind == "mismatch" and "'b'" in refusal.reason


def test_large_finite_half_precision_values_are_accepted(tmp_path):
    big = Params({"h": np.full(64, 60000.0, np.float16)})  # their float16 sum overflows
    model = Params({"h": np.zeros(64, np.float16)})
    ex = GrpcExecutor(("a",), run_id="run-1", spool_dir=tmp_path, grace_s=10)
    ex.publish(model)
    try:
        connect(ex, "a")
        train(ex, 1, "a")
        header, buffer = update(big, base=model.digest())
        ex.receive_update("a", parts(header, buffer, 40))
        event = ex.next_event(0)
        assert isinstance(event, TrainDone)
        assert float(event.update["h"][0]) == 60000.0
    finally:
        ex.close()
        OPEN.clear()


def test_after_a_refusal_the_job_is_open_for_a_correct_update(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()
    refused(executor, "a", parts(header, buffer[:-1]))

    executor.receive_update("a", parts(header, buffer))

    assert isinstance(executor.next_event(0), TrainDone)


def test_duplicates_and_replays_are_refused(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()
    executor.receive_update("a", parts(header, buffer))

    duplicate = refused(executor, "a", parts(header, buffer))
    train(executor, 2, "a")
    replay = refused(executor, "a", parts(header, buffer))

    assert duplicate.kind == "duplicate"
    assert replay.kind == "stale" and "replay" in replay.reason


def test_a_late_update_after_abandon_is_stale(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    executor.abandon(1, ["a"])

    refusal = refused(executor, "a", parts(*update()))

    assert refusal.kind == "stale" and "deadline" in refusal.reason


def test_a_stranger_is_forbidden_everywhere(executor):
    with pytest.raises(SubmissionRefused) as info:
        executor.subscribe("z", lambda: True)
    assert info.value.kind == "forbidden"
    assert refused(executor, "z", parts(*update())).kind == "forbidden"


def test_eval_reports_and_failures_become_events(executor):
    connect(executor, "a")
    connect(executor, "b")
    executor.submit_eval(1, ["a"])
    train(executor, 1, "b")

    executor.receive_eval(
        "a", EvalReport("run-1", 1, MODEL.digest(), {"auc": 0.7}, 4, 0.1)
    )
    executor.receive_failure(
        "b", FailureReport("run-1", 1, "train", "policy forbids", refused=True)
    )

    done, failed = executor.next_event(0), executor.next_event(0)
    assert isinstance(done, EvalDone) and done.metrics == {"auc": 0.7}
    assert isinstance(failed, JobFailed) and failed.status == "rejected"
    assert failed.reason == "refused by the site: policy forbids"


def test_scores_of_another_model_are_stale(executor):
    connect(executor, "a")
    executor.submit_eval(1, ["a"])

    with pytest.raises(SubmissionRefused) as info:
        executor.receive_eval("a", EvalReport("run-1", 1, "f" * 64, {}, 4, 0.1))

    assert info.value.kind == "stale"


def test_a_lost_participant_fails_after_the_grace_period(executor, clock):
    stream = connect(executor, "a")
    train(executor, 1, "a")
    stream.close()  # the handler's generator ends when the call does

    clock.now = 5
    assert executor.next_event(0) is None
    clock.now = 11
    event = executor.next_event(0)

    assert isinstance(event, JobFailed) and "lost the connection" in event.reason


def test_a_reconnecting_participant_gets_its_waiting_jobs_again(executor):
    first = connect(executor, "a")
    train(executor, 1, "a")
    next(first)
    first.close()

    second = executor.subscribe("a", lambda: True)

    messages = list(itertools.islice(second, 2))
    assert isinstance(messages[0], Welcome) and messages[0].round == 1
    assert isinstance(messages[1], TaskOrder) and messages[1].round == 1


def test_a_second_connection_with_the_same_identity_replaces_the_first(executor):
    first = connect(executor, "a")
    connect(executor, "a")

    message = next(first)

    assert isinstance(message, Goodbye) and "newer connection" in message.reason


def test_close_says_goodbye_now_and_to_later_subscribers(executor):
    stream = connect(executor, "a")

    executor.close()

    assert isinstance(next(stream), Goodbye)
    assert isinstance(next(executor.subscribe("b", lambda: True)), Welcome)


def test_a_stop_request_aborts_the_round_loop(executor):
    executor.stop("stopped by ops: maintenance")

    with pytest.raises(RunAborted, match="maintenance"):
        executor.next_event(1)


def test_status_lists_every_participant(executor):
    connect(executor, "b")
    train(executor, 4, "b")

    number, states, stopping = executor.status()

    assert number == 4 and not stopping
    assert [(s.name, s.connected, s.last_round) for s in states] == [
        ("a", False, 0),
        ("b", True, 4),
        ("c", False, 0),
    ]


def test_an_update_arriving_while_the_coordinator_closes_is_stale(executor):
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update()
    stream = parts(header, buffer)
    first = next(stream)

    def rest():
        yield first
        executor.close()  # the spool directory disappears mid-upload
        yield from stream

    error = refused(executor, "a", rest())
    assert error.kind == "stale"
    assert "shutting down" in str(error)
    assert refused(executor, "a", parts(header, buffer)).kind == "stale"


def test_abandoning_a_job_stops_the_upload_streaming_in_for_it(executor):
    # The round's deadline passes while a's update arrives: its reader is told
    # to stop reading, with the reason its sender gets; b's job, whose update
    # came in full, has no upload left to stop.
    for name in ("a", "b"):
        connect(executor, name)
    train(executor, 1, "a", "b")
    header, buffer = update()
    executor.receive_update("b", parts(header, buffer), reader=pytest.fail)
    stopped: list[str] = []
    stream = parts(header, buffer)

    def arriving():
        yield next(stream)
        yield next(stream)
        executor.abandon(1, ["a", "b"])  # the round loop, at the deadline
        yield from stream

    error = refused_with(executor, "a", arriving(), reader=stopped.append)

    assert len(stopped) == 1
    assert stopped[0].startswith("round 1 stopped waiting for your upload")
    assert "deadline passed" in stopped[0]
    assert error.kind == "stale"
    executor.abandon(1, ["a"])  # again: nothing is streaming any more
    assert len(stopped) == 1


def refused_with(ex, name, stream, **options) -> SubmissionRefused:
    with pytest.raises(SubmissionRefused) as info:
        ex.receive_update(name, stream, **options)
    return info.value


# Example bounds, given by the round loop: refused on arrival, before the body.


class Unread:
    """Update chunks that fail the test if anyone reads them."""

    def __iter__(self):
        return self

    def __next__(self):
        raise AssertionError("the body of a refused update was read")


@pytest.mark.parametrize("declared", [None, 6])
def test_an_update_claiming_more_than_the_bound_is_refused_from_its_header(
    executor, declared
):
    bounds = ExampleBounds(10 if declared is None else 1000, {"a": declared or 10})
    executor.bound_examples(bounds)
    limit = bounds.bound("a")
    connect(executor, "a")
    train(executor, 1, "a")

    header, _ = update(examples=limit + 1)
    exc = refused(executor, "a", itertools.chain([header], Unread()))

    assert exc.kind == "out_of_bounds"
    assert f"num_examples {limit + 1} is above this federation's bound" in exc.reason
    failed = executor.next_event(0)
    assert isinstance(failed, JobFailed) and failed.refused_on_arrival
    assert (failed.status, failed.kind, failed.reason) == (
        "rejected",
        "train",
        exc.reason,
    )
    # The job is over: the same claim again is not a second chance.
    header, buffer = update(examples=limit)
    assert refused(executor, "a", parts(header, buffer)).kind != "out_of_bounds"


def test_an_update_at_the_bound_is_received(executor):
    executor.bound_examples(ExampleBounds(5))
    connect(executor, "a")
    train(executor, 1, "a")
    header, buffer = update(examples=5)

    receipt = executor.receive_update("a", parts(header, buffer))

    assert receipt.digest == header.params.digest
    done = executor.next_event(0)
    assert isinstance(done, TrainDone) and done.num_examples == 5
    executor.release(done)


@pytest.mark.parametrize(
    ("count", "metrics", "refusal"),
    [
        (4, {"auc": 0.7, "n": 4.0}, None),
        (5, {"auc": 0.7}, "num_examples 5 is above"),
        (4, {"auc": 1.5}, "metric 'auc' = 1.5 is outside its range"),
        (4, {"n": 5.0}, "metric 'n' = 5 is above"),
    ],
)
def test_an_eval_report_beyond_the_bounds_is_refused_on_arrival(
    executor, count, metrics, refusal
):
    executor.bound_examples(ExampleBounds(4))
    connect(executor, "a")
    executor.submit_eval(1, ["a"])
    report = EvalReport("run-1", 1, MODEL.digest(), metrics, count, 0.1)

    if refusal is None:
        executor.receive_eval("a", report)
        assert isinstance(executor.next_event(0), EvalDone)
        return
    with pytest.raises(SubmissionRefused) as info:
        executor.receive_eval("a", report)
    assert info.value.kind == "out_of_bounds"
    assert refusal in info.value.reason
    failed = executor.next_event(0)
    assert isinstance(failed, JobFailed) and failed.refused_on_arrival
    assert (failed.kind, failed.status) == ("eval", "rejected")


def test_owing_names_the_unanswered_jobs_and_the_events_not_taken(executor):
    connect(executor, "a")
    connect(executor, "b")
    train(executor, 1, "a", "b")
    assert executor.owing() == (frozenset({("a", "train"), ("b", "train")}), 0)

    header, buffer = update()
    executor.receive_update("a", parts(header, buffer))

    assert executor.owing() == (frozenset({("b", "train")}), 1)
    executor.release(executor.next_event(0))
    assert executor.owing() == (frozenset({("b", "train")}), 0)
