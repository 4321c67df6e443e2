"""Asynchronous training with bounded staleness, FedBuff-style (``mode = "async"``).

No round waits for its slowest site. Every site trains from the newest model it was
given and is handed the newest one again as soon as it reports; each
``buffer_size`` valid updates make one new model version
(:class:`~accord.aggregation.fedbuff.FedBuffBuffer`, weighted ``1/sqrt(1+s)`` by
their staleness ``s``: how many versions were made since the model they trained
from). An update more than ``max_staleness`` versions old is refused, recorded as
``rejected`` with the reason ``stale: ...``. A version is recorded exactly like a
round (``federation.rounds`` counts versions): model checkpoint, evaluation, and
one outcome per contributing site, whose metrics hold the ``staleness`` and the
``base_version`` it trained from; the version's ``train.virtual_time`` metric is
the clock when it was made. So ``accord runs show``, ``export`` and the ledger
read an async run as they read a synchronous one.

**Time.** The order in which updates arrive decides the model, so it must not be
left to the operating system's scheduling, or the same seed would not give the
same model. The driver keeps a virtual clock instead: a job at site ``s`` takes
``job_time(s)`` (the simulation's cost model, :mod:`accord.simulation.timing`,
where ``[simulation] slowdown`` makes a site slower), and updates are folded in
the order of their virtual finish times (ties by dispatch order). The jobs
themselves still run in parallel: every site dispatched from the same version is
trained in one batch on the executor, when the first of their results is needed
or before the model they train from is replaced (:meth:`AsyncDriver._flush`).
Wall-clock deadlines (``round.deadline_s``) still bound each batch.

**Choices.** A site has at most one outcome per version (the store's rule for a
round): a second update that arrives while its first is still in the buffer
waits for the next version, and is folded there, one version staler; the site
trains again only once that update is taken, so no site holds more than one
update back in the coordinator's memory. ``[strategy] max_norm_ratio`` judges
each update against the median norm of the updates folded last and its own
(:mod:`accord.coordinator.async_norms`); the run's first updates, with nothing
folded to compare against, are held until three are in (a buffer's worth, if the
buffer is smaller) and judged by their own median (a resumed run starts that
over). A job that
fails (``failed``, ``timeout``) or is refused (``rejected``, ``stale: ...``) is
recorded as a run event ``async_refused`` and as the site's outcome of the
version, unless a valid update of the site is folded into the same version (it
then takes the outcome's place); the site is given the newest model again. If no
valid update comes in ``max_failed_rounds`` × roster jobs in a row, the run is
aborted. A resumed async run starts every site afresh from the last
recorded version at that version's virtual time: the work in flight when it
stopped is lost, as it would be in a crash, so it does not end with the exact
model of an uninterrupted run.

**Deployment** (``accord coordinator``): with no virtual clock, and an executor
that serves several model versions at once (:class:`VersionServer`, the gRPC
executor made with ``versions=True``), :meth:`AsyncDriver._arrivals` folds updates
in their real arrival order (not reproducible). Each site has one job at a time,
numbered apart from the versions (so a replay of an earlier job is refused by the
executor), with ``round.deadline_s`` of real time; after each version the executor
keeps only the versions outstanding jobs were given within ``max_staleness``. The
judging, folding and recording are the simulation's. See ``docs/strategies.md``.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from accord.aggregation.fedbuff import FedBuffBuffer
from accord.coordinator.async_norms import NORM_WINDOW, NormJudge
from accord.coordinator.collector import collect
from accord.coordinator.executor import Event, JobFailed, TrainDone, eligible
from accord.coordinator.integrity import check_metric_names
from accord.coordinator.round import validate_update
from accord.coordinator.round_end import Concluding
from accord.coordinator.strategy import published_spec
from accord.coordinator.transfers import record_transfers
from accord.errors import ConfigError, RunAborted, UpdateRejected
from accord.params import Params
from accord.records import MetricValue, OutcomeStatus, ParticipantOutcome, RoundRecord

if TYPE_CHECKING:
    from accord.coordinator.runner import Coordinator
    from accord.coordinator.summary import RoundSummary

__all__ = [
    "CLOCK",
    "NORM_WINDOW",
    "REFUSED_EVENT",
    "UNUSED_EVENT",
    "VIRTUAL_TIME",
    "AsyncDriver",
    "Dispatch",
    "Schedule",
    "VersionServer",
    "last_time",
    "sync_round_time",
]

logger = logging.getLogger(__name__)

#: The run event that records each refused or failed async job.
REFUSED_EVENT = "async_refused"

#: The run event of a deployed job that ended after the last version was made.
UNUSED_EVENT = "async_unused"

#: The metric (scope :data:`CLOCK`) that holds the virtual time a round or
#: version was made at (simulation only).
VIRTUAL_TIME = "virtual_time"
CLOCK = "train"


def sync_round_time(
    selected: Sequence[str], job_time: Callable[[str], float], close_fraction: float
) -> float:
    """A synchronous round's virtual duration: until enough selected sites answer.

    Every selected site trains at once, so the round lasts until the
    ``ceil(close_fraction × selected)``-th fastest of them is done (the slowest
    when ``close_fraction`` is 1).
    """
    if not selected:
        return 0.0
    times = sorted(job_time(s) for s in selected)
    needed = max(1, math.ceil(close_fraction * len(times)))
    return times[min(needed, len(times)) - 1]


@dataclass(frozen=True, slots=True, order=True)
class Dispatch:
    """One job: ``site`` trains from version ``base``, from ``start`` to ``finish``."""

    finish: float
    seq: int
    site: str = field(compare=False)
    base: int = field(compare=False)
    start: float = field(compare=False)


class Schedule:
    """The virtual clock's queue of jobs in flight: pure, no I/O.

    :meth:`next` gives the job that finishes first (ties: the one dispatched
    first), so the same dispatches always come back in the same order.
    """

    def __init__(self, job_time: Callable[[str], float]) -> None:
        self._job_time = job_time
        self._heap: list[Dispatch] = []
        self._seq = itertools.count()
        self._busy: collections.Counter[str] = collections.Counter()

    def dispatch(self, site: str, base: int, now: float) -> Dispatch:
        """Start ``site`` on version ``base`` at ``now``; the job, queued."""
        took = self._job_time(site)
        if not took > 0:
            raise ValueError(f"a job at {site} must take some time, got {took}")
        job = Dispatch(now + took, next(self._seq), site, base, now)
        heapq.heappush(self._heap, job)
        self._busy[site] += 1
        return job

    def next(self) -> Dispatch:
        """The job in flight that finishes first, taken off the queue."""
        job = heapq.heappop(self._heap)
        self._busy[job.site] -= 1
        return job

    def busy(self, site: str) -> bool:
        """True while a job of ``site`` is in flight."""
        return self._busy[site] > 0

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(frozen=True, slots=True)
class _Result:
    """A trained job's outcome, copied off the executor's buffers."""

    update: Params | None  # None: failed
    num_examples: int
    duration_s: float
    metrics: Mapping[str, float]
    digest: str | None
    status: OutcomeStatus = "ok"
    reason: str | None = None
    #: Bytes the site sent for it (``[compression]``); None: not counted.
    bytes_sent: int | None = None


class AsyncDriver:
    """Makes a run's model versions one after the other (see module doc)."""

    def __init__(
        self, coordinator: Coordinator, run_id: str, recorded: Sequence[RoundRecord]
    ) -> None:
        job_time = coordinator.job_time
        #: A deployment's executor (no virtual clock): updates fold in arrival order.
        self._server: VersionServer | None = None
        if job_time is None:
            if not isinstance(coordinator.executor, VersionServer):
                raise ConfigError(
                    'round.mode = "async" needs the simulation\'s virtual clock, or an '
                    "executor that serves several model versions at once (a "
                    'deployment\'s); this one has neither. Use mode = "sync" here',
                    key="round.mode",
                )
            self._server = coordinator.executor
            job_time = _no_clock
        self._c = coordinator
        self._run_id = run_id
        cfg = coordinator.config
        self._rnd = cfg.round
        self._uniform = cfg.strategy.weighting == "uniform"
        self._schedule = Schedule(job_time)
        self._roster = eligible(coordinator.executor)
        self._now = last_time(recorded)
        self._pending: list[Dispatch] = []  # dispatched, not trained yet
        self._results: dict[int, _Result] = {}  # by Dispatch.seq
        self._deferred: list[tuple[Dispatch, _Result]] = []
        #: The first valid updates, until the norm rule has enough to judge them.
        self._unjudged: list[tuple[Dispatch, _Result, float]] = []
        self._norm_rule = NormJudge(
            cfg.strategy.max_norm_ratio,
            sites=len(self._roster),
            buffer_size=cfg.round.buffer_size,
        )
        self._sent: dict[str, int] = {}  # bytes of the version's folded updates
        self._batches = itertools.count(1_000_000 * (1 + len(recorded)))

    def versions(
        self, first: int, params: Params, state: Params
    ) -> Iterator[tuple[Params, Params, RoundSummary]]:
        """Model, state and summary of each version from ``first`` to the last."""
        c, rnd = self._c, self._rnd
        spec = published_spec(c.config.strategy, params.spec)
        buffer = FedBuffBuffer(
            spec,
            rnd.buffer_size,
            rule=rnd.staleness_weight,
            max_share=c.config.strategy.max_weight_share,
        )
        if self._server is not None:
            yield from self._arrivals(first, params, state, buffer, self._server)
            return
        version = first - 1
        self._dispatch_idle(version)
        without_update = 0
        limit = rnd.max_failed_rounds * max(len(self._roster), 1)
        while version < c.config.federation.rounds:
            number = version + 1
            started, t0, since = datetime.now(UTC), c.clock(), self._now
            outcomes: dict[str, ParticipantOutcome] = {}
            c.observer.round_started(number, self._roster)
            self._replay(version, buffer, outcomes)
            while not buffer.full:
                self._dispatch_idle(version)
                if not self._schedule:
                    raise RunAborted(
                        "no site is left to train (each one holds an update back); "
                        f"see `accord runs show {self._run_id}`"
                    )
                job = self._schedule.next()
                if job.seq not in self._results:
                    self._flush(params)
                result = self._results.pop(job.seq)
                self._now = job.finish
                without_update = self._take(
                    job, result, version, buffer, outcomes, without_update, limit
                )
            self._flush(params)  # what trains from this version, before it goes
            params, state, summary = self._conclude(
                number,
                started=started,
                t0=t0,
                outcomes=outcomes,
                dense=spec.packed_nbytes,
                step=(params, state, buffer.take()),
                extra=(MetricValue(CLOCK, None, VIRTUAL_TIME, self._now),),
                duration_s=self._now - since,
            )
            version = number
            self._dispatch_idle(version)  # those whose update filled the buffer
            yield params, state, summary

    def _arrivals(
        self,
        first: int,
        params: Params,
        state: Params,
        buffer: FedBuffBuffer,
        server: VersionServer,
    ) -> Iterator[tuple[Params, Params, RoundSummary]]:
        """:meth:`versions` in a deployment: updates fold in their arrival order.

        Each site gets its own job (a fresh wire round number, so that a replay of
        an earlier job is refused by the executor's job book), from the version
        published when it was sent; it gets the newest one again as soon as it
        reports. A job has ``round.deadline_s`` on the real clock. After each
        version the executor keeps serving only the versions that outstanding
        jobs were given and that are within ``max_staleness``.
        """
        c, rnd = self._c, self._rnd
        version = first - 1
        live: dict[str, _Live] = {}

        def send(site: str, base: int) -> None:
            if site in eligible(c.executor) and site not in live:
                batch = next(self._batches)
                c.executor.submit_train(batch, c.jobs(self._run_id, batch, [site]))
                order = server.task(site, "train", batch)
                live[site] = _Live(
                    Dispatch(0.0, batch, site, base, 0.0),
                    c.clock() + rnd.deadline_s,
                    "" if order is None else order.model_digest,
                )

        def idle(base: int) -> None:
            for site in self._roster:
                if not self._waits(site):
                    send(site, base)

        idle(version)
        without_update = 0
        limit = rnd.max_failed_rounds * max(len(self._roster), 1)
        while version < c.config.federation.rounds:
            number = version + 1
            started, t0 = datetime.now(UTC), c.clock()
            outcomes: dict[str, ParticipantOutcome] = {}
            c.observer.round_started(number, self._roster)
            self._replay(version, buffer, outcomes)
            while not buffer.full:
                idle(version)
                if not live:
                    raise RunAborted(
                        "no site is left to train (every one removed); "
                        f"see `accord runs show {self._run_id}`"
                    )
                got = self._arrival(live)
                if got is None:
                    continue
                job, result = got
                without_update = self._take(
                    job, result, version, buffer, outcomes, without_update, limit
                )
            params, state, summary = self._conclude(
                number,
                started=started,
                t0=t0,
                outcomes=outcomes,
                dense=buffer.spec.packed_nbytes,
                step=(params, state, buffer.take()),
            )
            version = number
            idle(version)  # those whose update filled the buffer
            server.keep(
                {
                    j.digest
                    for j in live.values()
                    if version - j.job.base <= rnd.max_staleness
                }
            )
            yield params, state, summary
        self._drain(live, version)

    def _conclude(
        self,
        number: int,
        *,
        started: datetime,
        t0: float,
        outcomes: Mapping[str, ParticipantOutcome],
        dense: int,
        step: tuple[Params, Params, Params],
        extra: tuple[MetricValue, ...] = (),
        duration_s: float | None = None,
    ) -> tuple[Params, Params, RoundSummary]:
        """Record version ``number``'s transfers, then conclude it like a round."""
        c = self._c
        sent, self._sent = self._sent, {}
        record_transfers(
            c.store,
            self._run_id,
            number,
            sent,
            method=c.config.compression.method,
            dense=dense,
        )
        ordered = tuple(outcomes.values())
        params, state, delta = step
        return c.conclude(
            self._run_id,
            Concluding(
                number=number,
                started=started,
                t0=t0,
                selected=tuple(outcomes),
                outcomes=ordered,
                succeeded=sum(o.status == "ok" for o in ordered),
                reason=None,
                extra_metrics=extra,
                duration_s=duration_s,
            ),
            params,
            state,
            delta,
        )

    def _drain(self, live: dict[str, _Live], version: int) -> None:
        """Let the jobs still out end before the run does; their updates unused.

        A site reads its goodbye only after its current job: if the coordinator
        stopped first, the site's upload would find no server and it would retry
        for as long as it waits for a coordinator. So each outstanding job is
        awaited until it answers or reaches its deadline; what it sends is
        released unread and recorded as a run event ``async_unused``.
        """
        while live:
            got = self._arrival(live)
            if got is None:
                continue
            job, result = got
            self._c.store.record_event(
                self._run_id,
                round=version,
                participant=job.site,
                kind=UNUSED_EVENT,
                detail=f"{result.status}: trained from version {job.base} after "
                "the last version was made; not aggregated",
            )

    def _arrival(self, live: dict[str, _Live]) -> tuple[Dispatch, _Result] | None:
        """The next job to end, taken out of ``live``; None if nothing came yet.

        A job past its deadline ends as ``timeout`` (its executor job abandoned,
        so a late update is refused as stale); an event of a job that is not
        outstanding (an earlier job of the site) is released and ignored.
        """
        c = self._c
        now = c.clock()
        for site, held in live.items():
            if held.deadline <= now:
                del live[site]
                c.executor.abandon(held.job.seq, [site])
                reason = f"no update within the deadline ({self._rnd.deadline_s:g} s)"
                return held.job, _Result(
                    None, 0, self._rnd.deadline_s, {}, None, "timeout", reason
                )
        wait = min(h.deadline for h in live.values()) - now
        event = c.executor.next_event(max(wait, 0.0))
        if isinstance(event, TrainDone):
            held_or_none = live.get(event.participant)
            try:
                if held_or_none is None or held_or_none.job.seq != event.round:
                    return None
                c.receipt(event)
                result = _Result(
                    event.update.copy(),
                    event.num_examples,
                    event.duration_s,
                    dict(event.metrics),
                    event.update_digest,
                    bytes_sent=event.bytes_sent,
                )
            finally:
                c.executor.release(event)
            del live[event.participant]
            return held_or_none.job, result
        if isinstance(event, JobFailed) and event.kind == "train":
            held_or_none = live.get(event.participant)
            if held_or_none is None or held_or_none.job.seq != event.round:
                return None
            del live[event.participant]
            return held_or_none.job, _failed(event)
        return None

    def _replay(
        self,
        version: int,
        buffer: FedBuffBuffer,
        outcomes: dict[str, ParticipantOutcome],
    ) -> None:
        """Fold the results held back from the last version, while they fit."""
        waiting, self._deferred = self._deferred, []
        for job, result in waiting:  # a site's second update, one version on
            if buffer.full or _has_ok(outcomes, job.site):
                self._deferred.append((job, result))
            else:
                self._fold(job, result, version, buffer, outcomes)

    def _dispatch_idle(self, base: int) -> None:
        """Start every site with no job in flight and nothing held, on ``base``.

        In roster order, so the same run dispatches in the same order.
        """
        for site in self._roster:
            if not self._schedule.busy(site) and not self._waits(site):
                self._pending.append(self._schedule.dispatch(site, base, self._now))

    def _waits(self, site: str) -> bool:
        """True while a result of ``site`` is held back.

        For a later version, or until the norm rule can judge it. Such a site is
        not given another job until that result is taken: one held result per
        site, so a site much faster than the others cannot pile up model-sized
        results in the coordinator's memory.
        """
        return any(job.site == site for job, _ in self._deferred) or any(
            job.site == site for job, _, _ in self._unjudged
        )

    def _take(
        self,
        job: Dispatch,
        result: _Result,
        version: int,
        buffer: FedBuffBuffer,
        outcomes: dict[str, ParticipantOutcome],
        misses: int,
        limit: int,
    ) -> int:
        """Fold one arrival, or hold it back if its site has one in this version.

        Returns how many jobs in a row have brought no valid update; raises
        :class:`RunAborted` when that count reaches ``limit``.
        """
        held = any(j.site == job.site for j, _, _ in self._unjudged)
        if (_has_ok(outcomes, job.site) or held) and result.update is not None:
            self._deferred.append((job, result))
            return misses
        ok = self._fold(job, result, version, buffer, outcomes)
        misses = 0 if ok else misses + 1
        if misses >= limit:
            raise RunAborted(
                f"no valid update in {misses} async jobs in a row; see "
                f"`accord runs show {self._run_id}`"
            )
        return misses

    def _fold(
        self,
        job: Dispatch,
        result: _Result,
        version: int,
        buffer: FedBuffBuffer,
        outcomes: dict[str, ParticipantOutcome],
    ) -> bool:
        """Judge one result and fold it if valid; record its outcome.

        True if it is valid: folded, or held until the norm rule can judge it.
        """
        staleness = version - job.base
        facts = {"staleness": float(staleness), "base_version": float(job.base)}
        if result.update is None:
            self._record(
                outcomes, version, _outcome(job.site, result, result.status, facts)
            )
            return False
        reason, norm = self._check(job, result, version, buffer)
        if reason is None and norm is not None:
            if self._norm_rule.must_hold():
                self._unjudged.append((job, result, norm))
                if self._norm_rule.gathered(len(self._unjudged)):
                    self._judge_held(version, buffer, outcomes)
                return True
            reason = self._norm_rule.outlier(norm)
        if reason is not None:
            self._refuse(job, result, reason, version, outcomes)
            return False
        self._add(job, result, norm, version, buffer, outcomes)
        return True

    def _check(
        self, job: Dispatch, result: _Result, version: int, buffer: FedBuffBuffer
    ) -> tuple[str | None, float | None]:
        """Why ``result`` cannot be folded (None if it can); its norm if judged."""
        assert result.update is not None
        staleness = version - job.base
        if staleness > self._rnd.max_staleness:
            return (
                f"stale: trained from version {job.base}, {staleness} versions "
                f"behind version {version}, above round.max_staleness = "
                f"{self._rnd.max_staleness}; not aggregated"
            ), None
        c = self._c
        try:
            norm = validate_update(
                buffer.spec,
                result.update,
                result.num_examples,
                participant=job.site,
                bounds=c.bounds,
                max_norm=c.config.strategy.max_update_norm,
                want_norm=self._norm_rule.active,
            )
            check_metric_names(result.metrics)
        except UpdateRejected as exc:
            return exc.reason, None
        return None, norm

    def _judge_held(
        self,
        version: int,
        buffer: FedBuffBuffer,
        outcomes: dict[str, ParticipantOutcome],
    ) -> None:
        """Judge the run's first updates together, once there are enough of them.

        By :meth:`NormJudge.first`; those that pass fold in arrival order (held
        for the next version if the buffer fills).
        """
        held, self._unjudged = self._unjudged, []
        refused = self._norm_rule.first([(job.site, norm) for job, _, norm in held])
        for job, result, norm in held:
            if job.site in refused:
                self._refuse(job, result, refused[job.site], version, outcomes)
            elif buffer.full or _has_ok(outcomes, job.site):
                self._deferred.append((job, result))
            else:
                self._add(job, result, norm, version, buffer, outcomes)

    def _refuse(
        self,
        job: Dispatch,
        result: _Result,
        reason: str,
        version: int,
        outcomes: dict[str, ParticipantOutcome],
    ) -> None:
        staleness = version - job.base
        facts = {"staleness": float(staleness), "base_version": float(job.base)}
        logger.info("%s: update refused: %s", job.site, reason)
        refused = _Result(None, 0, result.duration_s, {}, None, "rejected", reason)
        self._record(outcomes, version, _outcome(job.site, refused, "rejected", facts))

    def _add(
        self,
        job: Dispatch,
        result: _Result,
        norm: float | None,
        version: int,
        buffer: FedBuffBuffer,
        outcomes: dict[str, ParticipantOutcome],
    ) -> None:
        assert result.update is not None
        staleness = version - job.base
        facts = {"staleness": float(staleness), "base_version": float(job.base)}
        weight = 1.0 if self._uniform else float(result.num_examples)
        facts["staleness_weight"] = buffer.add(result.update, weight, staleness)
        if norm is not None:
            self._norm_rule.folded(norm)
        if result.bytes_sent is not None:
            self._sent[job.site] = result.bytes_sent
        self._record(outcomes, version, _outcome(job.site, result, "ok", facts))

    def _record(
        self,
        outcomes: dict[str, ParticipantOutcome],
        version: int,
        outcome: ParticipantOutcome,
    ) -> None:
        """Keep ``outcome`` for the version being made, and tell the observer.

        A refused or failed job is also recorded as a run event
        (:data:`REFUSED_EVENT`), since a site's later valid update in the same
        version takes its place among the version's outcomes (one per site).
        """
        site = outcome.participant
        if outcome.status != "ok":
            self._c.store.record_event(
                self._run_id,
                round=version + 1,
                participant=site,
                kind=REFUSED_EVENT,
                detail=f"{outcome.status}: {outcome.reason}",
            )
        prior = outcomes.get(site)
        if prior is None or (prior.status != "ok" and outcome.status == "ok"):
            outcomes[site] = outcome
        self._c.observer.participant_finished(version + 1, outcome)

    def _flush(self, params: Params) -> None:
        """Train every dispatched job not trained yet, in one batch from ``params``.

        They all start from the current version: the executor publishes it
        (the coordinator did, when it made it). Each result is copied off the
        executor's buffers and kept until the virtual clock reaches it.
        """
        jobs, self._pending = self._pending, []
        if not jobs:
            return
        c = self._c
        batch = next(self._batches)
        by_site = {j.site: j for j in jobs}
        if len(by_site) != len(jobs):
            raise RuntimeError("a site was dispatched twice in one batch")
        c.executor.submit_train(batch, c.jobs(self._run_id, batch, list(by_site)))
        answered: set[str] = set()

        def handle(event: Event) -> None:
            if isinstance(event, TrainDone):
                job = by_site.get(event.participant)
                if event.round != batch or job is None or job.site in answered:
                    c.executor.release(event)
                    return
                try:
                    self._results[job.seq] = _Result(
                        event.update.copy(),
                        event.num_examples,
                        event.duration_s,
                        dict(event.metrics),
                        event.update_digest,
                        bytes_sent=event.bytes_sent,
                    )
                finally:
                    c.executor.release(event)
                answered.add(job.site)
            elif isinstance(event, JobFailed) and event.kind == "train":
                job = by_site.get(event.participant)
                if event.round != batch or job is None or job.site in answered:
                    return
                self._results[job.seq] = _failed(event)
                answered.add(job.site)

        def expire(late: tuple[str, ...]) -> None:
            for site in late:
                job = by_site[site]
                reason = f"no update within the deadline ({self._rnd.deadline_s:g} s)"
                self._results[job.seq] = _Result(
                    None, 0, self._rnd.deadline_s, {}, None, "timeout", reason
                )
                answered.add(site)

        collect(
            c.executor,
            round_number=batch,
            deadline=c.clock() + self._rnd.deadline_s,
            clock=c.clock,
            finished=lambda: len(answered) == len(by_site),
            pending=lambda: [s for s in by_site if s not in answered],
            handle=handle,
            expire=expire,
        )


