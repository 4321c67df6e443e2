"""One secure round over an executor: the coordinator learns the weighted sum only.

:class:`SecureCollector` replaces the plain update collection of a round when
``secure_aggregation.mode = "masking"``. It sends the training jobs with the
round's :class:`~accord.secagg.session.SecureJob`, then walks the stages of
:class:`~accord.secagg.SecAggServer` (the pure protocol) over the executor
(:class:`~accord.coordinator.masking.MaskingStages`: a participant silent past
the stage's deadline, whose job fails or whose message is refused counts as
dropped out). When a stage closes with too few participants the round fails with
the protocol's reason and releases nothing.

The result is the weighted mean update, decoded from the ring sum; no individual
update, weight or example count ever reaches the coordinator, so the round's
outcomes carry none (``num_examples`` 0, the digest of the *masked* input).

With participant-level DP (``privacy``, placement ``distributed``) the job carries
the round's :class:`~accord.secagg.noised.DistributedNoise`: each site clips,
weighs 1 and adds its noise share in the ring, and the result is the noised sum
divided by the number selected (the central mechanism's fixed denominator). The
round is reported to ``privacy`` as released, with its contributors, as soon as
the sum is unmasked (even if the round then fails its quorum).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from accord.config import SecureAggregationConfig
from accord.coordinator.executor import Executor, TrainJob
from accord.coordinator.masking import MaskingStages
from accord.coordinator.round import RoundPlan
from accord.errors import ConfigError, SecAggAborted
from accord.params import Params, ParamSpec
from accord.records import ParticipantOutcome
from accord.secagg.config import SecAggConfig
from accord.secagg.encoding import FixedPointEncoding
from accord.secagg.messages import Stage
from accord.secagg.packed import PackedEncoding
from accord.secagg.server import SecAggResult, SecAggServer
from accord.secagg.session import SecureJob, check_secure_spec

if TYPE_CHECKING:
    from accord.coordinator.privacy import CentralPrivacy

__all__ = ["OutcomeBook", "SecureCollector", "SecureOutcome"]

_Status = Literal["ok", "failed", "rejected", "timeout"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SecureOutcome:
    """What a secure round produced: outcomes, and the mean update or why none."""

    outcomes: tuple[ParticipantOutcome, ...]
    succeeded: int
    delta: Params | None
    reason: str | None
    total_weight: float = 0.0


class OutcomeBook:
    """One outcome per selected participant of a round whose updates stay hidden.

    What a hidden update leaves on record: no example count and no metrics, the
    digest of what was actually sent (masked input or ciphertext), and the time the
    participant reported for its stages.
    """

    def __init__(
        self,
        selected: Sequence[str],
        on_outcome: Callable[[ParticipantOutcome], None],
    ) -> None:
        self._selected = tuple(selected)
        self._on_outcome = on_outcome
        self._outcomes: dict[str, ParticipantOutcome] = {}
        self._digest: dict[str, str] = {}
        self._duration: dict[str, float] = {}
        self._sent: dict[str, int] = {}

    def spent(self, who: str, seconds: float) -> None:
        """Add a stage's reported time to ``who``'s total."""
        self._duration[who] = self._duration.get(who, 0.0) + seconds

    def contributed(self, who: str, sent: bytes) -> None:
        """``who``'s hidden update is in the sum; keep the digest of what it sent."""
        self._digest[who] = hashlib.sha256(sent).hexdigest()
        self._sent[who] = len(sent)

    def sent(self) -> dict[str, int]:
        """Bytes of the masked input each contributor sent (what carries the update)."""
        return dict(self._sent)

    def has_contributed(self, who: str) -> bool:
        """True once ``who``'s hidden update is in the sum."""
        return who in self._digest

    def settle(self, who: str, status: _Status, reason: str | None) -> None:
        """Record ``who``'s outcome (the first one recorded stands)."""
        if who in self._outcomes:
            return
        outcome = ParticipantOutcome(
            participant=who,
            status=status,
            reason=reason,
            num_examples=0,
            update_digest=self._digest.get(who) if status == "ok" else None,
            duration_s=self._duration.get(who, 0.0),
            metrics={},
        )
        self._outcomes[who] = outcome
        self._on_outcome(outcome)

    def pending(self) -> list[str]:
        """Selected participants without an outcome, in selection order."""
        return [p for p in self._selected if p not in self._outcomes]

    def ordered(self) -> tuple[ParticipantOutcome, ...]:
        """The outcomes so far, in selection order."""
        return tuple(self._outcomes[p] for p in self._selected if p in self._outcomes)


