"""The stages of one masking sum over an executor, after the advertisements.

Both secure sums the coordinator runs walk :class:`~accord.secagg.SecAggServer`
(the pure protocol) the same way: a training round's
(:class:`~accord.coordinator.secure.SecureCollector`, whose advertisements answer
the train jobs) and the preprocessing fit's (:mod:`accord.coordinator.statistics`,
whose advertisements answer the ``statistics`` task). :class:`MaskingStages` is
that walk, written once: each stage's replies are parsed
(:mod:`accord.transport.secagg_wire`) and fed to the server; a participant silent
past the stage's deadline, whose job fails, or whose message is refused (another
round's, a replay, a malformed one; recorded with its reason) counts as dropped
out, in the :class:`~accord.coordinator.secure.OutcomeBook` of the sum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

from accord.coordinator.collector import collect
from accord.coordinator.executor import (
    Event,
    Executor,
    JobFailed,
    SecAggReply,
    TrainDone,
)
from accord.errors import SubmissionRefused
from accord.secagg.messages import Stage
from accord.secagg.server import SecAggResult, SecAggServer
from accord.transport.secagg_wire import FromCoordinator, decode_to_coordinator, encode

if TYPE_CHECKING:
    from accord.coordinator.secure import OutcomeBook

__all__ = ["MaskingStages"]

logger = logging.getLogger(__name__)

_Status = Literal["ok", "failed", "rejected", "timeout"]


class MaskingStages:
    """Runs one sum's stages for ``roster`` at ``round_number``; one per sum."""

    def __init__(
        self,
        executor: Executor,
        server: SecAggServer,
        *,
        round_number: int,
        roster: Iterable[str],
        book: OutcomeBook,
        clock: Callable[[], float],
        stage_timeout_s: float,
    ) -> None:
        self._ex = executor
        self._server = server
        self._number = round_number
        self._book = book
        self._clock = clock
        self._timeout = stage_timeout_s
        self.alive: set[str] = set(roster)

    def collect(self, stage: Stage, deadline: float, *, as_stage: str = "") -> None:
        """Wait for ``stage``'s messages until ``deadline`` on the clock.

        ``as_stage`` is the stage name they arrive under when it is not the
        protocol's (the preprocessing's advertisements answer ``statistics``).
        """
        waiting = set(self.alive)
        number, name = self._number, as_stage or stage.value

        def handle(event: Event) -> None:
            if isinstance(event, TrainDone):
                # A plain update in a secure round: refuse to read it.
                self._ex.release(event)
                if event.round == number and event.participant in waiting:
                    waiting.discard(event.participant)
                    self.drop(
                        event.participant,
                        "rejected",
                        "sent a plain update to a secure round",
                    )
                return
            if event.round != number or event.participant not in waiting:
                return
            who = event.participant
            if isinstance(event, JobFailed):
                if event.kind == "eval":
                    return
                waiting.discard(who)
                self.drop(who, event.status, f"{name}: {event.reason}")
            elif isinstance(event, SecAggReply):
                if event.stage != name:
                    return
                waiting.discard(who)
                self._receive(stage, event)

        def expire(late: tuple[str, ...]) -> None:
            for p in late:
                self.drop(
                    p, "timeout", f"dropped out: no {name} message before the deadline"
                )

        collect(
            self._ex,
            round_number=number,
            deadline=deadline,
            clock=self._clock,
            finished=lambda: not waiting,
            pending=lambda: sorted(waiting),
            handle=handle,
            expire=expire,
        )

    def finish(self) -> SecAggResult:
        """Every stage after the advertisements, then the unmasked sum.

        Raises SecAggAborted when a stage closes with too few participants.
        """
        server = self._server
        self._stage(Stage.SHARE_KEYS, self._broadcast(server.key_directory()))
        deliveries = server.deliver_shares()
        self._stage(
            Stage.MASKED_INPUT,
            {p: encode(deliveries[p]) for p in sorted(self.alive) if p in deliveries},
        )
        self._stage(Stage.CONSISTENCY, self._broadcast(server.survivor_list()))
        self._stage(Stage.UNMASK, self._broadcast(server.survivor_signatures()))
        return server.aggregate()

    def abandon(self) -> None:
        """Stop waiting for every participant still in the sum."""
        if self.alive:
            self._ex.abandon(self._number, sorted(self.alive))

    def drop(self, who: str, status: _Status, reason: str) -> None:
        """``who`` left the sum: record why, unless its masked input is in it."""
        self.alive.discard(who)
        if self._book.has_contributed(who):
            # Its masked input is in the sum already: it contributed.
            return
        self._book.settle(who, status, reason)

    def _broadcast(self, message: FromCoordinator) -> dict[str, bytes]:
        blob = encode(message)
        return dict.fromkeys(sorted(self.alive), blob)

    def _stage(self, stage: Stage, payloads: dict[str, bytes]) -> None:
        self._ex.submit_secagg(self._number, stage.value, payloads)
        self.collect(stage, self._clock() + self._timeout)

    def _receive(self, stage: Stage, event: SecAggReply) -> None:
        who = event.participant
        try:
            message = decode_to_coordinator(event.payload, stage)
            if message.sender != who:
                raise SubmissionRefused(
                    "forbidden",
                    f"message names {message.sender!r} as its sender",
                    participant=who,
                )
            self._server.receive(message)
        except SubmissionRefused as exc:
            logger.warning("secure round %d refused %s: %s", self._number, who, exc)
            self.drop(who, "rejected", f"{stage.value}: {exc.reason}")
            return
        self._book.spent(who, event.duration_s)
        if stage is Stage.MASKED_INPUT:
            self._book.contributed(who, event.payload)
