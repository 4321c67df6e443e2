"""One training round as a pure state machine: events in, outcomes out.

A :class:`Round` knows who was selected and what each of them has sent. Every selected
participant ends with exactly one outcome: ``ok`` (its update was valid and folded
into the aggregate), ``rejected`` (the update failed validation; the reason is kept),
``failed`` (its job raised or its process died) or ``timeout``. A rejected update
never touches the aggregate: it is validated completely before the first byte is
folded. The round needs no clock and no I/O, so every path is tested without sockets.

Valid updates are folded in selection order, not arrival order: floating-point sums
depend on their order, and folding in a fixed order is what makes the same seed give
the same model bit for bit, however the updates raced. An update that arrives before
its predecessors are settled waits (in the executor's buffer, not copied) until
:meth:`Round.drain` folds it and hands it back for release, one at a time.

Beyond its structure and finiteness, an update is held to the federation's bounds
(:mod:`accord.coordinator.integrity`): its example count to the sender's bound, and,
with ``max_norm``, its L2 norm, so that one huge but finite update is refused on its
own instead of failing the whole round's aggregate. With ``max_norm_ratio`` (on by
default) an update is also judged against the median norm of the round's valid
updates (:func:`~accord.coordinator.integrity.outliers`); that needs every norm, so
the round holds the valid updates (in the executor's buffers, as it holds early
arrivals) until it can judge them, and folds them in selection order: the same
sums, in the same order, as without the rule when nobody is refused. An update is
folded before the last answer only once no answer still to come can make it an
outlier: the round's median norm can only be lower than now if every participant
still pending sent a zero update, so an update within ``max_norm_ratio`` times
*that* median is safe (:meth:`Round.drain`). Honest rounds fold about half their
updates while the others still train, which frees their buffers early. Since
such a round has room for its updates anyway, it lends an accumulator the ones it
must keep (:class:`LendingAccumulator`: the capped mean's heaviest) instead of
letting it copy them, and releases them after :meth:`Round.aggregate`; the updates
one drain settles together are lent in one call (:class:`BatchLendingAccumulator`),
which folds them in one pass over the float64 sums.
:meth:`Round.announce` hands out each outcome as it is recorded; an ``ok`` that
the judgement turns into ``rejected`` is handed out again.

A participant in ``excluded`` (quarantined by the robustness policy; the value is
the reason recorded) is validated
like any other, gets the outcome ``quarantined`` and is never folded; ``observer``
(the anomaly scoring's :class:`~accord.detection.UpdateMatrix`) sees every valid
update, folded or not, in selection order.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from accord.aggregation.integrity import finite_sum, l2_norm, square_sum
from accord.coordinator.executor import JobFailed, TrainDone
from accord.coordinator.integrity import (
    MIN_OUTLIER_UPDATES,
    ExampleBounds,
    check_examples,
    check_metric_names,
    outliers,
)
from accord.errors import RoundFailed, TooFewUpdates, UpdateRejected
from accord.params import Params, ParamSpec
from accord.records import ParticipantOutcome

__all__ = [
    "Accumulator",
    "ReportingAccumulator",
    "BatchAccumulator",
    "BatchLendingAccumulator",
    "LendingAccumulator",
    "Round",
    "RoundPlan",
    "UpdateObserver",
    "all_finite",
    "not_finite",
    "validate_update",
]


class Accumulator(Protocol):
    """Folds updates as they arrive (streaming mean) or keeps them (robust rules)."""

    def add(self, update: Params, weight: float) -> None:
        """Fold one validated update with its weight."""
        ...

    def result(self) -> Params:
        """The aggregate of everything added."""
        ...


@runtime_checkable
class ReportingAccumulator(Accumulator, Protocol):
    """An accumulator that also reads what each site reported with its update.

    q-FedAvg needs each site's loss before training: :meth:`check_report` refuses
    a bad report as the update arrives (the update is then ``rejected``), and
    :meth:`report` gives the report of the update the next ``add`` folds.
    """

    def check_report(self, metrics: Mapping[str, float]) -> None:
        """:class:`UpdateRejected` unless ``metrics`` has what the rule needs."""
        ...

    def report(self, metrics: Mapping[str, float]) -> None:
        """The report of the update that the next :meth:`add` folds."""
        ...


@runtime_checkable
class BatchAccumulator(Accumulator, Protocol):
    """An accumulator that can take a whole round's held updates in one call.

    :class:`~accord.aggregation.capped_mean.CappedMeanAccumulator` copies the
    heaviest updates :meth:`Accumulator.add` gives it (the caller may drop them);
    a round that holds every update anyway hands them over at once instead, with
    the same result bit for bit and no copy.
    """

    def add_last(self, updates: Sequence[Params], weights: Sequence[float]) -> None:
        """Fold these updates, the round's last; they may be dropped afterwards."""
        ...


