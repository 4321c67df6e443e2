"""Participants as Ray actors: ``[simulation] engine = "ray"``.

Where a simulation outgrows one machine's worker processes, it runs on Ray, the
engine such users already have. :class:`RayExecutor` implements the same
:class:`~accord.coordinator.executor.Executor` as :class:`~accord.simulation.pool.
ProcessExecutor`, so the round logic, the store, the ledger and every check are the
ones the other executors run; only the transport differs:

* ``workers`` actors (:class:`~accord.simulation.ray_host.SiteHost`), site ``i`` in
  actor ``i mod W`` as with worker processes; each loads its data once.
* The global model is put once per round in Ray's object store (one packed array);
  every call maps it read-only. Updates come back as packed rows of one array per
  call, mapped without a copy from the object store, and are kept alive only until
  the coordinator releases them.
* Jobs are sent in batches (many small sites per call, one big model per call), so
  that a round of 10,000 sites is a few hundred Ray calls, not 10,000.
* A batch whose actor died fails its sites' jobs with the reason and the actor is
  restarted (its data loaded again); :meth:`RayExecutor.abandon` kills and restarts
  an actor whose jobs passed the deadline.

Determinism: an actor trains with one BLAS thread and computes each update exactly
as a worker process does (:mod:`accord.simulation.jobs`), and the round folds
updates independently of their arrival order, so the final model's digest is the
process executor's for the same seed.

``address = "local"`` starts a private Ray instance bound to loopback, without its
dashboard, and stops it at :meth:`RayExecutor.close`; any other address
(``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``) joins that cluster, whose nodes
need accord installed and the data at the same path. A Ray already initialised by
the caller is used as it is, and left running.

Secure aggregation is refused (:mod:`accord.config`): its multi-stage rounds run in
worker processes only.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from accord.config import FedConfig
from accord.coordinator.executor import (
    EvalDone,
    Event,
    JobFailed,
    TrainDone,
    TrainJob,
)
from accord.errors import ConfigError, MissingExtraError, TaskError, UpdateRejected
from accord.params import Params, ParamSpec
from accord.simulation.compression import decode_into
from accord.simulation.preload import threads_per_worker
from accord.simulation.ray_host import SiteHost

__all__ = ["RayExecutor", "batch_size", "loopback_only", "start_ray"]

logger = logging.getLogger(__name__)
_START_TIMEOUT_S = 300.0
_POLL_S = 0.25
#: The most jobs in one call, and the bytes of updates one call may return.
_MAX_BATCH = 64
_BATCH_BYTES = 16 * 2**20
#: Calls queued per actor and round at least (so that a batch arriving does not
#: leave its actor idle while the coordinator folds it).
_CALLS_PER_ACTOR = 8
_Kind = Literal["train", "eval"]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            extra="ray", package="ray", feature='[simulation] engine = "ray"'
        ) from None
    return ray


#: Ray's switch that makes a node take 127.0.0.1 as its address (meant for
#: laptops); with it, every Ray server of the node listens on loopback only.
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_ray(address: str, *, num_cpus: int) -> bool:
    """Initialise Ray for a simulation; True if this call started it.

    ``"local"``: a new single-node instance whose servers (GCS, raylet, workers)
    listen on 127.0.0.1 only, without the dashboard, with ``num_cpus`` CPUs.
    ``ray.init(_node_ip_address="127.0.0.1")`` alone does not do it: Ray swaps a
    loopback address for the machine's reachable one and its gRPC servers then
    listen on every interface; Ray's single-machine mode (the switch above, read
    when Ray is imported and when it picks the node's address) keeps the node on
    loopback. Otherwise join the cluster at ``address``. A Ray the caller already
    initialised is used as it is.
    """
    if address == "local":
        previous = os.environ.get(_LOOPBACK_SWITCH)
        os.environ[_LOOPBACK_SWITCH] = "0"
    ray = _ray()
    if ray.is_initialized():
        if address == "local":
            _restore(previous)
        return False
    common: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
    }
    if address != "local":
        ray.init(address=address, **common)
        return True
    constants: Any = sys.modules.get("ray._private.ray_constants")
    switch = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    try:
        if constants is not None and switch is not None:
            # Ray was imported before the switch was set: set what it read.
            constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            address="local",
            num_cpus=num_cpus,
            _node_ip_address="127.0.0.1",
            **common,
        )
    finally:
        if constants is not None and switch is not None:
            constants.ENABLE_RAY_CLUSTER = switch
        _restore(previous)
    if not loopback_only(ray):
        logger.warning(
            "the local Ray instance took address %s, not loopback: its servers may "
            "be reachable from the network",
            ray.get_runtime_context().gcs_address,
        )
    return True


def _restore(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(_LOOPBACK_SWITCH, None)
    else:
        os.environ[_LOOPBACK_SWITCH] = previous


def loopback_only(ray: Any) -> bool:
    """Whether the running Ray's GCS (hence its node) is on loopback."""
    host = str(ray.get_runtime_context().gcs_address).rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]", "::1")


