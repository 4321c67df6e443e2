"""One plain round over an executor: each update seen, validated and folded in order.

:class:`PlainCollector` is the plain counterpart of
:class:`~accord.coordinator.secure.SecureCollector`. It sends the round's training
jobs and feeds each event that comes back to the round's
:class:`~accord.coordinator.round.Round`, the pure state machine that validates,
judges and folds; it hands each update's buffer back to the executor as soon as
the round no longer holds it, and closes the round at its deadline, or once
``[round] close_fraction`` of it has answered (the stragglers are abandoned and
recorded as late). Outcomes go to ``on_outcome`` as the round settles them; under
``max_norm_ratio`` an ``ok`` may come again as ``rejected`` once the round judges
its updates. The bytes each site reported sending (compressed updates) are kept
for the round's transfer record. What the round folds into, who is excluded, and
what the round's updates are scored against stay the coordinator's
(:mod:`accord.coordinator.runner`), which builds the :class:`Round`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from accord.coordinator.collector import collect
from accord.coordinator.executor import Event, Executor, JobFailed, TrainDone, TrainJob
from accord.coordinator.round import Round
from accord.errors import RoundFailed, UpdateRejected
from accord.params import Params
from accord.records import ParticipantOutcome

__all__ = ["PlainCollector"]

logger = logging.getLogger(__name__)


class PlainCollector:
    """Collects and folds one plain round's updates; build one per round."""

    def __init__(
        self,
        *,
        executor: Executor,
        rnd: Round,
        clock: Callable[[], float],
        on_outcome: Callable[[ParticipantOutcome], None] = lambda _: None,
        receipt: Callable[[TrainDone], None] = lambda _: None,
    ) -> None:
        self._ex = executor
        self._rnd = rnd
        self._clock = clock
        self._on_outcome = on_outcome
        self._receipt = receipt
        self._sent: dict[str, int] = {}

    @property
    def sent(self) -> dict[str, int]:
        """Bytes each participant reported sending for its update (compression)."""
        return dict(self._sent)

    def collect(
        self,
        jobs: Sequence[TrainJob],
        *,
        t0: float,
        deadline_s: float,
        submitted: Callable[[], None] = lambda: None,
    ) -> None:
        """Send ``jobs`` and take their events until the round can close.

        ``submitted`` runs once the jobs are out (the coordinator finishes the
        last round's end there, while these jobs run). The round closes at
        ``t0 + deadline_s`` at the latest.
        """
        rnd = self._rnd
        self._ex.submit_train(rnd.number, list(jobs))
        submitted()

        def handle(event: Event) -> None:
            self._apply(event)
            self._drain()

        def expire(late: tuple[str, ...]) -> None:
            rnd.expire(self._clock() - t0)

        late = collect(
            self._ex,
            round_number=rnd.number,
            deadline=t0 + deadline_s,
            clock=self._clock,
            finished=lambda: rnd.closable,
            pending=lambda: rnd.pending,
            handle=handle,
            expire=expire,
        )
        if not rnd.finished:  # closed early: the stragglers are late
            cut = tuple(o.participant for o in rnd.close())
            self._ex.abandon(rnd.number, cut)
            late += cut
        if late:
            self._drain()

    def aggregate(self) -> tuple[Params | None, str | None]:
        """The round's aggregate, or None and why the round failed."""
        try:
            return self._rnd.aggregate(self._ex.release), None
        except RoundFailed as exc:
            logger.info("round %d failed: %s", self._rnd.number, exc)
            return None, str(exc)

    def _drain(self) -> None:
        self._rnd.drain(self._ex.release)
        for outcome in self._rnd.announce():  # an ok may come again as rejected
            self._on_outcome(outcome)

    def _apply(self, event: Event) -> ParticipantOutcome | None:
        rnd = self._rnd
        try:
            if isinstance(event, TrainDone):
                self._receipt(event)
                if event.bytes_sent is not None:
                    self._sent[event.participant] = event.bytes_sent
                try:
                    return rnd.receive(event)
                finally:
                    if not rnd.holds(event):
                        self._ex.release(event)
            if isinstance(event, JobFailed) and event.kind == "train":
                return rnd.fail(event)
        except UpdateRejected as exc:
            logger.warning("ignored a message in round %d: %s", rnd.number, exc)
            return None
        logger.debug("ignored a stale %s in round %d", type(event).__name__, rnd.number)
        return None
