"""Participants in warm worker processes, models through shared memory.

Each site belongs to one worker (site ``i`` to worker ``i mod W``), which loads its data
once and keeps it for the whole run. The global model is written once per round into a
shared segment that every worker maps; each update comes back in a slot of the worker's
own segments, so a 1 GB model is never pickled or piped. A worker that hangs past the
deadline is killed and replaced; one that dies makes its jobs fail with the exit code.

With ``start_method = "forkserver"`` (the default where the platform has it), workers
fork from a server that imported what they need in advance
(:mod:`accord.simulation.preload`).

A worker has as many update slots as fit in a small budget (one for a large model, up
to 64 for a small one), so that it can run ahead of the coordinator; it trains before
it takes a slot, so even with one it trains its next site while the coordinator folds
the previous update. A plain round under ``[strategy] max_norm_ratio`` (the default)
may hold all its updates until the last is in (it folds one earlier only once no
answer to come can refuse it), so then a worker has at least one slot per site it
serves: shared memory for a whole round's updates. A worker writes into its
lowest-numbered free slot, so slots a round never needs are never touched and cost
no memory. Released slots go back in one message when the coordinator is about to
wait (or half the slots are waiting), not one message per update. A worker sends
each update's digest and L2 norm, computed as it wrote the update
(:func:`~accord.simulation.jobs.write_update`), so the round reads no value of it
before folding it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Literal, cast

from accord.config import FedConfig
from accord.coordinator.executor import (
    EvalDone,
    Event,
    JobFailed,
    SecAggReply,
    TrainDone,
    TrainJob,
)
from accord.errors import ConfigError, TaskError, UpdateRejected
from accord.params import Params, ParamSpec
from accord.simulation.compression import decode_into
from accord.simulation.frames import receive_frame, send_frame
from accord.simulation.preload import (
    preload_modules,
    thread_env,
    threads_per_worker,
    warm_up,
)
from accord.simulation.worker import WorkerSetup, receive, send, worker_main

__all__ = ["ProcessExecutor", "preload_modules", "warm_up"]

logger = logging.getLogger(__name__)
_START_TIMEOUT_S = 300.0
_POLL_S = 0.25
#: Shared memory for one worker's update slots: as many slots as fit, within bounds.
_SLOT_BUDGET_BYTES = 4 * 2**20
_MIN_SLOTS, _MAX_SLOTS = 1, 64
# (round, kind, participant)
_Key = tuple[int, Literal["train", "eval", "secagg"], str]


@dataclass
class _Handle:
    index: int
    process: BaseProcess
    conn: Connection
    slots: list[SharedMemory]
    views: list[Params]
    outstanding: dict[_Key, float] = field(default_factory=dict)
    to_release: list[int] = field(default_factory=list)
    ready: bool = False


def _slots_for(
    nbytes: int, *, holds_round: bool = False, sites: int = 0, workers: int = 1
) -> int:
    """Slots per worker: what fits the budget, or a round's worth where it is held.

    A round under ``[strategy] max_norm_ratio`` holds every update until the last
    is in (:mod:`accord.coordinator.round`), so each worker needs a slot for each
    of its sites, or it would wait for a slot the round releases only at its end.
    """
    fits = max(_MIN_SLOTS, min(_MAX_SLOTS, _SLOT_BUDGET_BYTES // max(nbytes, 1)))
    if not holds_round:
        return fits
    return max(fits, -(-sites // max(workers, 1)))


def _holds_round(config: FedConfig) -> bool:
    """Whether a plain round of ``config`` holds its updates until the last is in."""
    plain = config.secure_aggregation.mode == "off"
    return plain and config.strategy.max_norm_ratio > 0


class ProcessExecutor:
    """Runs jobs in ``workers`` processes that stay up for the whole run."""

    def __init__(
        self,
        config: FedConfig,
        participants: Sequence[str],
        spec: ParamSpec,
        *,
        workers: int,
        slots_per_worker: int | None = None,
        ckks_secret: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("ProcessExecutor needs at least one worker")
        self._config = config
        self._clock = clock  # the deadlines of next_event (tests skip it ahead)
        self._participants = tuple(participants)
        self._index = {p: i for i, p in enumerate(self._participants)}
        self._spec = spec
        self._nbytes = max(spec.packed_nbytes, 1)
        self._slots_per_worker = slots_per_worker or _slots_for(
            self._nbytes,
            holds_round=_holds_round(config),
            sites=len(participants),
            workers=workers,
        )
        self._release_batch = max(1, self._slots_per_worker // 2)
        self._ctx = cast("SpawnContext", mp.get_context(config.simulation.start_method))
        self._threads = threads_per_worker(workers)
        warm_up(config)
        self._global = SharedMemory(create=True, size=self._nbytes)
        self._events: collections.deque[Event] = collections.deque()
        self._handles: list[_Handle] = []
        self._worker_count = min(workers, len(self._participants))
        self._lent: dict[int, tuple[_Handle, int]] = {}  # token -> slot held by caller
        self._tokens = 0
        # The sites' Ed25519 identity keys (private, raw), for secure rounds only:
        # made here so a restarted worker gets its sites' same keys back.
        self._ckks_secret = ckks_secret or b""
        self._identities: dict[str, bytes] = {}
        if config.secure_aggregation.mode != "off":
            from accord.simulation.secure import identity_keys

            self._identities = identity_keys(self._participants)
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
        return self._handles[self._index[participant] % len(self._handles)]

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
            threads=self._threads,
            identities=tuple(
                (p, key.hex())
                for p, key in self._identities.items()
                if self._index[p] % self._worker_count == index
            ),
            ckks_secret=self._ckks_secret.hex(),
        )
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(child, setup),
            name=f"accord-worker-{index}",
            daemon=True,
        )
        with thread_env(self._threads):
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

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        """Write the global model where every worker reads it."""
        self._spec.pack_into(params, self._global.buf)

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Send each worker its share of the jobs in one message."""
        grouped: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        now = time.monotonic()
        # A secure round's sites share one job (its roster and keys): JSON once.
        secure: dict[int, str] = {}
        for job in jobs:
            h = self._owner(job.participant)
            h.outstanding[(round_number, "train", job.participant)] = now
            c = job.config
            item: dict[str, Any] = {
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
            if job.secure is not None:
                if id(job.secure) not in secure:
                    secure[id(job.secure)] = job.secure.to_json()
                item["secure"] = secure[id(job.secure)]
            grouped[h.index].append(item)
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

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        """Each site's Ed25519 public key (secure rounds must be configured)."""
        from accord.simulation.secure import public_key

        missing = [p for p in participants if p not in self._identities]
        if missing:
            raise ConfigError(
                f"no identity key for {', '.join(missing)}: the simulation was "
                "started without secure aggregation"
            )
        return {p: public_key(self._identities[p]) for p in participants}

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        """Send each worker its sites' messages for ``stage``: a header, then frames."""
        grouped: dict[int, list[str]] = collections.defaultdict(list)
        now = time.monotonic()
        for p in payloads:
            h = self._owner(p)
            h.outstanding[(round_number, "secagg", p)] = now
            grouped[h.index].append(p)
        for index, names in grouped.items():
            h = self._handles[index]
            header = {
                "op": "secagg",
                "round": round_number,
                "stage": stage,
                "participants": names,
            }
            try:
                send(h.conn, header)
                for p in names:
                    send_frame(h.conn, payloads[p])
            except (BrokenPipeError, OSError):
                self._on_death(h)

    def _send(self, h: _Handle, message: dict[str, Any]) -> None:
        try:
            send(h.conn, message)
        except (BrokenPipeError, OSError):
            self._on_death(h)

    def next_event(self, timeout: float | None) -> Event | None:
        """Wait for the next message from any worker, or a worker's death."""
        deadline = None if timeout is None else self._clock() + timeout
        while not self._events:
            for h in self._handles:  # about to wait: give back what was released
                if h.to_release:
                    self._flush(h)
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                return None
            conns: dict[object, _Handle] = {h.conn: h for h in self._handles}
            sentinels = {h.process.sentinel: h for h in self._handles}
            # In slices, so that the deadline is read from the clock again.
            wait_s = _POLL_S if remaining is None else min(remaining, _POLL_S)
            ready = wait([h.conn for h in self._handles] + list(sentinels), wait_s)
            for obj in ready:
                h = sentinels[obj] if isinstance(obj, int) else conns[obj]
                if self._handles[h.index] is not h:
                    continue  # restarted while handling an earlier object of `ready`
                if not isinstance(obj, int):
                    self._read_available(h)
                elif not h.conn.poll(0):  # read what it sent before it died first
                    self._on_death(h)
        return self._events.popleft()

    def _read_available(self, h: _Handle, limit: int = 64) -> None:
        """Read what ``h`` has sent, up to ``limit`` messages, without blocking."""
        for _ in range(limit):
            self._read(h)
            if self._handles[h.index] is not h or not h.conn.poll(0):
                return

    def _read(self, h: _Handle) -> None:
        try:
            m = receive(h.conn)
            # A payload's frame follows its header: read both before acting on them.
            payload = (
                receive_frame(h.conn)
                if m["op"] == "secagg_done"
                or (m["op"] == "train_done" and "compressed" in m)
                else None
            )
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
            if payload is not None:
                self._decompressed(h, m, payload)
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
                    token=self._lend(h, int(m["slot"])),
                    # The worker proved the values finite as it wrote them (its
                    # norm is None otherwise): the round does not read them again.
                    values_checked=m.get("norm") is not None,
                    norm=None if m.get("norm") is None else float(m["norm"]),
                )
            )
        elif op == "secagg_done" and payload is not None:
            stage = str(m["stage"])
            kind: Literal["train", "secagg"] = (
                "train" if stage in ("advertise", "ckks_upload") else "secagg"
            )
            if h.outstanding.pop((rnd, kind, p), None) is not None:
                self._events.append(
                    SecAggReply(p, rnd, stage, payload, float(m["duration"]))
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

    def _decompressed(self, h: _Handle, m: dict[str, Any], payload: bytes) -> None:
        """Decode a site's compressed update over its slot; refuse a malformed one."""
        p, rnd, slot = m["participant"], int(m["round"]), int(m["slot"])
        update = self._spec.view(h.slots[slot].buf, writable=True)
        try:
            decode_into(self._config.compression, rnd, payload, update)
        except UpdateRejected as exc:
            self._send(h, {"op": "release", "slot": slot})
            self._events.append(
                JobFailed(p, rnd, "train", "rejected", exc.reason, 0.0, True)
            )
            return
        self._events.append(
            TrainDone(
                participant=p,
                round=rnd,
                update=h.views[slot],
                num_examples=int(m["num_examples"]),
                duration_s=float(m["duration"]),
                metrics=m["metrics"],
                token=self._lend(h, slot),
                bytes_sent=len(payload),
            )
        )

    def _on_death(self, h: _Handle) -> None:
        h.process.join(timeout=2)  # the pipe closes just before the exit code is known
        code = h.process.exitcode
        reason = f"worker process exited unexpectedly (exit code {code})"
        logger.warning("worker %d died: %s", h.index, reason)
        self._fail_outstanding(h, reason)
        self._restart(h)

    def _fail_outstanding(self, h: _Handle, reason: str) -> None:
        """End every job still waiting on ``h`` with a failure, oldest first."""
        now = time.monotonic()
        for (rnd, kind, p), t0 in sorted(h.outstanding.items()):
            self._events.append(JobFailed(p, rnd, kind, "failed", reason, now - t0))
        h.outstanding.clear()

    def _restart(self, h: _Handle) -> None:
        if h.process.is_alive():
            h.process.kill()
        h.process.join(timeout=10)
        h.conn.close()
        self._handles[h.index] = self._start(h.index, slots=h.slots)

    def release(self, event: TrainDone) -> None:
        """Give the slot back to the worker that wrote it."""
        h, slot = self._lent.pop(event.token)
        if self._handles[h.index] is h:  # a restarted worker starts with all slots free
            h.to_release.append(slot)
            if len(h.to_release) >= self._release_batch:
                self._flush(h)

    def _flush(self, h: _Handle) -> None:
        slots, h.to_release = h.to_release, []
        self._send(h, {"op": "release", "slots": slots})

    def _lend(self, h: _Handle, slot: int) -> int:
        self._tokens += 1
        self._lent[self._tokens] = (h, slot)
        return self._tokens

    def owing(self) -> tuple[frozenset[tuple[str, str]], int]:
        """(participant, kind) of the jobs not answered yet, and the events queued.

        When no event is queued, every answer read so far has been taken by
        :meth:`next_event`: the jobs named are those the round still waits on
        (what accord's tests skip their clocks ahead on).
        """
        jobs = frozenset(
            (p, str(kind)) for h in self._handles for (_, kind, p) in h.outstanding
        )
        return jobs, len(self._events)

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Kill and replace workers still busy with these participants' jobs."""
        drop = set(participants)
        for h in list(self._handles):
            hung = [k for k in h.outstanding if k[0] == round_number and k[2] in drop]
            if not hung:
                continue
            for k in hung:
                del h.outstanding[k]
            self._fail_outstanding(
                h, "worker restarted after another site's job passed the deadline"
            )
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
        # A caller still holds a view (say, an exception's frame keeps an update):
        # the mapping then lives until that view dies and is unmapped with it. Forget
        # it here, or SharedMemory.__del__ would try to close it again and fail.
        shm.__dict__["_mmap"] = None
        logger.debug(
            "shared segment %s still viewed; unmapped with its last view", shm.name
        )
    shm.unlink()
