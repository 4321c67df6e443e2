"""Participants in warm worker processes, models through shared memory.

Each site belongs to one worker (site ``i`` to worker ``i mod W``), which loads its data
once and keeps it for the whole run. The global model is written once per round into a
shared segment that every worker maps; each update comes back in a slot of the worker's
own segments, so a 1 GB model is never pickled or piped. A worker that hangs past the
deadline is killed and replaced; one that dies makes its jobs fail with the exit code.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Literal, cast

from accord.config import FedConfig
from accord.coordinator.executor import EvalDone, Event, JobFailed, TrainDone, TrainJob
from accord.errors import TaskError
from accord.params import Params, ParamSpec
from accord.simulation.worker import WorkerSetup, receive, send, worker_main

__all__ = ["ProcessExecutor"]

logger = logging.getLogger(__name__)
_START_TIMEOUT_S = 300.0


_Key = tuple[int, Literal["train", "eval"], str]  # (round, kind, participant)


@dataclass
class _Handle:
    index: int
    process: BaseProcess
    conn: Connection
    slots: list[SharedMemory]
    views: list[Params]
    outstanding: dict[_Key, float] = field(default_factory=dict)
    ready: bool = False


@contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """Children inherit the environment: limit each worker's BLAS/torch threads."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: str(threads) for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ProcessExecutor:
    """Runs jobs in ``workers`` processes that stay up for the whole run."""

    def __init__(
        self,
        config: FedConfig,
        participants: Sequence[str],
        spec: ParamSpec,
        *,
        workers: int,
        slots_per_worker: int = 2,
    ) -> None:
        if workers < 1:
            raise ValueError("ProcessExecutor needs at least one worker")
        self._config = config
        self._participants = tuple(participants)
        self._spec = spec
        self._nbytes = max(spec.packed_nbytes, 1)
        self._slots_per_worker = slots_per_worker
        self._ctx = cast("SpawnContext", mp.get_context(config.simulation.start_method))
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._global = SharedMemory(create=True, size=self._nbytes)
        self._events: collections.deque[Event] = collections.deque()
        self._handles: list[_Handle] = []
        try:
            for i in range(min(workers, len(self._participants))):
                self._handles.append(self._start(i))
            self._await_ready()
        except BaseException:
            self.close()
            raise

    @property
    def participants(self) -> tuple[str, ...]:
        """Site names in partition order."""
        return self._participants

    def _owner(self, participant: str) -> _Handle:
        return self._handles[self._participants.index(participant) % len(self._handles)]

    def _start(self, index: int, slots: list[SharedMemory] | None = None) -> _Handle:
        if slots is None:
            slots = [
                SharedMemory(create=True, size=self._nbytes)
                for _ in range(self._slots_per_worker)
            ]
        setup = WorkerSetup(
            config_json=json.dumps(self._config.to_json_dict()),
            base_dir=self._config.base_dir,
            spec_json=self._spec.to_json(),
            global_shm=self._global.name,
            slot_shms=tuple(s.name for s in slots),
        )
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, setup),
            name=f"accord-worker-{index}",
            daemon=True,
        )
        with _thread_env(self._threads):
            process.start()
        child.close()
        views = [self._spec.view(s.buf) for s in slots]
        return _Handle(index, process, parent, slots, views)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        for h in self._handles:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not h.conn.poll(remaining):
                raise TaskError(
                    f"worker {h.index} did not start in {_START_TIMEOUT_S} s"
                )
            try:
                message = receive(h.conn)
            except EOFError:
                raise TaskError(
                    f"worker {h.index} exited during start-up (code "
                    f"{h.process.exitcode}); run with --workers 0 to see the traceback"
                ) from None
            if message["op"] == "setup_failed":
                raise TaskError(
                    f"a simulation worker could not start: {message['reason']}"
                )
            h.ready = True

    def publish(self, params: Params) -> None:
        """Write the global model where every worker reads it."""
        self._spec.pack_into(params, self._global.buf)

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Send each worker its share of the jobs in one message."""
        grouped: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        now = time.monotonic()
        for job in jobs:
            h = self._owner(job.participant)
            h.outstanding[(round_number, "train", job.participant)] = now
            c = job.config
            grouped[h.index].append(
                {
                    "participant": job.participant,
                    "config": {
                        "epochs": c.epochs,
                        "batch_size": c.batch_size,
                        "learning_rate": c.learning_rate,
                        "seed": c.seed,
                        "round": c.round,
                        "participant": c.participant,
                        "options": dict(c.options),
                    },
                }
            )
        for index, items in grouped.items():
            self._send(
                self._handles[index],
                {"op": "train", "round": round_number, "jobs": items},
            )

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Send each worker the evaluation jobs of its sites."""
        grouped: dict[int, list[str]] = collections.defaultdict(list)
        now = time.monotonic()
        for p in participants:
            h = self._owner(p)
            h.outstanding[(round_number, "eval", p)] = now
            grouped[h.index].append(p)
        for index, items in grouped.items():
            self._send(
                self._handles[index],
                {"op": "eval", "round": round_number, "participants": items},
            )

    def _send(self, h: _Handle, message: dict[str, Any]) -> None:
        try:
            send(h.conn, message)
        except (BrokenPipeError, OSError):
            self._on_death(h)

    def next_event(self, timeout: float | None) -> Event | None:
        """Wait for the next message from any worker, or a worker's death."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._events:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            conns = {h.conn: h for h in self._handles}
            sentinels = {h.process.sentinel: h for h in self._handles}
            ready = wait([*conns, *sentinels], remaining)
            for obj in ready:
                if isinstance(obj, int):
                    if not sentinels[obj].conn.poll(0):
                        self._on_death(sentinels[obj])
                elif obj in conns:
                    self._read(conns[obj])
        return self._events.popleft()

    def _read(self, h: _Handle) -> None:
        try:
            m = receive(h.conn)
        except (EOFError, OSError):
            self._on_death(h)
            return
        op, p, rnd = m["op"], m.get("participant", ""), int(m.get("round", 0))
        if op == "ready":
            h.ready = True
        elif op == "setup_failed":
            logger.error("worker %d could not restart: %s", h.index, m["reason"])
        elif op == "train_done":
            if h.outstanding.pop((rnd, "train", p), None) is None:
                self._send(h, {"op": "release", "slot": m["slot"]})  # abandoned job
                return
            self._events.append(
                TrainDone(
                    participant=p,
                    round=rnd,
                    update=h.views[m["slot"]],
                    num_examples=int(m["num_examples"]),
                    duration_s=float(m["duration"]),
                    metrics=m["metrics"],
                    update_digest=m["digest"],
                    token=h.index * 1_000 + int(m["slot"]),
                )
            )
        elif op == "eval_done":
            if h.outstanding.pop((rnd, "eval", p), None) is not None:
                self._events.append(
                    EvalDone(
                        p,
                        rnd,
                        m["metrics"],
                        int(m["num_examples"]),
                        float(m["duration"]),
                    )
                )
        elif (
            op == "failed" and h.outstanding.pop((rnd, m["kind"], p), None) is not None
        ):
            self._events.append(
                JobFailed(
                    p,
                    rnd,
                    m["kind"],
                    m["status"],
                    m["reason"],
                    float(m.get("duration", 0.0)),
                )
            )

    def _on_death(self, h: _Handle) -> None:
        code = h.process.exitcode
        reason = f"worker process exited unexpectedly (exit code {code})"
        logger.warning("worker %d died: %s", h.index, reason)
        for (rnd, kind, p), t0 in sorted(h.outstanding.items()):
            self._events.append(
                JobFailed(
                    p,
                    rnd,
                    kind,
                    "failed",
                    reason,
                    time.monotonic() - t0,
                )
            )
        h.outstanding.clear()
        self._restart(h)

    def _restart(self, h: _Handle) -> None:
        if h.process.is_alive():
            h.process.kill()
        h.process.join(timeout=10)
        h.conn.close()
        self._handles[h.index] = self._start(h.index, slots=h.slots)

    def release(self, event: TrainDone) -> None:
        """Give the slot back to the worker that wrote it."""
        h = self._handles[event.token // 1_000]
        self._send(h, {"op": "release", "slot": event.token % 1_000})

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Kill and replace workers still busy with these participants' jobs."""
        drop = set(participants)
        for h in list(self._handles):
            hung = [k for k in h.outstanding if k[0] == round_number and k[2] in drop]
            if not hung:
                continue
            for k in hung:
                del h.outstanding[k]
            for (rnd, kind, p), t0 in sorted(h.outstanding.items()):
                self._events.append(
                    JobFailed(
                        p,
                        rnd,
                        kind,
                        "failed",
                        "worker restarted after another site's job passed the deadline",
                        time.monotonic() - t0,
                    )
                )
            h.outstanding.clear()
            logger.warning("restarting worker %d (jobs past the deadline)", h.index)
            self._restart(h)

    def close(self) -> None:
        """Stop every worker and free the shared memory."""
        for h in self._handles:
            with contextlib.suppress(BrokenPipeError, OSError):
                send(h.conn, {"op": "stop"})
        for h in self._handles:
            h.process.join(timeout=5)
            if h.process.is_alive():
                h.process.kill()
                h.process.join(timeout=5)
            h.conn.close()
            h.views.clear()
            for shm in h.slots:
                _free(shm)
        self._handles.clear()
        _free(self._global)


def _free(shm: SharedMemory) -> None:
    """Unlink a segment; unmapping waits for the last view a caller may still hold."""
    try:
        shm.close()
    except BufferError:
        logger.debug("shared segment %s still viewed; unmapped at exit", shm.name)
    shm.unlink()
