"""The round loop: select, dispatch, collect, aggregate, evaluate, record.

:class:`Coordinator` drives :class:`~accord.coordinator.round.Round` over any
:class:`~accord.coordinator.executor.Executor`, so the same loop runs a simulation and
a deployment. A participant that raises, hangs past the deadline or sends a bad update
gets an outcome with the reason and the round goes on with the quorum; a round without
quorum leaves the model unchanged and is recorded as failed, as is a round whose
aggregate or new model fails an integrity check (not finite, or above ``[strategy]
max_update_norm``): both are checked before anything is published, checkpointed or
recorded, and the reason names the check and the tensor. An evaluation report
outside the federation's bounds (:mod:`accord.coordinator.integrity`) is refused,
logged and recorded as a run event, never folded in. A run none of whose rounds
completed is recorded as failed too, with the reason. Each completed round is
checkpointed and committed to the store before the next one starts, so that
:meth:`Coordinator.resume` can continue a run that stopped (see
:mod:`accord.coordinator.resume`). While it runs or resumes a run it holds the run's
lease (:meth:`~accord.store.protocol.RunStore.lease_run`), so a second process that
would serve the same run is refused before its first round; a caller that took the
lease already (the deployment CLI does, before it listens) takes it again freely.
With ``[privacy] level = "participant"`` the round's aggregate is the noised mean of
clipped updates and each round's epsilon is stored with it
(:mod:`accord.coordinator.privacy`); a round that would take epsilon past the
budget does not start, and the run ends there, completed, with the reason
"budget exhausted" and the epsilon spent in its summary.

With ``[robustness]`` scoring on, a plain round keeps a copy of each valid update,
scores them against each other and the aggregate (:mod:`accord.detection`), stores
the scores with the round and counts flags; a site flagged ``quarantine_after``
times is excluded from aggregation from the next round on (its updates still
recorded, as ``quarantined``) and a ``quarantined`` run event says when. A secure
round scores nothing: the coordinator never sees a single update there.

Given a :class:`~accord.coordinator.lineage.LedgerSetup`, the run keeps a signed,
hash-chained ledger, each round's entry stored with the round
(:mod:`accord.coordinator.lineage`).

The loop delegates each part of a round: a plain round's updates are collected by
:mod:`accord.coordinator.plain`, a secure round's by
:mod:`accord.coordinator.secure` (or :mod:`accord.coordinator.ckks_round`), an
async run's by :mod:`accord.coordinator.asynchronous`; every round ends in
:mod:`accord.coordinator.round_end` (step, publish, checkpoint, record), which has
the new model measured by :mod:`accord.coordinator.model_eval`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from accord.config import FedConfig
from accord.coordinator.executor import (
    Bounding,
    Executor,
    TrainDone,
    TrainJob,
    eligible,
)
from accord.coordinator.integrity import ExampleBounds
from accord.coordinator.keeper import UpdateKeeper
from accord.coordinator.lineage import LedgerSetup, Lineage
from accord.coordinator.model_eval import CentralEval, ModelEvaluation
from accord.coordinator.observer import Guarded, RunObserver, SilentObserver
from accord.coordinator.plain import PlainCollector
from accord.coordinator.privacy import CentralPrivacy, check_supported
from accord.coordinator.record_privacy import RecordPrivacy
from accord.coordinator.resume import resume_point
from accord.coordinator.round import Round, RoundPlan, UpdateObserver
from accord.coordinator.round_end import Concluding, RoundEnd
from accord.coordinator.selection import derive_seed, select
from accord.coordinator.strategy import RootUpdate, Strategy, published_spec
from accord.coordinator.summary import (
    RoundSummary,
    RunResult,
    failed_in_a_row,
    last_metrics,
    summary_of,
    untrained,
)
from accord.coordinator.transfers import record_transfers
from accord.detection import FlagRules, QuarantineState, UpdateMatrix, replay
from accord.errors import (
    ConfigError,
    PrivacyBudgetExhausted,
    RunAborted,
    StoreError,
)
from accord.params import Params
from accord.records import (
    MetricValue,
    ParticipantOutcome,
    PrivacySpent,
    RoundRecord,
    UpdateScore,
)
from accord.task.protocol import TrainConfig
from accord.transforms.compression import OPTION_KEY as COMPRESSION_OPTION
from accord.transforms.compression import Declared

if TYPE_CHECKING:  # the store's implementations pull in SQLAlchemy; the loop needs none
    from accord.coordinator.ckks_round import CkksCollector
    from accord.coordinator.secure import SecureCollector
    from accord.store.checkpoint import CheckpointStore
    from accord.store.protocol import FinalStatus, RunStore

__all__ = [
    "Coordinator",
    "RoundSummary",
    "RunObserver",
    "RunResult",
    "calibrate_privacy",
    "create_run",
]

logger = logging.getLogger(__name__)

#: Bits per value in the masking ring by ``[compression] method``: quantized
#: updates are packed several to a word (:mod:`accord.secagg.packed`).
_RING_BITS = {"q8": 8, "q4": 4}


def create_run(store: RunStore, config: FedConfig) -> str:
    """Record a new run of ``config`` in ``store`` (status ``running``); its id.

    :meth:`Coordinator.run` does it by itself; a caller that needs the id before the
    first round (a deployment names the run on the wire and records refusals under
    it while participants connect) creates the run first and passes its id.
    """
    return store.create_run(
        name=config.federation.name,
        config=config.to_json_dict(),
        seed=config.federation.seed,
        rounds_planned=config.federation.rounds,
    )


def calibrate_privacy(
    config: FedConfig,
    *,
    participants: int,
    site_rows: Mapping[str, int] | None = None,
) -> tuple[CentralPrivacy | None, RecordPrivacy | None]:
    """The run's DP, its noise calibrated: ``ConfigError`` if it cannot be.

    A target epsilon that the planned rounds cannot reach is a configuration
    error, found before the run exists: :meth:`Coordinator.run` calls this before
    it creates the run, and ``accord coordinator`` before it listens or creates
    one (``participants``: the roster the executor will hold; ``site_rows``: each
    site's training rows, None for ``[deployment] declared_examples``).
    """
    return (
        CentralPrivacy.of(config, participants=participants),
        RecordPrivacy.of(config, rows=site_rows),
    )


class Coordinator:
    """Runs the configured number of rounds over an executor and records them."""

    def __init__(
        self,
        config: FedConfig,
        *,
        executor: Executor,
        store: RunStore,
        checkpoints: CheckpointStore | None = None,
        central_eval: CentralEval | None = None,
        root_update: RootUpdate | None = None,
        observer: RunObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        ckks_public_context: bytes | None = None,
        site_rows: Mapping[str, int] | None = None,
        ledger: LedgerSetup | None = None,
        job_time: Callable[[str], float] | None = None,
        fairness_groups: Sequence[str] | None = None,
        overlap: bool = False,
    ) -> None:
        self.config = config
        #: Whether a plain round's checkpoint may be written, and the round then
        #: recorded, while the next round's jobs run. Only where those jobs reach
        #: no other organization (a simulation): they start from a model whose
        #: round is not recorded yet, which a crash would make a round that
        #: never was (the round is run again on resume).
        self._overlap = overlap
        #: A train job's duration per site on the simulation's virtual clock
        #: (:mod:`accord.simulation.timing`); async mode needs it. None: no
        #: virtual clock (a deployment).
        self.job_time = job_time
        #: Each site's training rows, for record-level DP (None: declared_examples).
        self._site_rows = site_rows
        self._ledger = ledger
        self._lineage: Lineage | None = None
        self._ckks_public = ckks_public_context
        self._executor = executor
        self._store = store
        self._checkpoints = checkpoints
        # A display that raises is detached, not the run's end (.observer).
        self._observer: RunObserver = (
            SilentObserver() if observer is None else Guarded(observer)
        )
        self._clock = clock
        self._strategy = Strategy(
            config.strategy,
            root_update=root_update,
            learning_rate=config.train.learning_rate,
        )
        self._bounds = ExampleBounds.of(config)
        self._evaluation = ModelEvaluation(
            config,
            executor=executor,
            store=store,
            clock=clock,
            bounds=self._bounds,
            central_eval=central_eval,
            fairness_groups=fairness_groups,
        )
        self._end = RoundEnd(
            config,
            executor=executor,
            store=store,
            strategy=self._strategy,
            evaluation=self._evaluation,
            observer=self._observer,
            clock=clock,
            checkpoints=checkpoints,
        )
        check_supported(config)
        self._privacy: CentralPrivacy | None = None
        self._record: RecordPrivacy | None = None
        if isinstance(executor, Bounding):  # a deployment refuses on arrival
            executor.bound_examples(self._bounds)
        rob = config.robustness
        self._rules = FlagRules(
            max_norm_z=rob.max_norm_z,
            min_cosine=rob.min_cosine,
            max_distance_z=rob.max_distance_z,
            min_nearest_ratio=rob.min_nearest_ratio,
        )
        self._quarantine = QuarantineState(rob.quarantine_after)
        #: Why the run stopped before its last round (DP budget), if it did.
        self._stopped: str | None = None
        #: The virtual clock of a simulated synchronous run (with ``job_time``).
        self._virtual_now = 0.0

    @property
    def executor(self) -> Executor:
        """Where the jobs run."""
        return self._executor

    @property
    def store(self) -> RunStore:
        """Where the run is recorded."""
        return self._store

    @property
    def observer(self) -> RunObserver:
        """Who is told of progress (the CLI's progress bar)."""
        return self._observer

    @property
    def clock(self) -> Callable[[], float]:
        """The clock deadlines are read from."""
        return self._clock

    @property
    def bounds(self) -> ExampleBounds:
        """The federation's bounds on an update's example count."""
        return self._bounds

    def conclude(
        self,
        run_id: str,
        c: Concluding,
        params: Params,
        state: Params,
        delta: Params | None,
    ) -> tuple[Params, Params, RoundSummary]:
        """Step, publish, evaluate, checkpoint and record a round or async version."""
        return self._end.conclude(
            run_id, c, params, state, delta, lineage=self._lineage
        )

    def receipt(self, event: TrainDone) -> None:
        """Check and keep the ledger receipt an update carries, if the run has one."""
        if event.receipt and self._lineage is not None:
            self._lineage.receipt(event.participant, event.receipt, event.certificate)

    def jobs(self, run_id: str, number: int, sites: Sequence[str]) -> list[TrainJob]:
        """Train jobs for ``sites``, seeded by ``number`` (a round or async batch)."""
        return self._jobs(run_id, number, sites)

    def run(
        self,
        initial: Params,
        *,
        run_id: str | None = None,
        extra_summary: Callable[[Params], Mapping[str, Any]] | None = None,
        on_created: Callable[[str], None] | None = None,
    ) -> RunResult:
        """Train for ``federation.rounds`` rounds from ``initial``; return the model.

        ``run_id`` is a run made by :func:`create_run` that has no round yet (None:
        create one now, once the configuration has passed every check that needs
        the participants, and tell ``on_created`` its id); a run with rounds
        continues with :meth:`resume` instead.
        ``extra_summary`` computes more of the run's stored summary from the final
        model (the simulation uses it for its pooled and site-alone comparison).
        :class:`~accord.errors.RunBusy` if another process serves ``run_id``.
        """
        cfg = self.config
        # DP's noise is calibrated before a run exists: a target epsilon that cannot
        # be reached is a configuration error, not an aborted run.
        self._privacy, self._record = calibrate_privacy(
            cfg, participants=len(eligible(self._executor)), site_rows=self._site_rows
        )
        if run_id is None:
            run_id = create_run(self._store, cfg)
            if on_created is not None:
                on_created(run_id)
        with self._store.lease_run(run_id):
            if self._store.rounds(run_id):
                raise StoreError(
                    f"run {run_id} already has recorded rounds; continue it with resume"
                )
            logger.info("run %s started: %d rounds", run_id, cfg.federation.rounds)
            self._start_ledger(run_id, 1)
            state = self._strategy.init_state(initial)
            return self._run_from(run_id, 1, (initial, state), (), extra_summary)

    def resume(
        self,
        run_id: str,
        initial: Params,
        *,
        extra_summary: Callable[[Params], Mapping[str, Any]] | None = None,
    ) -> RunResult:
        """Continue ``run_id`` after its last recorded round; return the final model.

        The run keeps its id; it continues from the checkpoint of its last completed
        round (``initial`` if none completed) and is marked running again. The
        configuration must be the one it started with (execution settings aside):
        :class:`ConfigError` otherwise; :class:`~accord.errors.RunBusy` if another
        process serves the run. The result lists the earlier rounds too.
        """
        with self._store.lease_run(run_id):
            point = resume_point(
                self._store, self._checkpoints, run_id, self.config.to_json_dict()
            )
            if point.params is None or point.state is None:
                params, state = initial, self._strategy.init_state(initial)
            else:
                params, state = point.params, point.state
            if params.spec != initial.spec:
                raise StoreError(
                    f"run {run_id}'s checkpoint does not fit the task's model (its "
                    "tensors differ); resume with the task the run was started with"
                )
            self._privacy, self._record = calibrate_privacy(
                self.config,
                participants=len(eligible(self._executor)),
                site_rows=self._site_rows,
            )
            self._store.reopen_run(run_id)
            self._quarantine = replay(
                self.config.robustness.quarantine_after, point.recorded
            )
            logger.info("run %s resumed at round %d", run_id, point.next_round)
            self._start_ledger(run_id, point.next_round)
            done = tuple(summary_of(r) for r in point.recorded)
            return self._run_from(
                run_id,
                point.next_round,
                (params, state),
                done,
                extra_summary,
                recorded=point.recorded,
            )

    def _run_from(
        self,
        run_id: str,
        first: int,
        start: tuple[Params, Params],
        done: tuple[RoundSummary, ...],
        extra_summary: Callable[[Params], Mapping[str, Any]] | None,
        *,
        recorded: Sequence[RoundRecord] = (),
    ) -> RunResult:
        """Run rounds ``first`` to the last from model and state ``start``."""
        cfg = self.config
        params, state = start
        self._executor.publish(self._strategy.published(params, state))
        summaries = list(done)
        failed = failed_in_a_row(summaries)
        stopped: str | None = None
        try:
            if self._privacy is not None:
                self._privacy.restore(recorded, self._store.events(run_id))
            if self._record is not None:
                self._record.restore(recorded, self._store.events(run_id))
            for made in self._rounds(run_id, first, params, state, recorded):
                params, _, summary = made
                summaries.append(summary)
                failed = failed + 1 if summary.status == "failed" else 0
                if failed >= cfg.round.max_failed_rounds:
                    raise RunAborted(
                        f"{failed} rounds in a row failed (last: {summary.reason}); "
                        f"see `accord runs show {run_id}`"
                    )
            self._end.flush()
            stopped = self._stopped
            final: dict[str, Any] = {"final": last_metrics(summaries)}
            if self._privacy is not None:
                final["privacy"] = self._privacy.summary()
            if self._record is not None:
                final["privacy"] = self._record.summary()
            if extra_summary is not None:
                final.update(extra_summary(params))
        except BaseException as exc:
            self._end.flush_after(exc)
            why = f"{type(exc).__name__}: {exc}"[:500]
            self._finish(run_id, "aborted", None, params, len(summaries), why)
            raise
        result = RunResult(
            run_id=run_id, params=params, rounds=tuple(summaries), stopped=stopped
        )
        if stopped is not None:
            final["reason"] = stopped
        reason = untrained(result)
        if reason is not None:  # it ran to its end, but trained nothing
            logger.info("run %s failed: %s", run_id, reason)  # the CLI says it
            final["reason"] = reason
        status: FinalStatus = "completed" if reason is None else "failed"
        self._finish(run_id, status, final, params, len(summaries), final.get("reason"))
        return result

    def _rounds(
        self,
        run_id: str,
        first: int,
        params: Params,
        state: Params,
        recorded: Sequence[RoundRecord],
    ) -> Iterator[tuple[Params, Params, RoundSummary]]:
        """Each round's (or async version's) model, state and summary, as made.

        A round that DP's budget cannot pay for ends the iteration, with the
        reason in ``self._stopped``.
        """
        self._stopped = None
        if self.config.round.mode == "async":
            from accord.coordinator.asynchronous import AsyncDriver

            driver = AsyncDriver(self, run_id, recorded)
            yield from driver.versions(first, params, state)
            return
        from accord.coordinator.asynchronous import last_time

        self._virtual_now = last_time(recorded)
        for number in range(first, self.config.federation.rounds + 1):
            try:
                params, state, summary = self._round(run_id, number, params, state)
            except PrivacyBudgetExhausted as exc:
                self._stopped = f"budget exhausted before round {number}: {exc.detail}"
                logger.info("run %s stopped: %s", run_id, self._stopped)
                return
            yield params, state, summary

    def _start_ledger(self, run_id: str, next_round: int) -> None:
        """Open or continue the run's ledger, if it keeps one."""
        if self._ledger is None:
            return
        self._lineage = Lineage(
            self._ledger,
            self._store,
            run_id,
            config=self.config.to_json_dict(),
            secure=self.config.secure_aggregation.mode,
            window=self.config.round.max_staleness + 1
            if self.config.round.mode == "async"
            else 1,
        )
        self._lineage.start(eligible(self._executor), next_round=next_round)

    def _finish(
        self,
        run_id: str,
        status: FinalStatus,
        summary: Mapping[str, Any] | None,
        params: Params,
        rounds: int,
        reason: object,
    ) -> None:
        """Mark the run ended, with its closing ledger entry if it keeps one."""
        if self._lineage is None:
            self._store.finish_run(run_id, status=status, summary=summary)
            return
        self._lineage.finish(
            status=status,
            summary=summary,
            model=params.digest(),
            rounds=rounds,
            reason=None if reason is None else str(reason),
        )

    def _round(
        self, run_id: str, number: int, params: Params, state: Params
    ) -> tuple[Params, Params, RoundSummary]:
        cfg = self.config
        self._strategy.begin_round(number, params, state)
        started, t0 = datetime.now(UTC), self._clock()
        roster = eligible(self._executor)
        selected = select(
            roster,
            fraction=cfg.selection.fraction,
            minimum=cfg.selection.min_participants,
            run_seed=cfg.federation.seed,
            round_number=number,
            count=cfg.selection.count,
        )
        if self._privacy is not None:  # a round over the budget never starts
            self._privacy.admit(len(selected), len(roster), values=params.size)
        if self._record is not None:  # nor one that would take a site past it
            self._record.admit(selected)
            # Before any task goes out: a stop before the round is recorded
            # must not make the sites' releases vanish from the accounting.
            self._store.record_events(
                run_id, [self._record.dispatched(number, selected)]
            )
        required = max(1, math.ceil(cfg.round.quorum * len(selected)))
        plan = RoundPlan(number, selected, required)
        scores: tuple[UpdateScore, ...] = ()
        if cfg.secure_aggregation.mode == "off":
            outcomes, succeeded, delta, reason, scores = self._plain(
                run_id, plan, params, t0
            )
            self._count_flags(run_id, number, scores)
        else:
            outcomes, succeeded, delta, reason = self._secure(run_id, plan, params, t0)
        spent: tuple[PrivacySpent, ...] = ()
        if self._privacy is not None:
            central = self._privacy.settle(len(selected), len(roster))
            spent = () if central is None else (central,)
        if self._record is not None:
            spent = self._record.settle(outcomes)
        clock: tuple[MetricValue, ...] = ()
        if self.job_time is not None:
            from accord.coordinator.asynchronous import (
                CLOCK,
                VIRTUAL_TIME,
                sync_round_time,
            )

            self._virtual_now += sync_round_time(
                selected, self.job_time, cfg.round.close_fraction
            )
            clock = (MetricValue(CLOCK, None, VIRTUAL_TIME, self._virtual_now),)
        return self._end.conclude(
            run_id,
            Concluding(
                extra_metrics=clock,
                number=number,
                started=started,
                t0=t0,
                selected=selected,
                outcomes=outcomes,
                succeeded=succeeded,
                reason=reason,
                scores=scores,
                spent=spent,
                fraction=succeeded / max(len(roster), 1),
            ),
            params,
            state,
            delta,
            lineage=self._lineage,
            overlap=self._overlap
            and cfg.secure_aggregation.mode == "off"
            and number < cfg.federation.rounds,
        )

    def _plain(
        self, run_id: str, plan: RoundPlan, params: Params, t0: float
    ) -> tuple[
        tuple[ParticipantOutcome, ...],
        int,
        Params | None,
        str | None,
        tuple[UpdateScore, ...],
    ]:
        """Collect and fold the selected participants' updates in the clear.

        With scoring on, also the scores of every valid update (none when the
        round failed: there is no aggregate to score against).
        """
        kept = UpdateMatrix() if self.config.robustness.scoring else None
        observer: UpdateObserver | None = kept
        if self.config.contribution.keep_updates and self._checkpoints is not None:
            observer = UpdateKeeper(
                self._checkpoints.updates(),
                run_id=run_id,
                number=plan.number,
                base=params,
                inner=kept,
            )
        spec = published_spec(self.config.strategy, params.spec)
        accumulator = (
            self._strategy.accumulator(spec)
            if self._privacy is None
            else self._privacy.accumulator(spec, plan.number, len(plan.selected))
        )
        rnd = Round(
            plan,
            spec,
            accumulator,
            bounds=self._bounds,
            max_norm=self.config.strategy.max_update_norm,
            max_norm_ratio=self.config.strategy.max_norm_ratio,
            excluded={
                q: self._quarantine.reason(q) for q in self._quarantine.quarantined
            },
            observer=observer,
            uniform=self.config.strategy.weighting == "uniform",
            close_fraction=self.config.round.close_fraction,
        )
        late = self._virtually_late(plan.selected)
        if late:
            rnd.close(
                late,
                why="on the simulation's virtual clock it finishes after the round "
                f"closed (round.close_fraction = {self.config.round.close_fraction:g})",
            )
        jobs = self._jobs(
            run_id, plan.number, [p for p in plan.selected if p not in late]
        )

        def submitted() -> None:
            self._end.flush()  # the last round's end, while this round's jobs run
            self._observer.round_started(plan.number, plan.selected)

        collector = PlainCollector(
            executor=self._executor,
            rnd=rnd,
            clock=self._clock,
            on_outcome=partial(self._observer.participant_finished, plan.number),
            receipt=self.receipt,
        )
        collector.collect(
            jobs, t0=t0, deadline_s=self.config.round.deadline_s, submitted=submitted
        )
        record_transfers(
            self._store,
            run_id,
            plan.number,
            collector.sent,
            method=self.config.compression.method,
            dense=spec.packed_nbytes,
        )
        delta, reason = collector.aggregate()
        if delta is None:
            return rnd.outcomes, rnd.succeeded, None, reason, ()
        scores = () if kept is None else kept.score(delta, self._rules)
        return rnd.outcomes, rnd.succeeded, delta, None, scores
        # The round's accumulator (a float64 copy of the model) goes with ``rnd``.

    def _virtually_late(self, selected: Sequence[str]) -> tuple[str, ...]:
        """Who a simulated round closes without, by ``close_fraction``.

        On the simulation's virtual clock (``job_time``) the order sites finish
        in is known before they train: the slowest beyond ``ceil(close_fraction ×
        selected)`` (ties: the later in selection order) are late, and are not
        trained at all. Without a virtual clock (a deployment, or a simulation
        without ``slowdown``), lateness is by arrival: empty here.
        """
        cf = self.config.round.close_fraction
        if self.job_time is None or cf >= 1 or not selected:
            return ()
        job_time = self.job_time
        order = sorted(range(len(selected)), key=lambda i: (job_time(selected[i]), i))
        keep = max(1, math.ceil(cf * len(selected)))
        return tuple(selected[i] for i in sorted(order[keep:]))

    def _count_flags(
        self, run_id: str, number: int, scores: tuple[UpdateScore, ...]
    ) -> None:
        """Count the round's flags; record a ``quarantined`` event for each new one."""
        self._quarantine, newly = self._quarantine.step(number, scores)
        for who in newly:
            reason = self._quarantine.reason(who)
            logger.info("%s %s", who, reason)
            self._store.record_event(
                run_id, round=number, participant=who, kind="quarantined", detail=reason
            )

    def _secure(
        self, run_id: str, plan: RoundPlan, params: Params, t0: float
    ) -> tuple[tuple[ParticipantOutcome, ...], int, Params | None, str | None]:
        """Run the round under secure aggregation: only the sum is ever seen."""
        from accord.coordinator.secure import SecureCollector  # needs the extra

        number = plan.number
        settings = self.config.secure_aggregation

        def report(outcome: ParticipantOutcome) -> None:
            self._observer.participant_finished(number, outcome)

        collector: SecureCollector | CkksCollector
        if settings.mode == "ckks":
            from accord.coordinator.ckks_round import CkksCollector

            if self._ckks_public is None:
                raise ConfigError(
                    "secure_aggregation.mode = 'ckks' needs the key holder's public "
                    "context; none was given to the coordinator",
                    key="secure_aggregation.mode",
                )
            collector = CkksCollector(
                executor=self._executor,
                settings=settings,
                public_context=self._ckks_public,
                run_id=run_id,
                plan=plan,
                spec=params.spec,
                clock=self._clock,
                on_outcome=report,
            )
        else:
            collector = SecureCollector(
                executor=self._executor,
                settings=settings,
                run_id=run_id,
                plan=plan,
                spec=params.spec,
                clock=self._clock,
                on_outcome=report,
                privacy=self._privacy,
                bits=_RING_BITS.get(self.config.compression.method, 32),
            )
        self._observer.round_started(number, plan.selected)
        out = collector.run(
            self._jobs(run_id, number, plan.selected), t0 + self.config.round.deadline_s
        )
        if isinstance(collector, SecureCollector):
            record_transfers(
                self._store,
                run_id,
                number,
                collector.sent,
                method=self.config.compression.method,
                dense=params.spec.packed_nbytes,
            )
        if out.reason is not None:
            logger.info("round %d failed: %s", number, out.reason)
        return out.outcomes, out.succeeded, out.delta, out.reason

    def _jobs(
        self, run_id: str, number: int, selected: Sequence[str]
    ) -> list[TrainJob]:
        train = self.config.train
        record = self._record
        index = {p: i for i, p in enumerate(self._executor.participants)}
        return [
            TrainJob(
                participant=p,
                config=TrainConfig(
                    epochs=train.epochs,
                    batch_size=train.batch_size,
                    learning_rate=train.learning_rate,
                    seed=derive_seed(self.config.federation.seed, number, index[p]),
                    round=number,
                    participant=p,
                    options={
                        **train.options,
                        **({} if record is None else record.options(run_id, p)),
                        **self._strategy.options(run_id),
                        **self._compression_option(),
                    },
                ),
                ledger_entry=""
                if self._lineage is None
                else self._lineage.entry_for(p),
            )
            for p in selected
        ]

    def _compression_option(self) -> dict[str, str]:
        """The train option declaring ``[compression]`` to a deployed site.

        A simulated site compresses in its worker regardless
        (:mod:`accord.simulation.compression`); a deployed one reads this
        (:mod:`accord.participant.compression`). The masked path carries its own
        ``bits`` in the secure job instead.
        """
        c = self.config.compression
        if c.method == "none" or self.config.secure_aggregation.mode != "off":
            return {}
        declared = Declared(
            c.method,
            c.fraction,
            self.config.federation.seed,
            warmup_rounds=c.warmup_rounds,
            momentum=c.momentum,
            masking=c.momentum_masking,
        )
        return {COMPRESSION_OPTION: declared.to_json()}