class SecureCollector:
    """Runs the stages of one secure round; build one per round."""

    def __init__(
        self,
        *,
        executor: Executor,
        settings: SecureAggregationConfig,
        run_id: str,
        plan: RoundPlan,
        spec: ParamSpec,
        clock: Callable[[], float],
        on_outcome: Callable[[ParticipantOutcome], None] = lambda _: None,
        privacy: CentralPrivacy | None = None,
        bits: int = 32,
    ) -> None:
        check_secure_spec(spec)
        self._bits = bits
        self._privacy = privacy
        self._ex = executor
        self._settings = settings
        self._plan = plan
        self._spec = spec
        self._clock = clock
        self._book = OutcomeBook(plan.selected, on_outcome)
        self._run_id = run_id
        self._alive: set[str] = set()
        self._stages: MaskingStages | None = None

    def _setup(self) -> tuple[SecureJob, SecAggServer]:
        """The round's public settings; participants without an identity key fail."""
        plan, settings = self._plan, self._settings
        keys = self._ex.identity_keys(sorted(plan.selected))
        for p in plan.selected:
            if p not in keys:
                self._book.settle(
                    p, "failed", "no identity key: it cannot take part in secure rounds"
                )
        roster = tuple(sorted(p for p in plan.selected if p in keys))
        try:
            vector_size = self._vector_size(len(roster))
            base = SecAggConfig.create(
                run_id=self._run_id,
                round_number=plan.number,
                identities={p: keys[p] for p in roster},
                vector_size=vector_size,
                threshold=settings.threshold,
                degree=settings.degree,
            )
        except ConfigError as exc:
            raise SecAggAborted(str(exc), stage="advertise") from None
        noise, noise_seed = None, None
        if self._privacy is not None:
            noise = self._privacy.noise_plan(
                len(roster), base.threshold, self._spec.size
            )
            noise_seed = self._privacy.settings.noise_seed
        job = SecureJob(
            run_id=self._run_id,
            round_number=plan.number,
            roster=roster,
            vector_size=vector_size,
            threshold=base.threshold,
            degree=base.degree,
            clip=settings.clip,
            max_examples=settings.max_examples,
            identity_keys=tuple((p, keys[p].hex()) for p in roster),
            noise=noise,
            noise_seed=noise_seed,
            bits=self._bits,
        )
        self._alive = set(roster)
        return job, SecAggServer(base)

    @property
    def sent(self) -> dict[str, int]:
        """Bytes of the masked input each contributor sent, so far."""
        return self._book.sent()

    def _vector_size(self, roster: int) -> int:
        """Ring words of the round's updates; ConfigError if the roster overflows."""
        if self._bits == 32:
            return FixedPointEncoding.words(self._spec.size)
        try:
            packed = PackedEncoding(self._bits, self._settings.clip, roster)
        except ValueError as exc:
            raise ConfigError(str(exc), key="compression.method") from None
        return packed.words(self._spec.size)

    def run(self, jobs: Sequence[TrainJob], training_deadline: float) -> SecureOutcome:
        """Train, then run every stage; ``training_deadline`` is on the clock."""
        try:
            self.job, server = self._setup()
            self._stages = MaskingStages(
                self._ex,
                server,
                round_number=self._plan.number,
                roster=self._alive,
                book=self._book,
                clock=self._clock,
                stage_timeout_s=self._settings.stage_timeout_s,
            )
            self._ex.submit_train(
                self._plan.number,
                [
                    replace(j, secure=self.job)
                    for j in jobs
                    if j.participant in self._alive
                ],
            )
            self._stages.collect(Stage.ADVERTISE, training_deadline)
            result = self._stages.finish()
        except SecAggAborted as exc:
            return self._aborted(exc)
        return self._finish(result)

    # -- endings -----------------------------------------------------------------
    def _aborted(self, exc: SecAggAborted) -> SecureOutcome:
        logger.info("secure round %d aborted: %s", self._plan.number, exc)
        pending = self._book.pending()
        if self._stages is not None:
            self._stages.abandon()
        for p in pending:
            self._book.settle(p, "failed", f"the secure round aborted: {exc.reason}")
        return SecureOutcome(self._book.ordered(), 0, None, str(exc))

    def _finish(self, result: SecAggResult) -> SecureOutcome:
        offenders = set(result.offenders)
        for p in result.contributors:
            note = "revealed a forged share at unmask" if p in offenders else None
            self._book.settle(p, "ok", note)
        for p in self._plan.selected:
            self._book.settle(p, "timeout", "dropped out")
        n = len(result.contributors)
        noise = self.job.noise
        if noise is not None:
            assert self._privacy is not None  # a noised job comes from it
            self._privacy.released(noise, n)
            total, _ = noise.decode(result.total)
            total /= len(self._plan.selected)
        if n < self._plan.required:
            return SecureOutcome(
                self._book.ordered(),
                n,
                None,
                f"round {self._plan.number} got {n} contributions, needs "
                f"{self._plan.required}",
            )
        if noise is not None:
            delta = Params.unflatten(self._spec, total)
            return SecureOutcome(self._book.ordered(), n, delta, None, float(n))
        try:
            weighted, weight = self.job.decode(result.total, n, self._spec.size)
        except ValueError as exc:  # a packed sum no honest inputs give
            return SecureOutcome(self._book.ordered(), n, None, str(exc))
        problem = self.job.implausible(weighted, weight, n)
        if problem is not None:
            return SecureOutcome(self._book.ordered(), n, None, problem)
        if weight <= self.job.encoding.weight_bound:
            return SecureOutcome(
                self._book.ordered(),
                n,
                None,
                "the contributors' total weight is zero; there is no mean to form",
            )
        weighted /= weight
        delta = Params.unflatten(self._spec, weighted)
        return SecureOutcome(self._book.ordered(), n, delta, None, weight)