def batch_size(jobs: int, actors: int, nbytes: int) -> int:
    """Jobs per call: a few calls per actor, within :data:`_MAX_BATCH` and bytes."""
    per_actor = -(-jobs // max(actors, 1))
    by_calls = -(-per_actor // _CALLS_PER_ACTOR)
    by_bytes = max(1, _BATCH_BYTES // max(nbytes, 1))
    return max(1, min(_MAX_BATCH, by_calls, by_bytes))


@dataclass
class _Call:
    """One outstanding Ray call: a batch of one actor's jobs."""

    actor: int
    kind: _Kind
    round: int
    participants: tuple[str, ...]
    started: float


@dataclass
class _Result:
    """A call's returned arrays, alive while an update in them is lent out."""

    updates: np.ndarray[Any, Any]
    lent: int = 0


@dataclass
class _Actor:
    index: int
    handle: Any
    outstanding: dict[tuple[int, _Kind, str], float] = field(default_factory=dict)


class RayExecutor:
    """Runs jobs in ``workers`` Ray actors that stay up for the whole run."""

    def __init__(
        self,
        config: FedConfig,
        participants: Sequence[str],
        spec: ParamSpec,
        *,
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("RayExecutor needs at least one actor")
        self._ray = _ray()
        self._config = config
        self._clock = clock
        self._participants = tuple(participants)
        self._index = {p: i for i, p in enumerate(self._participants)}
        self._spec = spec
        self._nbytes = max(spec.packed_nbytes, 1)
        self._count = min(workers, len(self._participants))
        self._owns_ray = start_ray(config.simulation.address, num_cpus=self._count)
        self._remote = self._ray.remote(num_cpus=1, max_restarts=0)(SiteHost)
        self._setup = (
            json.dumps(config.to_json_dict()),
            config.base_dir,
            spec.to_json(),
            threads_per_worker(workers),
        )
        self._global: Any = None
        self._calls: dict[Any, _Call] = {}
        self._events: collections.deque[Event] = collections.deque()
        self._results: dict[int, _Result] = {}  # id -> arrays with lent updates
        self._lent: dict[int, int] = {}  # token -> result id
        self._tokens = 0
        self._actors: list[_Actor] = []
        try:
            self._actors = [self._start(i) for i in range(self._count)]
            self._await_ready()
        except BaseException:
            self.close()
            raise

    @property
    def participants(self) -> tuple[str, ...]:
        """Site names in partition order."""
        return self._participants

    def _start(self, index: int) -> _Actor:
        handle = self._remote.options(name=None).remote(*self._setup)
        return _Actor(index, handle)

    def _await_ready(self) -> None:
        refs = {a.handle.ready.remote(): a for a in self._actors}
        ready, pending = self._ray.wait(
            list(refs), num_returns=len(refs), timeout=_START_TIMEOUT_S
        )
        if pending:
            raise TaskError(
                f"{len(pending)} Ray actor(s) did not start in {_START_TIMEOUT_S} s "
                "(does the cluster have a free CPU per worker?)"
            )
        for ref in ready:
            try:
                self._ray.get(ref)
            except self._ray.exceptions.RayError as exc:
                raise TaskError(
                    f"a simulation actor could not start: {_cause(exc)}"
                ) from None

    def _owner(self, participant: str) -> _Actor:
        return self._actors[self._index[participant] % len(self._actors)]

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        """Put the packed global model in the object store, once per round."""
        packed = np.zeros(self._nbytes, dtype=np.uint8)
        self._spec.pack_into(params, packed)
        self._global = self._ray.put(packed)

    def _batches(self, items: Sequence[str]) -> dict[int, list[list[str]]]:
        """Each actor's share of ``items``, cut into calls."""
        grouped: dict[int, list[str]] = collections.defaultdict(list)
        for p in items:
            grouped[self._owner(p).index].append(p)
        size = batch_size(len(items), len(self._actors), self._nbytes)
        return {
            i: [names[k : k + size] for k in range(0, len(names), size)]
            for i, names in grouped.items()
        }

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Send each actor its share of the jobs, in batches."""
        if self._global is None:
            raise RuntimeError("publish() the global model before running jobs")
        by_name = {j.participant: j for j in jobs}
        now = time.monotonic()
        for index, batches in self._batches(list(by_name)).items():
            actor = self._actors[index]
            for names in batches:
                items = [_job_json(by_name[p]) for p in names]
                ref = actor.handle.train.remote(
                    round_number, json.dumps(items), self._global
                )
                self._track(ref, actor, "train", round_number, names, now)

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Send each actor the evaluation jobs of its sites, in batches."""
        if self._global is None:
            raise RuntimeError("publish() the global model before running jobs")
        now = time.monotonic()
        for index, batches in self._batches(list(participants)).items():
            actor = self._actors[index]
            for names in batches:
                ref = actor.handle.evaluate.remote(round_number, names, self._global)
                self._track(ref, actor, "eval", round_number, names, now)

    def _track(
        self,
        ref: Any,
        actor: _Actor,
        kind: _Kind,
        round_number: int,
        names: Sequence[str],
        now: float,
    ) -> None:
        self._calls[ref] = _Call(actor.index, kind, round_number, tuple(names), now)
        for p in names:
            actor.outstanding[(round_number, kind, p)] = now

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        """Refused: secure rounds do not run on Ray."""
        raise ConfigError(
            "secure aggregation is not implemented on the Ray engine; use "
            'engine = "process"',
            key="simulation.engine",
        )

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        """Refused: secure rounds do not run on Ray."""
        self.identity_keys(list(payloads))

    def next_event(self, timeout: float | None) -> Event | None:
        """The next job's outcome, reading whichever call finished first."""
        deadline = None if timeout is None else self._clock() + timeout
        while not self._events:
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                return None
            wait_s = _POLL_S if remaining is None else min(remaining, _POLL_S)
            if not self._calls:
                time.sleep(min(wait_s, 0.01))
                if remaining is not None:
                    return None
                continue
            ready, _ = self._ray.wait(list(self._calls), num_returns=1, timeout=wait_s)
            for ref in ready:
                call = self._calls.pop(ref, None)
                if call is not None:
                    self._read(ref, call)
        return self._events.popleft()

    def _read(self, ref: Any, call: _Call) -> None:
        actor = self._actors[call.actor]
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as exc:
            self._on_death(actor, f"Ray actor died ({_cause(exc)})")
            return
        except self._ray.exceptions.RayError as exc:
            self._fail_call(actor, call, f"Ray call failed: {_cause(exc)}")
            return
        if call.kind == "eval":
            self._read_eval(actor, call, json.loads(result))
        else:
            header, updates, payloads = result
            self._read_train(actor, call, json.loads(header), updates, payloads)

    def _read_eval(
        self, actor: _Actor, call: _Call, entries: list[dict[str, Any]]
    ) -> None:
        for e in entries:
            p = str(e["participant"])
            if actor.outstanding.pop((call.round, "eval", p), None) is None:
                continue  # abandoned
            if e["ok"]:
                self._events.append(
                    EvalDone(
                        p,
                        call.round,
                        e["metrics"],
                        int(e["num_examples"]),
                        float(e["duration"]),
                    )
                )
            else:
                self._events.append(_job_failed(p, call.round, "eval", e))

    def _read_train(
        self,
        actor: _Actor,
        call: _Call,
        entries: list[dict[str, Any]],
        updates: np.ndarray[Any, Any],
        payloads: np.ndarray[Any, Any],
    ) -> None:
        result = _Result(updates)
        key = id(result)
        for e in entries:
            p = str(e["participant"])
            if actor.outstanding.pop((call.round, "train", p), None) is None:
                continue  # abandoned
            if not e["ok"]:
                self._events.append(_job_failed(p, call.round, "train", e))
                continue
            if "offset" in e:
                lo = int(e["offset"])
                blob = payloads[lo : lo + int(e["length"])].tobytes()
                self._decompressed(p, call.round, e, blob)
                continue
            view = self._spec.view(updates[int(e["row"])].data)
            self._tokens += 1
            self._lent[self._tokens] = key
            result.lent += 1
            norm = e.get("norm")
            self._events.append(
                TrainDone(
                    participant=p,
                    round=call.round,
                    update=view,
                    num_examples=int(e["num_examples"]),
                    duration_s=float(e["duration"]),
                    metrics=e["metrics"],
                    update_digest=str(e["digest"]),
                    token=self._tokens,
                    # The actor proved the values finite as it wrote them (its
                    # norm is None otherwise): the round does not read them again.
                    values_checked=norm is not None,
                    norm=None if norm is None else float(norm),
                )
            )
        if result.lent:
            self._results[key] = result

    def _decompressed(
        self, p: str, round_number: int, e: Mapping[str, Any], blob: bytes
    ) -> None:
        """Decode a site's compressed update into a buffer of its own."""
        buffer = bytearray(self._nbytes)
        update = self._spec.view(buffer, writable=True)
        try:
            decode_into(self._config.compression, round_number, blob, update)
        except UpdateRejected as exc:
            self._events.append(
                JobFailed(p, round_number, "train", "rejected", exc.reason, 0.0, True)
            )
            return
        self._events.append(
            TrainDone(
                participant=p,
                round=round_number,
                update=update,
                num_examples=int(e["num_examples"]),
                duration_s=float(e["duration"]),
                metrics=e["metrics"],
                bytes_sent=len(blob),
            )
        )

    def _fail_call(self, actor: _Actor, call: _Call, reason: str) -> None:
        now = time.monotonic()
        for p in call.participants:
            t0 = actor.outstanding.pop((call.round, call.kind, p), None)
            if t0 is not None:
                self._events.append(
                    JobFailed(p, call.round, call.kind, "failed", reason, now - t0)
                )

    def _on_death(self, actor: _Actor, reason: str) -> None:
        logger.warning("Ray actor %d died: %s", actor.index, reason)
        self._fail_outstanding(actor, reason)
        self._restart(actor)

    def _fail_outstanding(self, actor: _Actor, reason: str) -> None:
        """End every job still waiting on ``actor`` with a failure, oldest first."""
        now = time.monotonic()
        for (rnd, kind, p), t0 in sorted(actor.outstanding.items()):
            self._events.append(JobFailed(p, rnd, kind, "failed", reason, now - t0))
        actor.outstanding.clear()

    def _restart(self, actor: _Actor) -> None:
        """Kill ``actor`` and start a fresh one in its place (its calls dropped)."""
        for ref in [r for r, c in self._calls.items() if c.actor == actor.index]:
            del self._calls[ref]
        self._ray.kill(actor.handle, no_restart=True)
        fresh = self._start(actor.index)
        self._actors[actor.index] = fresh
        try:
            self._ray.get(fresh.handle.ready.remote(), timeout=_START_TIMEOUT_S)
        except self._ray.exceptions.RayError as exc:
            logger.error("Ray actor %d could not restart: %s", actor.index, exc)

    def release(self, event: TrainDone) -> None:
        """Drop the call's arrays once none of its updates is lent out."""
        key = self._lent.pop(event.token, None)
        if key is None:
            return
        result = self._results[key]
        result.lent -= 1
        if result.lent == 0:
            del self._results[key]

    def owing(self) -> tuple[frozenset[tuple[str, str]], int]:
        """(participant, kind) of the jobs not answered yet, and the events queued."""
        jobs = frozenset(
            (p, str(kind)) for a in self._actors for (_, kind, p) in a.outstanding
        )
        return jobs, len(self._events)

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Kill and replace actors still busy with these participants' jobs."""
        drop = set(participants)
        for actor in list(self._actors):
            hung = [
                k for k in actor.outstanding if k[0] == round_number and k[2] in drop
            ]
            if not hung:
                continue
            for k in hung:
                del actor.outstanding[k]
            self._fail_outstanding(
                actor, "actor restarted after another site's job passed the deadline"
            )
            logger.warning(
                "restarting Ray actor %d (jobs past the deadline)", actor.index
            )
            self._restart(actor)

    def close(self) -> None:
        """Stop every actor; shut Ray down if this executor started it."""
        for actor in self._actors:
            self._ray.kill(actor.handle, no_restart=True)
        self._actors.clear()
        self._calls.clear()
        self._results.clear()
        self._lent.clear()
        self._global = None
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False


def _job_json(job: TrainJob) -> dict[str, Any]:
    c = job.config
    return {
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


def _job_failed(p: str, round_number: int, kind: _Kind, e: Mapping[str, Any]) -> Event:
    return JobFailed(
        p, round_number, kind, e["status"], str(e["reason"]), float(e["duration"])
    )


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
