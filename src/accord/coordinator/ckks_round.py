"""One CKKS round over an executor: the coordinator adds ciphertexts it cannot read.

:class:`CkksCollector` replaces the plain update collection when
``secure_aggregation.mode = "ckks"``. The training jobs carry a
:class:`~accord.secagg.ckks_session.CkksJob`; each site answers with its encrypted
weighted update (stage ``ckks_upload``), which the coordinator checks and adds
under the public context (:class:`~accord.secagg.ckks.CkksAggregator`; a refused
upload is recorded and counts as a rejected outcome). It then sends the encrypted
sum to one contributor at a time, in selection order, until one decrypts it (stage
``ckks_decrypt``), and forms the weighted mean. The coordinator never holds the
secret key, so it never sees an individual update; outcomes carry no example count,
and the digest of the ciphertext.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from accord.config import SecureAggregationConfig
from accord.coordinator.collector import collect
from accord.coordinator.executor import (
    Event,
    Executor,
    JobFailed,
    SecAggReply,
    TrainDone,
    TrainJob,
)
from accord.coordinator.round import RoundPlan
from accord.coordinator.secure import OutcomeBook, SecureOutcome
from accord.errors import SecAggAborted, SubmissionRefused
from accord.params import Params, ParamSpec
from accord.records import ParticipantOutcome
from accord.secagg.ckks import CkksAggregator
from accord.secagg.ckks_session import (
    DECRYPT_STAGE,
    UPLOAD_STAGE,
    CkksJob,
    decode_sum,
)

__all__ = ["CkksCollector"]

logger = logging.getLogger(__name__)

#: Contributors asked, one after the other, to decrypt the sum.
_DECRYPT_ATTEMPTS = 3


class CkksCollector:
    """Runs one CKKS round; build one per round."""

    def __init__(
        self,
        *,
        executor: Executor,
        settings: SecureAggregationConfig,
        public_context: bytes,
        run_id: str,
        plan: RoundPlan,
        spec: ParamSpec,
        clock: Callable[[], float],
        on_outcome: Callable[[ParticipantOutcome], None] = lambda _: None,
    ) -> None:
        self._ex = executor
        self._settings = settings
        self._plan = plan
        self._spec = spec
        self._clock = clock
        self.job = CkksJob(
            run_id=run_id,
            round_number=plan.number,
            values=spec.size,
            clip=settings.clip,
            max_examples=settings.max_examples,
        )
        self._sum = CkksAggregator(
            public_context, self.job.values, roster=plan.selected
        )
        self._book = OutcomeBook(plan.selected, on_outcome)

    def run(self, jobs: Sequence[TrainJob], training_deadline: float) -> SecureOutcome:
        """Train and upload, add, have the sum decrypted, form the mean."""
        number = self._plan.number
        self._ex.submit_train(number, [replace(j, secure=self.job) for j in jobs])
        self._uploads(training_deadline)
        contributors = [p for p in self._plan.selected if self._book.has_contributed(p)]
        for p in contributors:
            self._book.settle(p, "ok", None)
        n = len(contributors)
        if n < self._plan.required:
            return self._failed(
                n,
                f"round {number} got {n} encrypted updates, needs "
                f"{self._plan.required}",
            )
        try:
            blob = self._sum.result()
        except SecAggAborted as exc:
            return self._failed(n, str(exc))
        for candidate in contributors[:_DECRYPT_ATTEMPTS]:
            decrypted = self._decrypt(candidate, blob)
            if decrypted is None:
                continue
            weighted, weight = decrypted
            if weight <= 0:
                return self._failed(n, "the contributors' total weight is zero")
            delta = Params.unflatten(self._spec, weighted / weight)
            return SecureOutcome(self._book.ordered(), n, delta, None, weight)
        return self._failed(n, "no contributor decrypted the encrypted sum")

    def _uploads(self, deadline: float) -> None:
        waiting = set(self._plan.selected)
        number = self._plan.number

        def handle(event: Event) -> None:
            if isinstance(event, TrainDone):
                self._ex.release(event)  # a plain update: never read
                if event.round == number and event.participant in waiting:
                    waiting.discard(event.participant)
                    self._book.settle(
                        event.participant,
                        "rejected",
                        "sent a plain update to an encrypted round",
                    )
                return
            if event.round != number or event.participant not in waiting:
                return
            who = event.participant
            if isinstance(event, JobFailed) and event.kind != "eval":
                waiting.discard(who)
                self._book.settle(who, event.status, f"{UPLOAD_STAGE}: {event.reason}")
            elif isinstance(event, SecAggReply) and event.stage == UPLOAD_STAGE:
                waiting.discard(who)
                try:
                    self._sum.add(who, event.payload)
                except SubmissionRefused as exc:
                    self._book.settle(who, "rejected", f"{UPLOAD_STAGE}: {exc.reason}")
                    return
                self._book.contributed(who, event.payload)
                self._book.spent(who, event.duration_s)

        def expire(late: tuple[str, ...]) -> None:
            for p in late:
                self._book.settle(
                    p, "timeout", "no encrypted update before the deadline"
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

    def _decrypt(
        self, candidate: str, blob: bytes
    ) -> tuple[npt.NDArray[np.float64], float] | None:
        number = self._plan.number
        self._ex.submit_secagg(number, DECRYPT_STAGE, {candidate: blob})
        answer: list[tuple[npt.NDArray[np.float64], float] | None] = []

        def handle(event: Event) -> None:
            if isinstance(event, TrainDone):
                self._ex.release(event)
                return
            if event.round != number or event.participant != candidate:
                return
            if isinstance(event, JobFailed) and event.kind == "secagg":
                logger.warning(
                    "%s could not decrypt the sum: %s", candidate, event.reason
                )
                answer.append(None)
            elif isinstance(event, SecAggReply) and event.stage == DECRYPT_STAGE:
                try:
                    answer.append(decode_sum(event.payload, self.job.values))
                except ValueError as exc:
                    logger.warning("%s's decryption is unusable: %s", candidate, exc)
                    answer.append(None)

        def expire(late: tuple[str, ...]) -> None:
            logger.warning("%s did not decrypt the sum in time", candidate)

        collect(
            self._ex,
            round_number=number,
            deadline=self._clock() + self._settings.stage_timeout_s,
            clock=self._clock,
            finished=lambda: bool(answer),
            pending=lambda: (candidate,),
            handle=handle,
            expire=expire,
        )
        return answer[0] if answer else None

    def _failed(self, n: int, reason: str) -> SecureOutcome:
        logger.info("CKKS round %d failed: %s", self._plan.number, reason)
        return SecureOutcome(self._book.ordered(), n, None, reason)