@runtime_checkable
class LendingAccumulator(Accumulator, Protocol):
    """An accumulator that can keep a caller's update instead of copying it.

    :class:`~accord.aggregation.capped_mean.CappedMeanAccumulator` must keep the
    heaviest updates until the round's weights are all known. A round that can
    hold updates (under ``max_norm_ratio`` the executor has room for a round's
    worth) lends them: the accumulator keeps a reference, and the round releases
    the update only after :meth:`Round.aggregate`.
    """

    def lend(self, update: Params, weight: float) -> bool:
        """Fold or keep ``update``; True if it is kept (unchanged until result())."""
        ...


@runtime_checkable
class BatchLendingAccumulator(LendingAccumulator, Protocol):
    """A lending accumulator that takes several updates settled together at once.

    :meth:`lend_many` is :meth:`LendingAccumulator.lend` of each in turn, bit for
    bit, with the folds made in one pass over the sums: a round folds the
    updates one :meth:`Round.drain` settles in one call.
    """

    def lend_many(
        self, updates: Sequence[Params], weights: Sequence[float]
    ) -> list[bool]:
        """Fold or keep each update in turn; whether each is kept."""
        ...


class UpdateObserver(Protocol):
    """Sees every valid update of a round before it is released (scoring)."""

    def add(self, participant: str, update: Params, *, excluded: bool) -> None:
        """Read ``update`` (it is released right after this returns)."""
        ...


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """Who trains in round ``number`` and how many valid updates it needs."""

    number: int
    selected: tuple[str, ...]
    required: int

    def __post_init__(self) -> None:
        if not 1 <= self.required <= max(len(self.selected), 1):
            raise ValueError(
                f"round needs {self.required} updates from {len(self.selected)} "
                "selected participants"
            )


def all_finite(arr: np.ndarray) -> bool:
    """True when no element of ``arr`` is NaN or infinite."""
    # A sum is non-finite whenever some element is NaN or infinite, so a finite sum
    # in the array's own dtype (fast, no conversion) proves every element finite.
    # Only when that sum overflows (or there is a bad value) is the verdict taken
    # from a float64 sum, which float32 inputs cannot overflow.
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(np.add.reduce(arr, axis=None))):
            return True
        return math.isfinite(float(np.add.reduce(arr, axis=None, dtype=np.float64)))


def not_finite(name: str) -> UpdateRejected:
    """The refusal of a tensor with a NaN or infinite value."""
    return UpdateRejected(f"{name!r} contains NaN or infinite values")


