"""A simulated round's end overlaps the next round's jobs, and loses nothing.

With ``overlap`` (what the simulation engine sets), a completed plain round's
checkpoint is written on a thread and the round recorded once the next round's
jobs are out. Whatever happens, a round is recorded before the next one is said to
start, its checkpoint is on disk when it is recorded, a run stopped between the
two still records it (also when Ctrl-C comes while its checkpoint is being
waited for), a checkpoint that cannot be written stops the run unrecorded,
and the rounds are those of a run without overlap.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import pytest

from accord.config import FedConfig
from accord.coordinator.runner import Coordinator, RoundSummary
from accord.errors import StoreError
from accord.params import Params
from accord.records import ParticipantOutcome
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.simulation.inprocess import InProcessExecutor
from accord.store import CheckpointStore, MemoryStore, RunStore

from .test_resume import make_config

pytest.importorskip("sklearn")


class Watcher:
    """An observer that checks, whenever it is told something, what is stored."""

    def __init__(self, store: RunStore, checkpoints: CheckpointStore) -> None:
        self.store, self.checkpoints = store, checkpoints
        self.heard: list[tuple[str, int]] = []
        self.problems: list[str] = []

    def _recorded(self) -> list[int]:
        (run,) = self.store.list_runs()
        return [r.number for r in self.store.rounds(run.run_id)]

    def round_started(self, number: int, selected: Sequence[str]) -> None:
        self.heard.append(("started", number))
        if self._recorded() != list(range(1, number)):
            self.problems.append(f"round {number} started with {self._recorded()}")

    def participant_finished(self, number: int, outcome: ParticipantOutcome) -> None:
        pass

    def round_finished(self, summary: RoundSummary) -> None:
        self.heard.append(("finished", summary.number))
        (run,) = self.store.list_runs()
        if self._recorded()[-1:] != [summary.number]:
            self.problems.append(f"round {summary.number} told before recorded")
        record = self.store.rounds(run.run_id)[-1]
        if record.checkpoint is None or not Path(record.checkpoint).is_file():
            self.problems.append(f"round {summary.number} has no checkpoint file")


class FailingCheckpoints(CheckpointStore):
    """Checkpoints whose write of round ``number`` fails as a full disk would."""

    def __init__(self, root: Path, number: int) -> None:
        super().__init__(root)
        self.number = number

    def save(self, run_id: str, round_number: int, params: Params, **kw) -> Path:  # type: ignore[no-untyped-def]
        if round_number == self.number:
            raise StoreError(f"cannot write checkpoint of round {round_number}")
        return super().save(run_id, round_number, params, **kw)


class StopsAt(InProcessExecutor):
    """Ctrl-C as round ``number``'s jobs are handed out, after the last round ended."""

    def __init__(self, ctx, number: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.number = number

    def submit_train(self, round_number: int, jobs) -> None:  # type: ignore[no-untyped-def]
        super().submit_train(round_number, jobs)
        if round_number == self.number:
            raise KeyboardInterrupt


def _run(
    config: FedConfig,
    store: RunStore,
    checkpoints: CheckpointStore,
    *,
    overlap: bool,
    stop_at: int | None = None,
) -> str:
    """Run ``config`` in process; the run's id, also when it raised."""
    ctx = build_context(config)
    executor = InProcessExecutor(ctx) if stop_at is None else StopsAt(ctx, stop_at)
    coordinator = Coordinator(
        config,
        executor=executor,
        store=store,
        checkpoints=checkpoints,
        overlap=overlap,
    )
    try:
        coordinator.run(ctx.task.init_params(config.federation.seed))
    finally:
        executor.close()
    (run,) = store.list_runs()
    return run.run_id


def _what(outcomes: Sequence[ParticipantOutcome]) -> list[tuple[object, ...]]:
    """The outcomes without their timings."""
    return [
        (o.participant, o.status, o.num_examples, o.update_digest) for o in outcomes
    ]


def test_a_round_is_recorded_with_its_checkpoint_before_the_next_is_said_to_start(
    tmp_path: Path,
) -> None:
    with MemoryStore() as store:
        watcher = Watcher(store, CheckpointStore(tmp_path))

        simulate(make_config(), store=store, checkpoint_dir=tmp_path, observer=watcher)

        assert watcher.problems == []
        assert watcher.heard == [
            (what, n) for n in (1, 2, 3, 4) for what in ("started", "finished")
        ]


def test_the_rounds_are_those_of_a_run_without_overlap(tmp_path: Path) -> None:
    config = make_config()
    with MemoryStore() as serial, MemoryStore() as overlapped:
        a_id = _run(config, serial, CheckpointStore(tmp_path / "a"), overlap=False)
        b_id = _run(config, overlapped, CheckpointStore(tmp_path / "b"), overlap=True)

        a, b = serial.rounds(a_id), overlapped.rounds(b_id)
        assert [r.number for r in b] == [1, 2, 3, 4]
        assert [r.global_digest for r in a] == [r.global_digest for r in b]
        assert [_what(r.outcomes) for r in a] == [_what(r.outcomes) for r in b]
        for r in b:
            loaded = CheckpointStore(tmp_path / "b").load(Path(str(r.checkpoint)))
            assert loaded.digest() == r.global_digest
        assert overlapped.get_run(b_id).status == "completed"


@pytest.mark.parametrize("overlap", [False, True])
def test_a_checkpoint_that_cannot_be_written_stops_the_run_unrecorded(
    tmp_path: Path, overlap: bool
) -> None:
    failing = FailingCheckpoints(tmp_path, number=2)
    with MemoryStore() as store:
        with pytest.raises(StoreError, match="round 2"):
            _run(make_config(), store, failing, overlap=overlap)

        (run,) = store.list_runs()
        assert [r.number for r in store.rounds(run.run_id)] == [1]
        assert run.status == "aborted"


def test_a_run_stopped_before_the_last_round_was_recorded_records_it(
    tmp_path: Path,
) -> None:
    # Ctrl-C comes as round 3's jobs go out: round 2's checkpoint may still be
    # being written and the round is not recorded yet. Stopping records it.
    config = make_config()
    with MemoryStore() as store:
        with pytest.raises(KeyboardInterrupt):
            _run(config, store, CheckpointStore(tmp_path), overlap=True, stop_at=3)

        (run,) = store.list_runs()
        rounds = store.rounds(run.run_id)
        assert [r.number for r in rounds] == [1, 2]
        assert run.status == "aborted"
        loaded = CheckpointStore(tmp_path).load(Path(str(rounds[-1].checkpoint)))
        assert loaded.digest() == rounds[-1].global_digest

        # ... and the run resumes from it to the model of an uninterrupted run.
        result = simulate(
            config, store=store, checkpoint_dir=tmp_path, resume=run.run_id
        )
        assert [r.number for r in store.rounds(run.run_id)] == [1, 2, 3, 4]
    with MemoryStore() as store:
        whole = simulate(config, store=store, checkpoint_dir=tmp_path / "whole")
    assert result.run.params.digest() == whole.run.params.digest()


class SlowCheckpoints(CheckpointStore):
    """Checkpoints whose write of round ``number`` waits for ``go``."""

    def __init__(self, root: Path, number: int) -> None:
        super().__init__(root)
        self.number = number
        self.started, self.go = threading.Event(), threading.Event()

    def save(self, run_id: str, round_number: int, params: Params, **kw) -> Path:  # type: ignore[no-untyped-def]
        if round_number == self.number:
            self.started.set()
            assert self.go.wait(30), "never let go"
        return super().save(run_id, round_number, params, **kw)


def _stack(thread_id: int) -> Iterator[FrameType]:
    """The frames ``thread_id`` runs, innermost first."""
    frame: FrameType | None = sys._current_frames().get(thread_id)
    while frame is not None:
        yield frame
        frame = frame.f_back


def _in(thread_id: int, name: str, innermost: str | None = None) -> bool:
    frames = list(_stack(thread_id))
    return any(f.f_code.co_name == name for f in frames) and (
        innermost is None or frames[0].f_code.co_name == innermost
    )


def _wait_for(what, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_ctrl_c_while_the_last_checkpoint_is_awaited_still_records_that_round(
    tmp_path: Path,
) -> None:
    # Round 3's jobs are out and the coordinator waits for round 2's checkpoint
    # (still being written) to record round 2: Ctrl-C comes in that wait. The
    # checkpoint is let go only once the run is being stopped; round 2 is kept.
    checkpoints = SlowCheckpoints(tmp_path, number=2)
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    seen: dict[str, bool] = {}

    def press_ctrl_c() -> None:
        assert main is not None
        assert checkpoints.started.wait(30)
        seen["waiting"] = _wait_for(lambda: _in(main, "flush", innermost="wait"))
        os.kill(os.getpid(), signal.SIGINT)
        seen["stopping"] = _wait_for(lambda: _in(main, "flush_after"))
        checkpoints.go.set()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        with MemoryStore() as store:
            with pytest.raises(KeyboardInterrupt):
                _run(make_config(), store, checkpoints, overlap=True)

            (run,) = store.list_runs()
            rounds = store.rounds(run.run_id)
            assert run.status == "aborted"
            assert [r.number for r in rounds] == [1, 2]
            loaded = checkpoints.load(Path(str(rounds[-1].checkpoint)))
            assert loaded.digest() == rounds[-1].global_digest
    finally:
        checkpoints.go.set()
        presser.join(30)
        signal.signal(signal.SIGINT, previous)
    assert seen == {"waiting": True, "stopping": True}


class InterruptedWhileTold(Watcher):
    """Ctrl-C while the progress display is told that round ``number`` finished."""

    def __init__(self, store: RunStore, checkpoints: CheckpointStore, number: int):
        super().__init__(store, checkpoints)
        self.number = number

    def round_finished(self, summary: RoundSummary) -> None:
        super().round_finished(summary)
        if summary.number == self.number:
            raise KeyboardInterrupt


def test_ctrl_c_while_the_observer_is_told_keeps_the_round_and_closes_the_run(
    tmp_path: Path,
) -> None:
    # With overlap, round 2's end (record, then observers) runs once round 3's jobs
    # are out; the interrupt comes from the observer. The round stays recorded,
    # the observer is not told twice, and the run is closed as aborted.
    with MemoryStore() as store:
        watcher = InterruptedWhileTold(store, CheckpointStore(tmp_path), number=2)
        with pytest.raises(KeyboardInterrupt):
            simulate(
                make_config(), store=store, checkpoint_dir=tmp_path, observer=watcher
            )

        (run,) = store.list_runs()
        assert run.status == "aborted"
        assert [r.number for r in store.rounds(run.run_id)] == [1, 2]
        assert watcher.heard.count(("finished", 2)) == 1
        assert watcher.problems == []
