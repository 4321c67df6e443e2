"""How a run ended, as the coordinator's goodbye says it (farewell, codec)."""

from accord.errors import RunAborted
from accord.transport.codec import decode_task, encode_task
from accord.transport.messages import (
    RUN_FINISHED,
    RUN_INTERRUPTED,
    Goodbye,
    farewell,
)


def test_each_way_a_run_ends_has_its_goodbye():
    assert farewell(None) == RUN_FINISHED
    assert farewell(KeyboardInterrupt()) == RUN_INTERRUPTED
    assert farewell(RunAborted("3 rounds in a row failed")) == (
        "run aborted: 3 rounds in a row failed"
    )
    assert farewell(RuntimeError()) == "run aborted: RuntimeError"  # no message


def test_a_long_reason_is_cut_to_fit_the_wire():
    reason = farewell(RunAborted("x" * 5000))

    decoded = decode_task(encode_task(Goodbye("run-1", reason)))

    assert isinstance(decoded, Goodbye)
    assert decoded.reason == reason
    assert len(reason) == len("run aborted: ") + 1000 + 1  # 1,000 and an ellipsis
    assert not decoded.finished and not decoded.interrupted


def test_finished_and_interrupted_are_exact_texts():
    assert Goodbye("r", RUN_FINISHED).finished
    assert Goodbye("r", RUN_INTERRUPTED).interrupted
    assert not Goodbye("r", RUN_FINISHED + ".").finished
    assert not Goodbye("r", RUN_INTERRUPTED).finished