def validate_update(
    spec: ParamSpec,
    update: Params,
    num_examples: int,
    *,
    values_checked: bool = False,
    participant: str = "",
    bounds: ExampleBounds | None = None,
    max_norm: float | None = None,
    want_norm: bool = False,
    norm: float | None = None,
) -> float | None:
    """Raise :class:`UpdateRejected` unless ``update`` fits the model and the bounds.

    ``values_checked``: the executor already proved every value finite while it
    received them (a deployment does, chunk by chunk), so only the structure and
    the example count are checked here, without reading the values again (unless
    the update's L2 norm is needed and the executor did not give it as ``norm``).
    ``bounds`` limit ``participant``'s example count (None: any positive count).

    Returns the update's L2 norm when ``max_norm`` or ``want_norm`` asks for it
    (else None). Where the values are read here, finiteness and the norm come
    from one pass: a float64 sum of squares per tensor (see
    :func:`~accord.aggregation.integrity.square_sum`).
    """
    if bounds is None:
        if num_examples <= 0:
            raise UpdateRejected(f"num_examples must be positive, got {num_examples}")
    else:
        check_examples(num_examples, participant, bounds)
    spec.check(update)
    wanted = want_norm or max_norm is not None
    if not values_checked:
        norm = None
        if wanted:
            total = 0.0
            for name, arr in update.items():
                squares = square_sum(arr)
                if not finite_sum(arr, squares):
                    raise not_finite(name)
                total += squares
            norm = math.sqrt(total)
        else:
            for name, arr in update.items():
                if not all_finite(arr):
                    raise not_finite(name)
    if not wanted:
        return None
    if norm is None:
        norm = l2_norm(update)
    if max_norm is not None and not norm <= max_norm:
        raise UpdateRejected(
            f"the update's L2 norm is {norm:.6g}, above this federation's "
            f"max_update_norm of {max_norm:g}; check the local training (a "
            "diverged run, a learning rate too high) before sending again"
        )
    return norm


