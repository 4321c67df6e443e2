"""The worker process of a simulation: loads its sites once and runs their jobs.

A worker maps the global model from shared memory (read-only, no copy) and writes each
update into one of its own shared-memory slots; only small JSON messages cross the
pipe. The coordinator releases a slot once it has folded the update, so a worker can
train the next site while the previous update is being aggregated. Messages are JSON,
never pickle, to keep to the rule that holds across real trust boundaries.
"""

from __future__ import annotations

import collections
import heapq
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from accord.config import FedConfig
from accord.memory import keep_freed_memory
from accord.params import Params, ParamSpec
from accord.simulation.compression import SiteCompressors
from accord.simulation.context import SimContext, build_context
from accord.simulation.frames import receive_frame, send_frame
from accord.simulation.heap import settle_heap
from accord.simulation.jobs import (
    JobError,
    TrainOutcome,
    run_eval,
    train,
    write_update,
)
from accord.task.protocol import TrainConfig

__all__ = ["WorkerSetup", "worker_main"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """Everything a worker needs at start, as plain data."""

    config_json: str
    base_dir: str
    spec_json: str
    global_shm: str
    slot_shms: tuple[str, ...]
    threads: int = 1
    #: (site, raw Ed25519 private key as hex) for this worker's sites, secure runs
    identities: tuple[tuple[str, str], ...] = ()
    #: the key holder's secret CKKS context as hex (ckks runs)
    ckks_secret: str = ""


def attach(name: str) -> SharedMemory:
    """Map a segment the coordinator owns without this process ever unlinking it."""
    if sys.version_info >= (3, 13):
        return SharedMemory(name=name, track=False)
    # Before 3.13 attaching registers the segment again, with the resource tracker
    # this process shares with the coordinator (spawn and forkserver pass it on); the
    # tracker keeps a set, so the coordinator's unlink still settles it.
    return SharedMemory(name=name)


def send(conn: Connection, message: Mapping[str, Any]) -> None:
    """Send one JSON message."""
    conn.send_bytes(json.dumps(message).encode())


def receive(conn: Connection) -> dict[str, Any]:
    """Receive one JSON message."""
    message: dict[str, Any] = json.loads(conn.recv_bytes())
    return message


class _Worker:
    def __init__(
        self,
        conn: Connection,
        setup: WorkerSetup,
        ctx: SimContext,
        compressors: SiteCompressors,
    ) -> None:
        self.conn = conn
        self.ctx = ctx
        self.compressors = compressors
        self.sites = {s.name: s for s in ctx.data.sites}
        spec = ParamSpec.from_json(setup.spec_json)
        self._shms = [attach(setup.global_shm)] + [attach(n) for n in setup.slot_shms]
        self.global_params = spec.view(self._shms[0].buf)
        self.slots: list[Params] = [
            spec.view(s.buf, writable=True) for s in self._shms[1:]
        ]
        # Lowest-numbered first: a slot never needed is never written, so its
        # shared memory is never touched and costs no memory at all.
        self.free = list(range(len(self.slots)))  # a heap
        self.jobs: collections.deque[dict[str, Any]] = collections.deque()
        self.running = True
        self.identities = {p: bytes.fromhex(k) for p, k in setup.identities}
        self.ckks_secret = bytes.fromhex(setup.ckks_secret) or None
        self.sessions: dict[str, tuple[int, Any]] = {}  # site -> (round, session)
        self.verifier: Any = None  # the sites' shared signature Verifier, if secure
        self.masks: Any = None  # the sites' shared MaskGenerator, if secure
        self._scratch: Params | None = None  # a secure round's plain update

    def handle(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "train":
            self.jobs.extend(
                {"kind": "train", "round": message["round"], **j}
                for j in message["jobs"]
            )
        elif op == "eval":
            self.jobs.extend(
                {"kind": "eval", "round": message["round"], "participant": p}
                for p in message["participants"]
            )
        elif op == "secagg":
            # The header names the sites; one raw frame per site follows.
            for p in message["participants"]:
                payload = receive_frame(self.conn)
                self.jobs.append(
                    {
                        "kind": "secagg",
                        "round": message["round"],
                        "participant": p,
                        "stage": message["stage"],
                        "payload": payload,
                    }
                )
        elif op == "release":
            if "slots" in message:
                for slot in message["slots"]:
                    heapq.heappush(self.free, int(slot))
            else:
                heapq.heappush(self.free, int(message["slot"]))
        elif op == "stop":
            self.running = False

    def loop(self) -> None:
        while self.running:
            if not self.jobs:
                self.handle(receive(self.conn))
                continue
            while self.conn.poll(0):
                self.handle(receive(self.conn))
            if self.running:
                self.run(self.jobs.popleft())

    def acquire_slot(self) -> int | None:
        """A free update slot, waiting for the coordinator to release one if need be.

        Training runs before this, so a worker with one slot trains its next site
        while the coordinator is still folding the previous update. None: stopping.
        """
        while not self.free:
            if not self.running:
                return None
            self.handle(receive(self.conn))
        return heapq.heappop(self.free) if self.running else None

    def run(self, job: dict[str, Any]) -> None:
        site = self.sites[job["participant"]]
        head = {"participant": job["participant"], "round": job["round"]}
        if job["kind"] == "eval":
            personal = self.ctx.personal(job["participant"], job["round"])
            ev = run_eval(
                self.ctx.task, site.holdout, self.global_params, personal=personal
            )
            if isinstance(ev, JobError):
                send(
                    self.conn,
                    {
                        "op": "failed",
                        "kind": "eval",
                        **head,
                        "status": ev.status,
                        "reason": ev.reason,
                    },
                )
            else:
                send(
                    self.conn,
                    {
                        "op": "eval_done",
                        **head,
                        "metrics": ev.metrics,
                        "num_examples": ev.num_examples,
                        "duration": ev.duration_s,
                    },
                )
            return
        if job["kind"] == "secagg":
            self.step(job, head)
            return
        config = TrainConfig(**job["config"])
        if "secure" in job:
            self.open(job, head, config)
            return
        trained = train(self.ctx.task, site.train, self.global_params, config)
        slot: int | None = None
        if isinstance(trained, JobError):
            out: TrainOutcome | JobError = trained
        else:
            slot = self.acquire_slot()
            if slot is None:
                return  # told to stop while waiting for a slot
            out = write_update(
                trained, self.global_params, self.slots[slot], check=True
            )
        del trained  # the task's own copy of the model
        if isinstance(out, JobError):
            if slot is not None:
                heapq.heappush(self.free, slot)
            send(
                self.conn,
                {
                    "op": "failed",
                    "kind": "train",
                    **head,
                    "status": out.status,
                    "reason": out.reason,
                    "duration": out.duration_s,
                },
            )
            return
        assert slot is not None  # only a failed training has none
        payload: bytes | None = None
        if self.compressors.enabled:
            # The slot keeps the dense update only until the coordinator decodes
            # what the site sent over it; its digest and norm were the dense one's.
            payload = self.compressors.compress(
                job["participant"], job["round"], self.slots[slot]
            )
        send(
            self.conn,
            {
                "op": "train_done",
                **head,
                "slot": slot,
                "num_examples": out.num_examples,
                "metrics": out.metrics,
                "duration": out.duration_s,
                **(
                    {"digest": out.digest, "norm": out.norm}
                    if payload is None
                    else {"compressed": len(payload)}
                ),
            },
        )
        if payload is not None:
            send_frame(self.conn, payload)  # the frame that follows the header

    def open(
        self, job: dict[str, Any], head: dict[str, Any], config: TrainConfig
    ) -> None:
        """Train a site of a secure round and send its first message."""
        from accord.secagg.ckks_session import UPLOAD_STAGE, CkksJob
        from accord.simulation.secure import encrypt_ckks, open_session, parse_job

        participant = job["participant"]
        self.sessions.pop(participant, None)
        if self._scratch is None:
            spec = self.global_params.spec
            self._scratch = spec.view(bytearray(spec.packed_nbytes), writable=True)
        try:
            secure = parse_job(job["secure"])
        except ValueError as exc:
            self.fail(head, "train", "rejected", str(exc), 0.0)
            return
        if isinstance(secure, CkksJob):
            sent = encrypt_ckks(
                self.ctx.task,
                self.sites[participant].train,
                self.global_params,
                config,
                secure,
                self.ckks_secret,
                self._scratch,
            )
            if isinstance(sent, JobError):
                self.fail(head, "train", sent.status, sent.reason, sent.duration_s)
            else:
                self.reply(head, UPLOAD_STAGE, sent.payload, sent.duration_s)
            return
        identity = self.identities.get(participant)
        if identity is None:
            self.fail(head, "train", "failed", "this site has no identity key", 0.0)
            return
        if self.verifier is None:
            from accord.secagg.crypto import Verifier
            from accord.secagg.mask import MaskGenerator

            self.verifier = Verifier()
            self.masks = MaskGenerator()
        opened = open_session(
            self.ctx.task,
            self.sites[participant].train,
            self.global_params,
            config,
            secure,
            identity,
            self._scratch,
            verifier=self.verifier,
            masks=self.masks,
        )
        if isinstance(opened, JobError):
            self.fail(head, "train", opened.status, opened.reason, opened.duration_s)
            return
        self.sessions[participant] = (opened.round, opened.session)
        self.reply(head, "advertise", opened.advertise, opened.duration_s)

    def step(self, job: dict[str, Any], head: dict[str, Any]) -> None:
        """Answer one stage of a secure round for a site."""
        from accord.secagg.ckks_session import DECRYPT_STAGE
        from accord.simulation.secure import decrypt_ckks, step_session

        participant = job["participant"]
        if job["stage"] == DECRYPT_STAGE:
            size = self.global_params.size
            done = decrypt_ckks(self.ckks_secret, job["payload"], size)
            if isinstance(done, JobError):
                self.fail(head, "secagg", done.status, done.reason, done.duration_s)
            else:
                self.reply(head, DECRYPT_STAGE, done.payload, done.duration_s)
            return
        held = self.sessions.get(participant)
        if held is None or held[0] != job["round"]:
            reason = f"no secure session open for round {job['round']}"
            self.fail(head, "secagg", "failed", reason, 0.0)
            return
        answer = step_session(held[1], job["stage"], job["payload"])
        if isinstance(answer, JobError):
            del self.sessions[participant]
            self.fail(head, "secagg", answer.status, answer.reason, answer.duration_s)
            return
        if answer.last:
            del self.sessions[participant]
        self.reply(head, job["stage"], answer.payload, answer.duration_s)

    def reply(
        self, head: dict[str, Any], stage: str, payload: bytes, duration: float
    ) -> None:
        """A stage's message: a JSON header, then the payload as one raw frame."""
        send(
            self.conn,
            {"op": "secagg_done", **head, "stage": stage, "duration": duration},
        )
        send_frame(self.conn, payload)

    def fail(
        self, head: dict[str, Any], kind: str, status: str, reason: str, duration: float
    ) -> None:
        """Report a job that produced nothing usable."""
        send(
            self.conn,
            {
                "op": "failed",
                "kind": kind,
                **head,
                "status": status,
                "reason": reason,
                "duration": duration,
            },
        )

    def close(self) -> None:
        self.sessions.clear()
        self._scratch = None
        del self.global_params, self.slots
        for shm in self._shms:
            shm.close()


def worker_main(conn: Connection, setup: WorkerSetup) -> None:
    """Entry point of a worker process.

    It ignores SIGINT: Ctrl-C in a terminal reaches every process of the group,
    and the coordinator, which handles it (marks the run, says how to resume),
    stops its workers itself. Without this, each worker would print its own
    KeyboardInterrupt traceback over the coordinator's message.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()  # a job's freed arrays serve the next job's, unfaulted
    try:
        # Under forkserver the environment is the server's, set for the first run.
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[key] = str(setup.threads)
        config = FedConfig.model_validate(
            {**json.loads(setup.config_json), "base_dir": setup.base_dir}
        )
        ctx = build_context(config, poison=True)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(setup.threads)
        compressors = SiteCompressors(config.compression, config.federation.seed)
        worker = _Worker(conn, setup, ctx, compressors)
        settle_heap()
    except Exception as exc:  # report any start-up failure to the coordinator
        send(conn, {"op": "setup_failed", "reason": f"{type(exc).__name__}: {exc}"})
        return
    send(conn, {"op": "ready"})
    try:
        worker.loop()
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass  # the coordinator went away (or SIGINT came before it was ignored)
    finally:
        worker.close()
