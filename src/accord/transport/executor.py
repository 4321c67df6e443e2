"""The coordinator's side of a deployment: an :class:`Executor` over gRPC streams.

:class:`GrpcExecutor` is what the round loop and the RPC handlers share: the open
task streams (:class:`~accord.transport.links.Links`), the published global model,
the book of jobs (:class:`~accord.transport.jobs.JobBook`) and the queue of events.
The handlers of :mod:`accord.transport.server` call its ``subscribe``, ``model``
and ``receive_*`` methods with the participant's name *as its certificate proved
it*; the round loop calls the :class:`~accord.coordinator.executor.Executor`
methods. Nothing here touches a socket, so every admission rule is tested without
one.

A refused message changes nothing: the job stays open (the participant may still
send a correct update before the deadline), the round never sees the message, and
the server records the refusal with :meth:`GrpcExecutor.reject`, which hands it to
``on_reject`` (the run store, in a deployment) before the peer is answered. An
accepted update reaches the round as a read-only view on its spool file
(:class:`~accord.transport.spool.SpooledUpdate`), deleted on :meth:`release`.

Secure rounds: :meth:`identity_keys` answers from the identity certificates the
sites presented (:class:`~accord.transport.identity.IdentityBook`), which a masking
round's train task carries to every site; a CKKS round's carries none, and its
uploads are bounded by the key holder's parameters (``ckks_params``). Each stage's
message is admitted against the job of its stage, bounded
(:mod:`~accord.transport.secure_rounds`), assembled in memory and queued
(:meth:`receive_secagg`).

Uploads are checked before they are read: :meth:`check_upload` admits the run,
round and stage an upload's call metadata names against the open jobs, and the
server reads the stream only then. Given the federation's example bounds
(:meth:`bound_examples`, which the round loop calls), an update whose header
claims more examples than its sender may, or an evaluation report outside the
bounds (:func:`~accord.coordinator.integrity.check_eval_report`), is refused
before anything more is read (``out_of_bounds``, with the reason the site logs),
and its job fails as ``rejected`` at once: the round records it without waiting.
A participant whose certificate is revoked mid-run is removed at once
(:meth:`expel`): its stream ends, its open jobs fail with the reason, and later
rounds leave it out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from accord.coordinator.executor import (
    EvalDone,
    Event,
    JobFailed,
    SecAggReply,
    TrainDone,
    TrainJob,
)
from accord.coordinator.integrity import (
    ExampleBounds,
    check_eval_report,
    check_examples,
)
from accord.errors import RunAborted, SubmissionRefused, UpdateRejected
from accord.params import Params
from accord.transforms.compression import Method, topk_fraction
from accord.transport.call_metadata import UploadTag
from accord.transport.compressed import (
    check_compressed_header,
    gather,
    packed_update,
)
from accord.transport.identity import IdentityBook, IdentityCertificate
from accord.transport.jobs import Job, JobBook, check_answers, check_update_header
from accord.transport.links import Links
from accord.transport.messages import (
    CHUNK_BYTES,
    RUN_FINISHED,
    Chunk,
    EvalReport,
    FailureReport,
    Goodbye,
    JobKind,
    PackedHeader,
    ParticipantState,
    Published,
    Receipt,
    SecAggHeader,
    TaskOrder,
    UpdateHeader,
    Welcome,
    farewell,
    wire_run_id,
)
from accord.transport.rejections import Rejection, RejectionLog, Sink
from accord.transport.secure_codec import assemble
from accord.transport.secure_rounds import (
    CkksLimits,
    check_stage_header,
    fairness_order,
    oversized_task,
    secure_order,
    statistics_order,
)
from accord.transport.spool import MemorySpool, SpooledUpdate

if TYPE_CHECKING:
    from accord.secagg.ckks_keys import CkksParams
    from accord.secagg.session import SecureJob

__all__ = ["GrpcExecutor", "ParticipantState", "Published", "wire_run_id"]

logger = logging.getLogger(__name__)
_POLL_S = 0.25


_SHUTTING_DOWN = "the run is over: the coordinator is shutting down"
#: Bytes of received updates held in memory rather than in spool files
#: (``[deployment] spool_memory_mib``'s default).
SPOOL_MEMORY = 1024 * 2**20


class GrpcExecutor:
    """Runs jobs at participants connected over gRPC; see the module docstring.

    ``participants`` is the federation's roster in the fixed order the round loop
    selects and seeds by. Received updates are held in memory up to
    ``spool_memory`` bytes, past that in files under ``spool_dir``
    (:mod:`~accord.transport.spool`). ``grace_s`` is how long a participant may stay
    disconnected with a job waiting before the job fails (one that reconnects
    within it gets the job again). ``run_id`` names the run on the wire: messages
    of any other run are refused as stale. ``accord coordinator`` gives each of its
    processes a fresh one (the store's run id and a random suffix, see
    :func:`wire_run_id`), so that after a restart nothing sent to, or received
    from, the process that died is admitted. ``on_reject`` receives every refusal
    as it is made (see :mod:`~accord.transport.rejections`). ``versions`` (async
    mode) keeps serving earlier published models until :meth:`keep` releases
    them, so that a site still training from an older version can fetch it
    (:mod:`accord.coordinator.asynchronous`). ``ckks_params`` are
    the key holder's CKKS parameters (those of its public context), which bound a
    CKKS round's uploads; a CKKS round cannot start without them.
    """

    def __init__(
        self,
        participants: Sequence[str],
        *,
        run_id: str | None = None,
        spool_dir: Path | None = None,
        spool_memory: int = SPOOL_MEMORY,
        grace_s: float = 30.0,
        on_reject: Sink | None = None,
        clock: Callable[[], float] = time.monotonic,
        ckks_params: CkksParams | None = None,
        compression: tuple[Method, float] | None = None,
        compression_warmup: int = 0,
        versions: bool = False,
    ) -> None:
        if not participants or len(set(participants)) != len(participants):
            raise ValueError("participants must be distinct names, at least one")
        self._participants = tuple(participants)
        self.run_id = run_id or uuid.uuid4().hex
        self._tmp = tempfile.TemporaryDirectory(prefix="accord-spool-", dir=spool_dir)
        self.spool_dir = Path(self._tmp.name)
        self._memory = MemorySpool(spool_memory)
        self._grace_s = grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs = JobBook(self.run_id, self._participants)
        self._links = Links(self.run_id, clock)
        self._events: queue.Queue[Event] = queue.Queue()
        self._model: Published | None = None
        #: Async mode (``versions``): earlier published models still served, by
        #: digest, until :meth:`keep` lets them go.
        self._versions = versions
        self._kept: dict[str, Published] = {}
        self._held: dict[int, SpooledUpdate] = {}
        self._identities = IdentityBook()
        self._ckks_params = ckks_params
        #: ``[compression]`` (method, top-k fraction): what plain updates carry.
        self._compression = compression
        #: Top-k's warm-up rounds: a round's density is derived from them.
        self._compression_warmup = compression_warmup
        # By round: what bounds its stage messages.
        self._secure: dict[int, SecureJob | CkksLimits] = {}
        self._tokens = 0
        self._bounds: ExampleBounds | None = None
        self._stop_reason: str | None = None
        self._closed = False
        self.rejections = RejectionLog(on_reject)

    # The Executor protocol, called by the round loop.

    @property
    def participants(self) -> tuple[str, ...]:
        """The roster, in the configured order."""
        return self._participants

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        """Pack ``params`` once; every FetchModel streams these bytes.

        ``digest`` is ``params.digest()`` if the caller has it (the round loop
        does: the model is then hashed once per round, not twice).
        """
        spec = params.spec
        digest = params.digest() if digest is None else digest
        header = PackedHeader(spec, spec.packed_nbytes, digest)
        published = Published(header, spec.pack(params))
        with self._lock:
            if self._versions and self._model is not None:
                self._kept[self._model.header.digest] = self._model
            self._model = published

    def keep(self, digests: Collection[str]) -> None:
        """Serve only these earlier models besides the current one (async mode).

        An async run's jobs train from the version they were given while newer
        ones are published; the driver names the versions its outstanding jobs
        may still fetch (those within ``max_staleness``), and the rest are
        released. A fetch of a released one is refused as ``stale``.
        """
        with self._lock:
            self._kept = {d: m for d, m in self._kept.items() if d in digests}

    def bound_examples(self, bounds: ExampleBounds) -> None:
        """Refuse updates and reports beyond ``bounds`` as they arrive."""
        with self._lock:
            self._bounds = bounds

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Push a train task to each participant's stream.

        A secure job's task carries the round's settings (a masking round's
        without the identity keys the coordinator vouches for, and with the
        roster's identity certificates instead; see :func:`secure_order`).
        """
        digest = self._require_model().header.digest
        for job in jobs:
            order = TaskOrder(
                self.run_id,
                round_number,
                "train",
                digest,
                job.config,
                ledger_entry=job.ledger_entry,
            )
            if job.secure is not None:
                order, rule = secure_order(
                    order,
                    job.secure,
                    identities=self._identities,
                    ckks_params=self._ckks_params,
                )
                with self._lock:
                    self._secure = {round_number: rule}  # earlier rounds' are over
            self._dispatch(job.participant, order)

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Push an eval task to each participant's stream."""
        digest = self._require_model().header.digest
        for p in participants:
            self._dispatch(p, TaskOrder(self.run_id, round_number, "eval", digest))

    def task(self, name: str, kind: JobKind, round_number: int) -> TaskOrder | None:
        """The task last handed to ``name`` as its ``kind`` job of the round.

        None: none was. It is what a stage message must answer (by its
        :func:`~accord.transport.messages.task_digest`).
        """
        with self._lock:
            job = self._jobs.get(name, kind, round_number)
        return None if job is None else job.order

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        """The keys of the verified identity certificates these participants hold."""
        return self._identities.keys(participants)

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        """Push each participant its message opening ``stage`` (a ``secagg`` task).

        A message too large for a task fails its job at once. A ``statistics``
        task (the preprocessing's secure sum) or a ``fairness`` task (a round's
        per-group counts) carries its roster's certificates, and its job bounds
        the sum's later stages (:func:`statistics_order`, :func:`fairness_order`).
        """
        for name, payload in payloads.items():
            order = TaskOrder(
                self.run_id, round_number, "secagg", "", stage=stage, payload=payload
            )
            if stage in ("statistics", "fairness"):
                opened = statistics_order if stage == "statistics" else fairness_order
                order, job = opened(order, identities=self._identities)
                with self._lock:
                    self._secure = {round_number: job}
            self._dispatch(name, order, refusal=oversized_task(stage, payload))

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event; raises RunAborted once an admin asked to stop."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            if self._stop_reason is not None:
                raise RunAborted(self._stop_reason)
            self._fail_disconnected()
            wait = _POLL_S
            if deadline is not None:
                wait = min(wait, deadline - self._clock())
            try:
                return self._events.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if deadline is not None and self._clock() >= deadline:
                    return None

    def release(self, event: TrainDone) -> None:
        """Delete the spool file behind ``event.update``."""
        with self._lock:
            spooled = self._held.pop(event.token, None)
        if spooled is not None:
            spooled.discard()

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Close these jobs: late results are refused as stale.

        An upload still streaming in for one of them is stopped at once (its
        reader, see :meth:`receive_update`): the watchdog bounds the gap between
        two of its messages, not the upload, so without this a participant
        trickling a byte at a time under the idle timeout would hold a thread,
        a call slot and a spool buffer long after the round gave up on it.
        """
        with self._lock:
            receiving = self._jobs.abandon(round_number, participants)
            readers = [job.reader for job in receiving if job.reader is not None]
            for job in receiving:
                job.reader = None
        reason = (
            f"round {round_number} stopped waiting for your upload while it was "
            "arriving (its deadline passed, or it closed with enough updates); "
            "the coordinator stopped reading it"
        )
        for reader in readers:  # each records the refusal and tells the sender
            try:
                reader(reason)
            except Exception:  # a call that ended meanwhile; the round goes on
                logger.exception("could not stop an upload of round %d", round_number)

    @contextlib.contextmanager
    def ending(self) -> Iterator[None]:
        """Close at the end of the block, telling the sites how the run ended.

        "run finished" if the block ends normally, "run interrupted by the
        coordinator; it may resume" on Ctrl-C or SIGTERM, "run aborted: WHY" on
        any other exception (:func:`~accord.transport.messages.farewell`).
        """
        try:
            yield
        except BaseException as exc:
            self.close(farewell(exc))
            raise
        self.close(farewell(None))

    def close(self, goodbye: str | None = None) -> None:
        """Say goodbye on every stream and delete the spool directory (once).

        ``goodbye`` says how the run ended (:meth:`ending`); by default an admin's
        stop reason, else "run finished". Closing again does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = list(self._held.values())
            self._held.clear()
        reason = goodbye or self._stop_reason or RUN_FINISHED
        self._links.close(Goodbye(self.run_id, reason))
        self.rejections.flush()  # the last counts of repeated refusals
        for spooled in held:
            spooled.discard()
        self._tmp.cleanup()

    # Connections, called by the Subscribe handler and the CLI.

    def subscribe(
        self,
        name: str,
        is_active: Callable[[], bool],
        *,
        identity: IdentityCertificate | None = None,
        recheck: Callable[[], IdentityCertificate] | None = None,
    ) -> Iterator[TaskOrder | Goodbye | Welcome]:
        """``name``'s task stream: a welcome, its waiting jobs again, then new ones.

        ``identity`` is the identity certificate it presented, verified, and
        ``recheck`` verifies it again before each secure round.
        """
        with self._lock:
            self._jobs.check_member(name)
            self._identities.present(name, identity, recheck)
            link = self._links.open(name)
            first: list[Welcome | TaskOrder] = [Welcome(self.run_id, self._jobs.round)]
            first += self._jobs.waiting(name)
        return self._links.stream(link, first, is_active)

    def wake(self, name: str) -> None:
        """Unblock ``name``'s stream so its handler notices a cancelled call."""
        self._links.wake(name)

    def wait_for(self, names: Sequence[str], timeout: float) -> frozenset[str]:
        """Block until every one of ``names`` is connected or ``timeout`` passes."""
        return self._links.wait_for(names, timeout)

    def check_member(self, name: str) -> None:
        """Refuse a certificate holder not (or no longer) on this run's roster."""
        with self._lock:
            self._jobs.check_member(name)

    def check_upload(self, name: str, tag: UploadTag) -> None:
        """Refuse, before a byte of it is read, an upload no open job of ``name`` asks.

        ``tag`` is what the upload's call metadata claims; its header must say the
        same (checked when it arrives). Stage ``""`` is an update, any other a
        secure round's message.
        """
        with self._lock:
            if self._closed:
                raise SubmissionRefused("stale", _SHUTTING_DOWN)
            if tag.stage:
                self._jobs.admit_stage(name, tag.stage, tag.round, tag.run_id)
            else:
                self._jobs.admit(name, "train", tag.round, tag.run_id)

    def expel(self, name: str, reason: str) -> None:
        """Remove ``name`` from the run at once (its certificate was revoked).

        Its task stream ends with ``reason``, its open jobs fail with it (the round
        does not wait for them), later rounds neither select it (:attr:`removed`)
        nor send it anything, and its calls are refused; recorded as a ``revoked``
        refusal.
        """
        with self._lock:
            if self._jobs.expelled(name) is not None or name not in self._participants:
                return
            failed = self._jobs.expel(name, reason)
            round_number = self._jobs.round
        self._links.expel(name, f"removed from the run: {reason}")
        for job in failed:
            o = job.order
            self._events.put(
                JobFailed(name, o.round, o.kind, "failed", f"removed: {reason}")
            )
        self.rejections.add(
            participant=name,
            method="Subscribe",
            round=round_number,
            kind="revoked",
            reason=f"removed from the run, {len(failed)} open job(s) failed: {reason}",
        )

    def owing(self) -> tuple[frozenset[tuple[str, str]], int]:
        """The jobs still unanswered, and how many events wait to be taken.

        Jobs as (participant, kind, or a secure round's stage), see
        :meth:`~accord.transport.jobs.JobBook.owing`. Read together, under the
        lock: when no event waits, every answer that came has been taken by
        :meth:`next_event`, so the jobs named are those the round still waits on
        (what accord's tests skip their clocks ahead on).
        """
        with self._lock:
            return self._jobs.owing(), self._events.qsize()

    @property
    def removed(self) -> frozenset[str]:
        """Participants removed from the run; the round loop selects none of them."""
        with self._lock:
            return self._jobs.removed

    # Messages, called by the RPC handlers with the authenticated name.

    def model(self, name: str, run_id: str, digest: str) -> Published:
        """The published model, if ``digest`` is still the current one."""
        self._jobs.check_member(name)
        self._jobs.check_run(run_id)
        model = self._require_model()
        with self._lock:
            kept = self._kept.get(digest)
        if kept is not None:
            return kept
        if digest != model.header.digest:
            raise SubmissionRefused(
                "stale",
                f"model {digest[:16]}… is no longer published; the current one is "
                f"{model.header.digest[:16]}…",
            )
        return model

    def receive_update(
        self,
        name: str,
        parts: Iterator[UpdateHeader | Chunk],
        *,
        reader: Callable[[str], None] | None = None,
    ) -> Receipt:
        """Admit, spool and check one update stream; queue its TrainDone.

        ``reader`` stops reading ``parts`` from another thread, with the reason
        the sender is told; :meth:`abandon` calls it if the job closes while the
        update streams in, so that no upload outlives its job's deadline.
        """
        header = next(parts, None)
        if not isinstance(header, UpdateHeader):
            raise SubmissionRefused(
                "malformed", "an update stream must start with its header"
            )
        with self._lock:
            if self._closed:
                raise SubmissionRefused("stale", _SHUTTING_DOWN)
            job = self._jobs.admit(name, "train", header.round, header.run_id)
            model_header = self._require_model().header
            if self._compression is None:
                check_update_header(header, model_header, job)
            else:
                method, fraction = self._round_compression(header.round)
                check_compressed_header(
                    header, model_header, job, method=method, fraction=fraction
                )
            bounds = self._bounds
            if bounds is not None:
                self._within_bounds(
                    job, lambda: check_examples(header.num_examples, name, bounds)
                )
            job.state, job.reader = "receiving", reader
        try:
            return self._spool_update(name, header, parts, model_header)
        finally:
            with self._lock:
                job.reader = None

    def _spool_update(
        self,
        name: str,
        header: UpdateHeader,
        parts: Iterator[UpdateHeader | Chunk],
        model_header: PackedHeader,
    ) -> Receipt:
        """Spool and check the chunks of an admitted update; accept it."""
        try:
            spooled = SpooledUpdate(
                self.spool_dir,
                header.params.spec,
                digest=header.params.digest,
                label=f"{name}-r{header.round}",
                memory=self._memory,
            )
        except BaseException as exc:
            with self._lock:
                self._jobs.reopen(name, header.round)
            self._refuse_if_closed(exc)
            raise
        try:
            sent: int | None = None
            if self._compression is None:
                for part in parts:
                    if not isinstance(part, Chunk):
                        raise SubmissionRefused("malformed", "a second header")
                    spooled.write(part.offset, part.data)
            else:
                method, fraction = self._round_compression(header.round)
                payload = gather(parts, header.params.total_bytes)
                sent = len(payload)
                packed = packed_update(
                    payload, model_header, method=method, fraction=fraction
                )
                view = memoryview(packed)
                for offset in range(0, len(packed), CHUNK_BYTES):
                    spooled.write(offset, view[offset : offset + CHUNK_BYTES])
                del view
            update = spooled.finish()
            return self._accept(name, header, spooled, update, sent)
        except BaseException as exc:
            spooled.discard()
            with self._lock:
                self._jobs.reopen(name, header.round)
            self._refuse_if_closed(exc)
            raise

    def _certificate(self, name: str) -> bytes:
        """The identity certificate (DER) ``name`` presented, or empty."""
        held = self._identities.certificates([name])
        return held[0] if held else b""

    def _within_bounds(self, job: Job, check: Callable[[], None]) -> None:
        """Run ``check``; if it refuses, fail ``job`` with the reason and refuse.

        Called under the lock. The job fails at once (``rejected``, marked
        ``refused_on_arrival``): the round records the reason without waiting for
        its deadline, and a second try of the same claim is refused as stale.
        """
        try:
            check()
        except UpdateRejected as exc:
            job.state = "failed"
            o = job.order
            self._events.put(
                JobFailed(
                    job.participant,
                    o.round,
                    o.kind,
                    "rejected",
                    exc.reason,
                    refused_on_arrival=True,
                )
            )
            raise SubmissionRefused(
                "out_of_bounds", exc.reason, participant=job.participant
            ) from None

    def _refuse_if_closed(self, exc: BaseException) -> None:
        """A spool write that failed because close() removed the spool: say so."""
        if isinstance(exc, OSError) and self._closed:
            raise SubmissionRefused("stale", _SHUTTING_DOWN) from exc

    def _accept(
        self,
        name: str,
        header: UpdateHeader,
        spooled: SpooledUpdate,
        update: Params,
        sent: int | None = None,
    ) -> Receipt:
        with self._lock:
            job = self._jobs.get(name, "train", header.round)
            if job is None or job.state != "receiving" or self._closed:
                raise SubmissionRefused(
                    "stale", f"round {header.round} closed while the update arrived"
                )
            job.state = "done"
            self._tokens += 1
            self._held[self._tokens] = spooled
            self._events.put(
                TrainDone(
                    participant=name,
                    round=header.round,
                    update=update,
                    num_examples=header.num_examples,
                    duration_s=header.duration_s,
                    metrics=dict(header.metrics),
                    update_digest=header.params.digest,
                    token=self._tokens,
                    values_checked=True,
                    norm=spooled.norm,
                    receipt=header.receipt,
                    certificate=self._certificate(name) if header.receipt else b"",
                    bytes_sent=sent,
                )
            )
        digest = header.params.digest
        return Receipt(self.run_id, header.round, name, digest, spooled.total)

    def receive_secagg(
        self,
        name: str,
        parts: Iterator[SecAggHeader | Chunk],
        *,
        reader: Callable[[str], None] | None = None,
    ) -> Receipt:
        """Admit and assemble one message of a secure round; queue its SecAggReply.

        ``reader``: as :meth:`receive_update`'s.
        """
        header = next(parts, None)
        if not isinstance(header, SecAggHeader):
            raise SubmissionRefused(
                "malformed", "a secure-aggregation stream must start with its header"
            )
        with self._lock:
            if self._closed:
                raise SubmissionRefused("stale", _SHUTTING_DOWN)
            job = self._jobs.admit_stage(
                name, header.stage, header.round, header.run_id
            )
            check_stage_header(header, self._secure.get(header.round))
            check_answers(header, job)
            job.state, job.reader = "receiving", reader
        try:
            payload = assemble(parts, header.total_bytes)
        except BaseException:
            with self._lock:
                job.reader = None
                self._jobs.reopen(name, header.round, job.order.kind)
            raise
        with self._lock:
            job.reader = None
            if job.state != "receiving" or self._closed:
                raise SubmissionRefused(
                    "stale", f"round {header.round} closed while the message arrived"
                )
            job.state = "done"
            self._events.put(
                SecAggReply(
                    name, header.round, header.stage, payload, header.duration_s
                )
            )
        digest = hashlib.sha256(payload).hexdigest()
        return Receipt(self.run_id, header.round, name, digest, len(payload))

    def receive_eval(self, name: str, report: EvalReport) -> Receipt:
        """Accept a site's scores of the model its eval job named."""
        with self._lock:
            job = self._jobs.admit(name, "eval", report.round, report.run_id)
            if report.model_digest != job.order.model_digest:
                raise SubmissionRefused(
                    "stale", "these scores are of another model than the job's"
                )
            if report.num_examples <= 0:
                raise SubmissionRefused("mismatch", "num_examples must be positive")
            bounds = self._bounds
            if bounds is not None:
                self._within_bounds(
                    job,
                    lambda: check_eval_report(
                        report.metrics, report.num_examples, name, bounds
                    ),
                )
            job.state = "done"
            self._events.put(
                EvalDone(
                    name,
                    report.round,
                    dict(report.metrics),
                    report.num_examples,
                    report.duration_s,
                )
            )
        return Receipt(self.run_id, report.round, name, report.model_digest)

    def receive_failure(self, name: str, report: FailureReport) -> Receipt:
        """Record that a job of ``name`` produced nothing usable."""
        with self._lock:
            job = self._jobs.admit(name, report.kind, report.round, report.run_id)
            job.state = "failed"
            prefix = "refused by the site: " if report.refused else ""
            self._events.put(
                JobFailed(
                    name,
                    report.round,
                    report.kind,
                    "rejected" if report.refused else "failed",
                    prefix + report.reason,
                    report.duration_s,
                )
            )
        return Receipt(self.run_id, report.round, name)

    def reject(
        self, name: str | None, method: str, exc: SubmissionRefused, round_number: int
    ) -> Rejection:
        """Keep and log a refusal (the server calls it before answering)."""
        return self.rejections.add(
            participant=name,
            method=method,
            round=round_number,
            kind=exc.kind,
            reason=exc.reason,
        )

    # Admin.

    def status(self) -> tuple[int, tuple[ParticipantState, ...], bool]:
        """Current round, each participant's state, and whether a stop was asked."""
        connected = self._links.connected()
        with self._lock:
            states = tuple(
                ParticipantState(p, p in connected, self._jobs.last_train(p))
                for p in self._participants
            )
            return self._jobs.round, states, self._stop_reason is not None

    def stop(self, reason: str) -> None:
        """Make the round loop stop: its next wait raises RunAborted(reason)."""
        self._stop_reason = reason

    # Internals.

    def _round_compression(self, round_number: int) -> tuple[Method, float]:
        """The method and the density a plain update of ``round_number`` carries."""
        assert self._compression is not None  # callers check
        method, fraction = self._compression
        if method == "topk":
            fraction = topk_fraction(fraction, self._compression_warmup, round_number)
        return method, fraction

    def _require_model(self) -> Published:
        if self._model is None:
            raise RuntimeError("publish() the global model before submitting jobs")
        return self._model

    def _dispatch(
        self, name: str, order: TaskOrder, *, refusal: str | None = None
    ) -> None:
        with self._lock:
            removed = self._jobs.expelled(name)
            if removed is not None:
                refusal = f"removed from the run: {removed}"
            job = self._jobs.open(name, order)
            sent = refusal is None and self._links.send(name, order)
            if not sent:
                job.state = "failed"
        if not sent:
            reason = refusal or "not connected: the participant has no open task stream"
            self._events.put(JobFailed(name, order.round, order.kind, "failed", reason))

    def _fail_disconnected(self) -> None:
        gone = self._links.gone_longer_than(self._grace_s)
        if not gone:
            return
        with self._lock:
            failed = self._jobs.fail_waiting(gone)
        reason = f"lost the connection for more than {self._grace_s:.0f} s"
        for job in failed:
            o = job.order
            what = f"{job.participant}'s {o.kind} job of round {o.round}"
            logger.warning("%s failed: %s", what, reason)
            self._events.put(
                JobFailed(job.participant, o.round, o.kind, "failed", reason)
            )