class Round:
    """Collects and validates the updates of one round."""

    def __init__(
        self,
        plan: RoundPlan,
        spec: ParamSpec,
        accumulator: Accumulator,
        *,
        bounds: ExampleBounds | None = None,
        max_norm: float | None = None,
        max_norm_ratio: float = 0.0,
        excluded: Mapping[str, str] | None = None,
        observer: UpdateObserver | None = None,
        uniform: bool = False,
        close_fraction: float = 1.0,
    ) -> None:
        self.plan = plan
        #: ``[strategy] weighting = "uniform"``: every update weighs 1, not its
        #: example count.
        self._uniform = uniform
        #: ``[round] close_fraction``: how many answers close the round early.
        self._close_after = max(1, math.ceil(close_fraction * len(set(plan.selected))))
        self._late = 0  # participants recorded late by close()
        self._excluded: Mapping[str, str] = excluded or {}
        self._observer = observer
        self._bounds = bounds
        self._max_norm = max_norm
        self._ratio = max_norm_ratio
        self._norms: dict[str, float] = {}  # of the valid updates, under the ratio
        self._sorted_norms: list[float] = []  # the same, ascending
        self._judged = max_norm_ratio <= 0
        self._unannounced: list[str] = []
        self._spec = spec
        self._acc = accumulator
        self._outcomes: dict[str, ParticipantOutcome] = {}
        self._n_selected = len(set(plan.selected))
        self._waiting: dict[str, TrainDone] = {}
        self._next = 0  # index in plan.selected of the next update to fold
        # Updates the accumulator keeps (lent, not copied), released by aggregate().
        self._lent: list[TrainDone] = []
        self._total_examples = 0

    @property
    def number(self) -> int:
        """The round number."""
        return self.plan.number

    @property
    def pending(self) -> tuple[str, ...]:
        """Selected participants without an outcome yet, in selection order."""
        return tuple(p for p in self.plan.selected if p not in self._outcomes)

    @property
    def outcomes(self) -> tuple[ParticipantOutcome, ...]:
        """Outcomes so far, in selection order."""
        return tuple(
            self._outcomes[p] for p in self.plan.selected if p in self._outcomes
        )

    @property
    def succeeded(self) -> int:
        """How many valid updates were folded."""
        return sum(1 for o in self._outcomes.values() if o.status == "ok")

    @property
    def total_examples(self) -> int:
        """Examples behind the folded updates."""
        return self._total_examples

    @property
    def finished(self) -> bool:
        """True when every selected participant has an outcome."""
        # Outcomes are only ever recorded for selected participants, once each, so
        # counting them is enough (``pending`` is O(selected), asked after each event).
        return len(self._outcomes) >= self._n_selected

    @property
    def closable(self) -> bool:
        """True once enough selected participants answered to close the round.

        With ``close_fraction`` below 1 that is before every participant did:
        :meth:`close` then records the others as late. Participants already
        recorded late do not count as answers.
        """
        return self.finished or len(self._outcomes) - self._late >= self._close_after

    def close(
        self, participants: Sequence[str] | None = None, *, why: str = ""
    ) -> tuple[ParticipantOutcome, ...]:
        """Record pending participants as late (``timeout``): a straggler cut.

        ``participants``: those (None: every pending one), e.g. the ones a
        simulation's virtual clock knows to finish after the round closes;
        ``why`` replaces the reason's explanation. Their updates, should they
        come, are not this round's to fold any more (:meth:`receive` refuses a
        participant that has an outcome).
        """
        answered, selected = len(self._outcomes) - self._late, self._n_selected
        because = why or (
            f"the round closed once {answered} of its {selected} selected "
            "participants answered (round.close_fraction)"
        )
        cut = self.pending if participants is None else participants
        out = tuple(
            self.fail(
                JobFailed(
                    participant=p,
                    round=self.number,
                    kind="train",
                    status="timeout",
                    reason=f"late: {because}; the update is not aggregated",
                )
            )
            for p in cut
        )
        self._late += len(out)
        return out

    def _weight(self, done: TrainDone) -> float:
        """An update's weight in the mean: its examples, or 1 (uniform)."""
        return 1.0 if self._uniform else float(done.num_examples)

    def _admit(self, participant: str, round_number: int) -> None:
        if round_number != self.plan.number:
            raise UpdateRejected(
                f"message is for round {round_number}, this is round {self.number}",
                participant=participant,
            )
        if participant not in self.plan.selected:
            raise UpdateRejected("not selected for this round", participant=participant)
        if participant in self._outcomes:
            raise UpdateRejected(
                "duplicate submission: this round already has an outcome for you",
                participant=participant,
            )

    def receive(self, done: TrainDone) -> ParticipantOutcome:
        """Validate and fold an update; a bad one becomes a ``rejected`` outcome.

        Raises :class:`UpdateRejected` (recording nothing) for a message that is not
        this round's to judge: wrong round, not selected, or a duplicate.
        """
        self._admit(done.participant, done.round)
        try:
            norm = validate_update(
                self._spec,
                done.update,
                done.num_examples,
                values_checked=done.values_checked,
                participant=done.participant,
                bounds=self._bounds,
                max_norm=self._max_norm,
                want_norm=not self._judged and done.participant not in self._excluded,
                norm=done.norm if done.values_checked else None,
            )
            check_metric_names(done.metrics)
            if isinstance(self._acc, ReportingAccumulator):
                self._acc.check_report(done.metrics)
        except UpdateRejected as exc:
            return self._record(done.participant, "rejected", exc.reason, done)
        if done.participant in self._excluded:
            if self._observer is not None:
                self._waiting[done.participant] = done
            return self._record(
                done.participant,
                "quarantined",
                self._excluded[done.participant],
                done,
            )
        self._waiting[done.participant] = done
        if norm is not None and not self._judged:
            self._norms[done.participant] = norm
            bisect.insort(self._sorted_norms, norm)
        return self._record(done.participant, "ok", None, done)

    def announce(self) -> tuple[ParticipantOutcome, ...]:
        """Outcomes recorded since the last call, in the order they were.

        Under ``max_norm_ratio`` an ``ok`` is provisional until the round has
        judged its updates (in :meth:`drain`, once every participant answered): a
        participant whose update is then refused comes again, ``rejected``. One
        judged before its ``ok`` was handed out comes once, ``rejected``: each
        participant at most once a call, with its outcome as it stands.
        """
        names, self._unannounced = self._unannounced, []
        return tuple(self._outcomes[p] for p in dict.fromkeys(names))

    def drain(
        self, release: Callable[[TrainDone], None] | None = None
    ) -> tuple[str, ...]:
        """Fold every valid update whose predecessors are settled, in order.

        Under ``max_norm_ratio`` an update is settled once the judgement cannot
        refuse it (:meth:`_safe`), or once it is judged.

        Each folded event goes to ``release`` (its buffer may be reused or freed)
        before the next is folded, so however many were waiting, only one is read
        at a time; except under ``max_norm_ratio`` with an accumulator that
        lends (:class:`BatchLendingAccumulator`), where the round holds every
        update anyway: the updates settled together are folded in one call (one
        pass over the sums), then released. Returns who was folded. A rejected
        update is never held, so the caller releases it as soon as it is received.
        """
        folded: list[str] = []
        if not self._judged and self.finished:
            self._judge(release)
            if isinstance(self._acc, BatchAccumulator):
                return self._fold_held(self._acc, release)
        selected = self.plan.selected
        lends = self._ratio > 0 and isinstance(self._acc, BatchLendingAccumulator)
        reports = isinstance(self._acc, ReportingAccumulator)
        batch: list[TrainDone] | None = [] if lends and not reports else None
        while self._next < len(selected) and selected[self._next] in self._outcomes:
            if not self._judged and not self._safe(selected[self._next]):
                break  # it waits for the judgement, and so do those after it
            done = self._waiting.pop(selected[self._next], None)
            self._next += 1
            if done is None:
                continue
            out = done.participant in self._excluded
            if self._observer is not None:
                self._observer.add(done.participant, done.update, excluded=out)
            if out:
                if release is not None:
                    release(done)
                del done
                continue
            if batch is not None:  # folded below, with the others settled
                batch.append(done)
            else:
                if isinstance(self._acc, ReportingAccumulator):
                    self._acc.report(done.metrics)
                if self._fold(done):
                    self._lent.append(done)
                elif release is not None:
                    release(done)
            self._total_examples += done.num_examples
            folded.append(done.participant)
            del done  # the last reference: a mapped update is unmapped here
        if batch:
            self._lend_together(batch, release)
        return tuple(folded)

    def _lend_together(
        self, batch: list[TrainDone], release: Callable[[TrainDone], None] | None
    ) -> None:
        """Fold ``batch`` in one call; keep what the accumulator kept, free the rest."""
        acc = self._acc
        assert isinstance(acc, BatchLendingAccumulator)
        kept = acc.lend_many(
            [done.update for done in batch], [self._weight(done) for done in batch]
        )
        for done, keep in zip(batch, kept, strict=True):
            if keep:
                self._lent.append(done)
            elif release is not None:
                release(done)

    def _fold(self, done: TrainDone) -> bool:
        """Fold ``done``; True if the accumulator kept it (lent, released later).

        Only a round under ``max_norm_ratio`` lends: its executor has room for a
        round's updates, so keeping one until :meth:`aggregate` starves no one.
        """
        weight = self._weight(done)
        if self._ratio > 0 and isinstance(self._acc, LendingAccumulator):
            return self._acc.lend(done.update, weight)
        self._acc.add(done.update, weight)
        return False

    def _safe(self, participant: str) -> bool:
        """Whether the judgement cannot refuse ``participant``, whatever comes.

        The participants still pending can only add norms or stay away; the
        lowest median they can leave is that of the known norms with a zero for
        each of them (a zero never raises a median, and a smaller value never
        raises it either), computed as :func:`statistics.median` computes the
        final one, so the comparison cannot flip in rounding. With fewer than
        :data:`~accord.coordinator.integrity.MIN_OUTLIER_UPDATES` norms possible,
        nobody will be judged at all.
        """
        norm = self._norms.get(participant)
        if norm is None:  # rejected, failed or quarantined: nothing to judge
            return True
        known = self._sorted_norms
        zeros = self._n_selected - len(self._outcomes)
        n = len(known) + zeros
        if n < MIN_OUTLIER_UPDATES:
            return True

        def at(i: int) -> float:
            return 0.0 if i < zeros else known[i - zeros]

        half = n // 2
        lowest = at(half) if n % 2 else (at(half - 1) + at(half)) / 2
        return norm <= self._ratio * lowest

    def _fold_held(
        self, acc: BatchAccumulator, release: Callable[[TrainDone], None] | None
    ) -> tuple[str, ...]:
        """Fold every held update, judged and settled, in one call to ``acc``.

        The observer sees them in selection order, as :meth:`drain` shows them;
        each is released once ``acc`` has folded them all.
        """
        held = [self._waiting.pop(p) for p in self.plan.selected if p in self._waiting]
        self._next = len(self.plan.selected)
        folded: list[str] = []
        try:
            updates: list[Params] = []
            weights: list[float] = []
            for done in held:
                out = done.participant in self._excluded
                if self._observer is not None:
                    self._observer.add(done.participant, done.update, excluded=out)
                if not out:
                    updates.append(done.update)
                    weights.append(self._weight(done))
                    self._total_examples += done.num_examples
                    folded.append(done.participant)
            if updates:
                acc.add_last(updates, weights)
        finally:
            if release is not None:
                for done in held:
                    release(done)
        return tuple(folded)

    def _judge(self, release: Callable[[TrainDone], None] | None) -> None:
        """Refuse the valid updates out of line with the round's (see module doc)."""
        self._judged = True
        refused = outliers(self._norms, self._ratio, order=self.plan.selected)
        for participant in self.plan.selected:
            done = self._waiting.get(participant)
            if done is None:
                continue
            reason = refused.get(participant)
            if reason is None:
                continue
            del self._waiting[participant]
            self._record(participant, "rejected", reason, done)
            if release is not None:
                release(done)

    def holds(self, done: TrainDone) -> bool:
        """True while ``done`` waits to be folded (its buffer must not be reused)."""
        return self._waiting.get(done.participant) is done

    def fail(self, failure: JobFailed) -> ParticipantOutcome:
        """Record a failed, rejected or timed-out job."""
        self._admit(failure.participant, failure.round)
        outcome = ParticipantOutcome(
            participant=failure.participant,
            status=failure.status,
            reason=failure.reason,
            num_examples=0,
            update_digest=None,
            duration_s=failure.duration_s,
            metrics={},
        )
        self._outcomes[failure.participant] = outcome
        self._unannounced.append(failure.participant)
        return outcome

    def expire(self, elapsed_s: float) -> tuple[ParticipantOutcome, ...]:
        """Mark every pending participant as timed out after ``elapsed_s`` seconds."""
        return tuple(
            self.fail(
                JobFailed(
                    participant=p,
                    round=self.number,
                    kind="train",
                    status="timeout",
                    reason=f"no update within the round deadline ({elapsed_s:.1f} s)",
                    duration_s=elapsed_s,
                )
            )
            for p in self.pending
        )

    def aggregate(self, release: Callable[[TrainDone], None] | None = None) -> Params:
        """The aggregate of the valid updates.

        :class:`RoundFailed` without quorum, or when the rule has fewer updates than
        its bound on attackers needs (:class:`~accord.errors.TooFewUpdates`). The
        updates the accumulator kept (:class:`LendingAccumulator`) go to
        ``release`` once it is done with them, whatever the outcome.
        """
        if self._waiting:
            raise RuntimeError("drain() the round before aggregating it")
        try:
            if self.succeeded < self.plan.required:
                raise RoundFailed(
                    round_number=self.number,
                    received=self.succeeded,
                    required=self.plan.required,
                )
            try:
                return self._acc.result()
            except TooFewUpdates as exc:  # the robust rule's bound on attackers
                raise RoundFailed(
                    round_number=self.number,
                    received=self.succeeded,
                    required=exc.required,
                    detail=str(exc),
                ) from exc
        finally:
            lent, self._lent = self._lent, []
            if release is not None:
                for done in lent:
                    release(done)

    def _record(
        self,
        participant: str,
        status: Literal["ok", "rejected", "quarantined"],
        reason: str | None,
        done: TrainDone,
    ) -> ParticipantOutcome:
        valid = status != "rejected"
        metrics: Mapping[str, float] = dict(done.metrics) if valid else {}
        outcome = ParticipantOutcome(
            participant=participant,
            status=status,
            reason=reason,
            num_examples=done.num_examples if valid else 0,
            update_digest=done.update_digest if valid else None,
            duration_s=done.duration_s,
            metrics=metrics,
        )
        self._outcomes[participant] = outcome
        self._unannounced.append(participant)
        return outcome
