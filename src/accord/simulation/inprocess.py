"""Every participant in the coordinator's process, one job at a time (``--workers 0``).

Meant for debugging: breakpoints and tracebacks work, nothing is forked. Jobs run
lazily inside :meth:`InProcessExecutor.next_event`, so the coordinator still sees a
deadline pass between jobs; a job that hangs cannot be interrupted here (use worker
processes for that), but one that finishes after the deadline is reported as late.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from accord.coordinator.executor import EvalDone, Event, JobFailed, TrainDone, TrainJob
from accord.params import Params
from accord.simulation.context import SimContext
from accord.simulation.jobs import JobError, run_eval, run_train

__all__ = ["InProcessExecutor"]

_Job = tuple[Literal["train", "eval"], int, str, TrainJob | None]


class InProcessExecutor:
    """Runs jobs synchronously, in submission order."""

    def __init__(self, context: SimContext) -> None:
        self._ctx = context
        self._global: Params | None = None
        self._queue: collections.deque[_Job] = collections.deque()
        self._buffer: Params | None = None

    @property
    def participants(self) -> tuple[str, ...]:
        """Site names in partition order."""
        return self._ctx.participants

    def publish(self, params: Params) -> None:
        """Keep a read-only copy of the global model."""
        frozen = params.copy()
        for arr in frozen.values():
            arr.flags.writeable = False
        self._global = frozen
        self._buffer = Params({n: np.empty_like(a) for n, a in params.items()})

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Queue training jobs."""
        self._queue.extend(("train", round_number, j.participant, j) for j in jobs)

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Queue evaluation jobs."""
        self._queue.extend(("eval", round_number, p, None) for p in participants)

    def next_event(self, timeout: float | None) -> Event | None:
        """Run the next queued job and report it; None when nothing is queued."""
        if not self._queue:
            if timeout:
                time.sleep(min(timeout, 0.01))
            return None
        if self._global is None or self._buffer is None:
            raise RuntimeError("publish() the global model before running jobs")
        kind, number, participant, job = self._queue.popleft()
        # Same BLAS thread count as a worker process, so results match bit for bit.
        with threadpool_limits(limits=1):
            return self._run(kind, number, participant, job)

    def _run(
        self, kind: str, number: int, participant: str, job: TrainJob | None
    ) -> Event:
        assert self._global is not None and self._buffer is not None
        site = self._ctx.site(participant)
        if kind == "eval":
            ev = run_eval(self._ctx.task, site.holdout, self._global)
            if isinstance(ev, JobError):
                return JobFailed(participant, number, "eval", ev.status, ev.reason)
            return EvalDone(
                participant, number, ev.metrics, ev.num_examples, ev.duration_s
            )
        assert job is not None
        out = run_train(
            self._ctx.task, site.train, self._global, job.config, self._buffer
        )
        if isinstance(out, JobError):
            return JobFailed(
                participant, number, "train", out.status, out.reason, out.duration_s
            )
        return TrainDone(
            participant=participant,
            round=number,
            update=self._buffer,
            num_examples=out.num_examples,
            duration_s=out.duration_s,
            metrics=out.metrics,
            update_digest=self._buffer.digest(),
        )

    def release(self, event: TrainDone) -> None:
        """Nothing to free: the single update buffer is reused by the next job."""

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Drop queued jobs of these participants."""
        drop = set(participants)
        self._queue = collections.deque(
            j for j in self._queue if not (j[1] == round_number and j[2] in drop)
        )

    def close(self) -> None:
        """Forget queued jobs."""
        self._queue.clear()