@dataclass(frozen=True, slots=True)
class _Live:
    """A deployed site's outstanding job: its dispatch, deadline and model digest."""

    job: Dispatch
    deadline: float
    digest: str


class _Order(Protocol):
    """What the driver reads of a task an executor handed out."""

    @property
    def model_digest(self) -> str:
        """The digest of the model the task trains from."""
        ...


@runtime_checkable
class VersionServer(Protocol):
    """An executor that serves earlier model versions while newer ones are published.

    A deployment's (:class:`~accord.transport.executor.GrpcExecutor` made with
    ``versions=True``): the async driver then folds updates in arrival order.
    """

    def keep(self, digests: Collection[str]) -> None:
        """Serve only these earlier models besides the current one."""
        ...

    def task(
        self, name: str, kind: Literal["train", "eval", "secagg"], round_number: int
    ) -> _Order | None:
        """The task last handed to ``name`` as its ``kind`` job of the round."""
        ...


def _no_clock(site: str) -> float:
    """A deployment has no virtual clock: its jobs are not scheduled on one."""
    raise RuntimeError(f"no virtual clock in a deployment (asked for {site})")


def _has_ok(outcomes: Mapping[str, ParticipantOutcome], site: str) -> bool:
    """Whether ``site`` already has an update in the version being made."""
    prior = outcomes.get(site)
    return prior is not None and prior.status == "ok"


def _failed(event: JobFailed) -> _Result:
    return _Result(None, 0, event.duration_s, {}, None, event.status, event.reason)


def _outcome(
    site: str, result: _Result, status: OutcomeStatus, facts: Mapping[str, float]
) -> ParticipantOutcome:
    """The recorded outcome of one async job, its staleness in its metrics."""
    ok = status == "ok"
    return ParticipantOutcome(
        participant=site,
        status=status,
        reason=result.reason,
        num_examples=result.num_examples if ok else 0,
        update_digest=result.digest if ok else None,
        duration_s=result.duration_s,
        metrics={**result.metrics, **facts} if ok else dict(facts),
    )


def last_time(recorded: Sequence[RoundRecord]) -> float:
    """The virtual time of the last recorded version (0 for a new run)."""
    for record in reversed(recorded):
        for m in record.metrics:
            if m.scope == CLOCK and m.name == VIRTUAL_TIME and m.participant is None:
                return m.value
    return 0.0
