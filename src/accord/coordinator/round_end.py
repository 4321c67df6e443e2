"""How a round ends: step the model, publish it, evaluate, checkpoint, record.

Every round (and every async version) ends the same way once its updates are in
(:meth:`RoundEnd.conclude`): the aggregate and the model it makes are checked
(finite, and the aggregate within ``[strategy] max_update_norm``) before either is
kept, a refused step being recorded as an ``aggregate_refused`` run event and the
round failed; the new model is published to the participants and evaluated
(:mod:`accord.coordinator.model_eval`); a completed round's checkpoint is written
and fsynced on a thread meanwhile, and the round is recorded only once it is on
disk, with its ledger entry if the run keeps a ledger, so a crash never leaves a
recorded round without its model. Observers are told last.

A simulation may overlap a plain round's end with the next round's jobs
(``overlap``): the round is then recorded, and observers told, by :meth:`flush`,
which the coordinator calls once the next round's jobs are out, and before
anything else is recorded; :meth:`flush_after` keeps that round when a run is
aborted in between. A deployment never overlaps: its next round would send other
organizations a model whose round is not recorded yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from accord.aggregation.integrity import check_params
from accord.config import FedConfig
from accord.coordinator.executor import Executor
from accord.coordinator.lineage import Lineage
from accord.coordinator.metrics import train_metrics
from accord.coordinator.model_eval import ModelEvaluation
from accord.coordinator.privacy import RELEASED_EVENT, released_detail
from accord.coordinator.strategy import Strategy
from accord.coordinator.summary import RoundSummary
from accord.errors import AggregateRejected
from accord.params import Params
from accord.records import (
    MetricValue,
    ParticipantOutcome,
    PrivacySpent,
    RoundRecord,
    UpdateScore,
)
from accord.threads import in_background

if TYPE_CHECKING:  # the store's implementations pull in SQLAlchemy
    from accord.coordinator.observer import RunObserver
    from accord.store.checkpoint import CheckpointStore
    from accord.store.protocol import RunStore

__all__ = ["Concluding", "RoundEnd"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Concluding:
    """What a round (or an async version) hands :meth:`RoundEnd.conclude`."""

    number: int
    started: datetime
    t0: float
    selected: tuple[str, ...]
    outcomes: tuple[ParticipantOutcome, ...]
    succeeded: int
    reason: str | None
    scores: tuple[UpdateScore, ...] = ()
    spent: tuple[PrivacySpent, ...] = ()
    #: The share of the federation behind the aggregate (SCAFFOLD's |S|/N).
    fraction: float = 1.0
    #: Metrics recorded beside the training ones (an async version's clock).
    extra_metrics: tuple[MetricValue, ...] = ()
    #: The duration to report (None: measured on the coordinator's clock).
    duration_s: float | None = None


class RoundEnd:
    """Ends the rounds of one run; holds what an overlapped round has left to do."""

    def __init__(
        self,
        config: FedConfig,
        *,
        executor: Executor,
        store: RunStore,
        strategy: Strategy,
        evaluation: ModelEvaluation,
        observer: RunObserver,
        clock: Callable[[], float],
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self._config = config
        self._executor = executor
        self._store = store
        self._strategy = strategy
        self._evaluation = evaluation
        self._observer = observer
        self._clock = clock
        self._checkpoints = checkpoints
        #: What is left of the last round's end when it overlaps this round.
        self._pending: Callable[[], None] | None = None

    def conclude(
        self,
        run_id: str,
        c: Concluding,
        params: Params,
        state: Params,
        delta: Params | None,
        *,
        lineage: Lineage | None,
        overlap: bool = False,
    ) -> tuple[Params, Params, RoundSummary]:
        """Step the model by ``delta``, publish, evaluate, checkpoint and record.

        What every round (and every async version) ends with, once its updates
        are in: ``delta`` None means the round failed (``c.reason`` says why).
        A completed round's checkpoint is written on a thread while the model is
        published and evaluated. With ``overlap``, the round is recorded (with
        what observers are told of it) by :meth:`flush`, once the next round's
        jobs are out; the next round's duration includes any wait for it.
        ``lineage`` is the run's ledger, which records the round with its entry
        (None: the run keeps none, and the round goes to the store alone).
        """
        self.flush()
        number, started, t0, selected = c.number, c.started, c.t0, c.selected
        outcomes, succeeded, reason, spent = c.outcomes, c.succeeded, c.reason, c.spent
        failed = delta is None
        # The aggregate's digest goes to the ledger only: not hashed without one.
        # It is taken on a thread while the model steps and is hashed itself
        # (hashing and numpy release the GIL; nothing here writes to ``delta``):
        # the workers or sites wait for this end of the round.
        aggregate: Callable[[], str] | None = None
        if delta is not None and lineage is not None:
            aggregate = in_background(delta.digest)
        if delta is not None:
            params, state, reason = self.step(
                run_id, number, params, state, delta, c.fraction
            )
            failed = reason is not None
            del delta
        status: Literal["completed", "failed"] = "failed" if failed else "completed"
        metrics: list[MetricValue] = train_metrics(outcomes) + list(c.extra_metrics)
        digest = params.digest()  # once: the executor and the checkpoint reuse it
        checkpoints = self._checkpoints if status == "completed" else None

        def save() -> Path | None:
            if checkpoints is None:
                return None
            return checkpoints.save(
                run_id, number, params, extra={"opt": state}, digest=digest
            )

        # The checkpoint is written (on a thread: writing and fsyncing release the
        # GIL) while the model is packed for the sites and evaluated; nothing here
        # writes to ``params`` or ``state``. The round is recorded once it is on
        # disk, and (without overlap) before the next round's jobs go out.
        released = [
            p for p in spent if p.level == "participant" and p.participant is None
        ]
        if released:
            # Durable before the noised model leaves: a stop before the round is
            # recorded must not let a resumed run forget this release.
            self._store.record_event(
                run_id,
                round=number,
                participant=None,
                kind=RELEASED_EVENT,
                detail=released_detail(released[-1]),
            )
        written = in_background(save) if checkpoints is not None else save
        published = self._strategy.published(params, state)
        # SCAFFOLD publishes its control variate after the model: its own digest.
        shown = digest if published is params else published.digest()
        self._executor.publish(published, digest=shown)
        if status == "completed" and self._evaluation.due(number):
            metrics += self._evaluation.run(run_id, number, params, t0, published=shown)
        record = partial(
            RoundRecord,
            run_id=run_id,
            number=number,
            started_at=started,
            finished_at=datetime.now(UTC),
            status=status,
            global_digest=digest,
            selected=selected,
            outcomes=outcomes,
            metrics=tuple(metrics),
            privacy=spent,
            scores=c.scores,
        )

        def recorded(path: Path | None) -> None:
            done = record(checkpoint=None if path is None else str(path))
            if lineage is None:
                self._store.record_round(done)
            else:
                lineage.record_round(
                    done, aggregate=None if aggregate is None else aggregate()
                )

        def summarised() -> RoundSummary:
            return RoundSummary(
                number=number,
                status=status,
                selected=len(selected),
                succeeded=succeeded,
                duration_s=self._clock() - t0 if c.duration_s is None else c.duration_s,
                global_digest=digest,
                metrics={
                    f"{m.scope}.{m.name}": m.value
                    for m in metrics
                    if m.participant is None
                },
                reason=reason,
                epsilon=max((p.epsilon for p in spent), default=None),
            )

        if overlap and checkpoints is not None:
            summary = summarised()
            done: list[str] = []  # the steps taken: a Ctrl-C may come between them

            def finish() -> None:
                if "recorded" not in done:
                    recorded(written())  # the thread's result can be asked again
                    done.append("recorded")
                if "told" not in done:
                    done.append("told")  # once, even if the observer is interrupted
                    self._observer.round_finished(summary)

            self._pending = finish
        else:
            recorded(written())
            summary = summarised()
            self._observer.round_finished(summary)
        return params, state, summary

    def flush(self) -> None:
        """Finish the last round's end if it overlapped this round (see ``overlap``).

        Its checkpoint written, the round recorded, observers told. A failure
        (the checkpoint could not be written) is raised here, once. An interrupt
        (Ctrl-C while the checkpoint is still being written) leaves what is left
        of it pending, for :meth:`flush_after` to finish.
        """
        pending = self._pending
        if pending is None:
            return
        try:
            pending()
        except Exception:
            self._pending = None
            raise
        self._pending = None

    def flush_after(self, exc: BaseException) -> None:
        """:meth:`flush` as a run is aborted by ``exc``: the last round is kept.

        Whatever this raises (a second Ctrl-C included) is logged, so that the run
        is still closed as aborted.
        """
        try:
            self.flush()
        except BaseException:
            logger.exception(
                "the last round's checkpoint or record failed while the run was "
                "aborted (%s: %s); a resume runs that round again",
                type(exc).__name__,
                exc,
            )

    def step(
        self,
        run_id: str,
        number: int,
        params: Params,
        state: Params,
        delta: Params,
        fraction: float = 1.0,
    ) -> tuple[Params, Params, str | None]:
        """The next model and state, or the old ones and why the step was refused.

        The aggregate, the new model and the new optimizer state are checked (finite,
        and the aggregate against ``max_update_norm``) before any of them is kept; a
        refusal is logged and recorded as a run event (``aggregate_refused``).
        """
        try:
            check_params(
                delta, what="aggregate", max_norm=self._config.strategy.max_update_norm
            )
            new_params, new_state = self._strategy.apply(
                params, delta, state, fraction=min(1.0, fraction)
            )
        except AggregateRejected as exc:
            logger.warning("round %d failed: %s", number, exc)
            self._store.record_event(
                run_id,
                round=number,
                participant=None,
                kind="aggregate_refused",
                detail=str(exc),
            )
            return params, state, str(exc)
        return new_params, new_state, None
