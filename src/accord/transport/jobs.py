"""The coordinator's book of jobs, and the rules for admitting a participant's message.

Every job the round loop submits is opened here, keyed by participant, kind and
round, and moves ``sent`` → ``receiving`` (an update is streaming in) → ``done``, or
to ``failed`` or ``abandoned``. A message is admitted only against an open job of
its sender; everything else is a :class:`~accord.errors.SubmissionRefused` whose
kind says why: another run or a replay from an earlier round (``stale``), a job
that already has a result (``duplicate``), no such job (``forbidden``), an update
whose structure or size is not the model's (``mismatch``, ``too_large``). The book
does no locking and no I/O; :class:`~accord.transport.executor.GrpcExecutor` holds a
lock around it.

Secure rounds (:meth:`JobBook.admit_stage`): the ``advertise`` message answers the
secure train job; each later stage opens one ``secagg`` job per participant and
round, which the next stage replaces, so a message for a stage that is over is a
replay (``stale``), one for a stage not yet open is ``forbidden``, and a second
answer to the open stage is a ``duplicate``. A CKKS round has two stages of its
own (:data:`CKKS_STAGES`): ``ckks_upload`` answers the train job like ``advertise``,
``ckks_decrypt`` a ``secagg`` job; a stage of the other protocol than the open
job's is a ``mismatch``. The preprocessing fit's stages (:data:`PREPARE_STAGES`)
are ``secagg`` jobs of round 0 under the same rules; under secure aggregation the
``statistics`` stage opens a secure sum whose later stages (``share_keys`` to
``unmask``) are ``secagg`` jobs of round 0 too. :func:`secagg_limit` bounds
a masking stage's message by what the protocol can produce
(:mod:`~accord.transport.secure_rounds` a CKKS one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from accord.errors import SubmissionRefused
from accord.params import ParamSpec
from accord.transport.messages import (
    JobKind,
    PackedHeader,
    SecAggHeader,
    TaskOrder,
    UpdateHeader,
    task_digest,
)

if TYPE_CHECKING:
    from accord.secagg.session import SecureJob

__all__ = [
    "CKKS_STAGES",
    "FAIRNESS_STAGES",
    "PREPARE_MAX_BYTES",
    "PREPARE_STAGES",
    "STAGES",
    "Job",
    "JobBook",
    "check_answers",
    "check_secagg_header",
    "check_update_header",
    "secagg_limit",
]

#: The stages of a secure round that a participant answers, in order (the values
#: of :class:`accord.secagg.messages.Stage`; repeated so that the coordinator's
#: transport refuses a stray message without the secagg extra).
STAGES = ("advertise", "share_keys", "masked_input", "consistency", "unmask")
#: The stages of a CKKS round (:mod:`accord.secagg.ckks_session`'s, repeated alike).
CKKS_STAGES = ("ckks_upload", "ckks_decrypt")
#: The secure sum of a round's fairness counts, after its evaluation
#: (:mod:`accord.coordinator.group_sum`): ``fairness`` opens it (its answer is
#: the key advertisement), then the masking stages, as ``secagg`` jobs of the
#: round the counts are of.
FAIRNESS_STAGES = ("fairness", *STAGES[1:])
#: The stages that fit a deployment's preprocessing before round 1, as ``secagg``
#: jobs of round 0 (:mod:`accord.coordinator.preparation`).
PREPARE_STAGES = ("profile", "statistics", "encoding")
#: Largest message of a preparation stage (a profile: names, levels, three sums;
#: the ``statistics`` answer is a secure sum's advertisement).
PREPARE_MAX_BYTES = 16 * 2**20
_FIRST = frozenset({STAGES[0], CKKS_STAGES[0]})  # they answer the train job

JobState = Literal["sent", "receiving", "done", "failed", "abandoned"]
_Key = tuple[str, JobKind, int]  # (participant, kind, round)
_OPEN_STATES: frozenset[JobState] = frozenset({"sent", "receiving"})


@dataclass
class Job:
    """One job given to one participant, and how far it got.

    ``reader`` is set while the job's upload streams in (``receiving``): called
    with a reason, it stops reading that upload at once, so that an upload never
    outlives its job (see :meth:`JobBook.abandon`).
    """

    participant: str
    order: TaskOrder
    state: JobState = "sent"
    reader: Callable[[str], None] | None = field(
        default=None, repr=False, compare=False
    )


class JobBook:
    """The jobs of one run; see the module docstring."""

    def __init__(self, run_id: str, participants: Sequence[str]) -> None:
        self.run_id = run_id
        self._members = frozenset(participants)
        self._expelled: dict[str, str] = {}
        self._jobs: dict[_Key, Job] = {}
        self._last_train: dict[str, int] = {}
        self.round = 0

    def open(self, participant: str, order: TaskOrder) -> Job:
        """Record a job just handed to ``participant``."""
        job = Job(participant, order)
        self._jobs[(participant, order.kind, order.round)] = job
        if order.kind == "train":
            self._last_train[participant] = order.round
            self.round = max(self.round, order.round)
        return job

    def last_train(self, participant: str) -> int:
        """The latest round ``participant`` was asked to train in (0: none)."""
        return self._last_train.get(participant, 0)

    def check_member(self, name: str) -> None:
        """Refuse a certificate holder not (or no longer) on this run's roster."""
        if name in self._expelled:
            raise SubmissionRefused(
                "forbidden",
                f"{name!r} was removed from this run: {self._expelled[name]}",
                participant=name,
            )
        if name not in self._members:
            raise SubmissionRefused(
                "forbidden",
                f"{name!r} holds a valid certificate but is not a participant of "
                "this run; the coordinator's [deployment] participants must list it",
                participant=name,
            )

    def check_run(self, run_id: str) -> None:
        """Refuse a message of another run (an old run's replay, or a stranger's)."""
        if run_id != self.run_id:
            raise SubmissionRefused(
                "stale", f"this message is for run {run_id[:32]!r}, not the current one"
            )

    def admit(self, name: str, kind: JobKind, round_number: int, run_id: str) -> Job:
        """The open job a message of ``name`` answers, or a refusal saying why not."""
        self.check_member(name)
        self.check_run(run_id)
        latest = self.last_train(name)
        if kind == "train" and round_number < latest:
            raise SubmissionRefused(
                "stale", f"replay: round {round_number} is over (yours is now {latest})"
            )
        job = self._jobs.get((name, kind, round_number))
        if job is None:
            raise SubmissionRefused(
                "forbidden", f"you have no {kind} job in round {round_number}"
            )
        return _still_open(job, f"{kind} job")

    def admit_stage(self, name: str, stage: str, round_number: int, run_id: str) -> Job:
        """The open job a message of ``name`` for a secure round's ``stage`` answers."""
        known = STAGES + CKKS_STAGES + PREPARE_STAGES + FAIRNESS_STAGES
        if stage not in known:
            raise SubmissionRefused(
                "malformed", f"unknown secure-aggregation stage {stage[:64]!r}"
            )
        if stage in _FIRST:
            train = self.admit(name, "train", round_number, run_id)
            if not train.order.secure_json:
                raise SubmissionRefused(
                    "forbidden",
                    f"your train job of round {round_number} is not a secure one",
                )
            return train
        self.check_member(name)
        self.check_run(run_id)
        latest = self.last_train(name)
        if round_number < latest:
            raise SubmissionRefused(
                "stale", f"replay: round {round_number} is over (yours is now {latest})"
            )
        job = self._jobs.get((name, "secagg", round_number))
        if job is None:
            raise SubmissionRefused(
                "forbidden",
                f"you have no secure-aggregation job in round {round_number}",
            )
        current = job.order.stage
        if stage != current:
            protocol = next(
                p
                for p in (CKKS_STAGES, PREPARE_STAGES, FAIRNESS_STAGES, STAGES)
                if current in p
            )
            if stage not in protocol:
                raise SubmissionRefused(
                    "mismatch",
                    f"stage {stage} is not of this round's protocol (its current "
                    f"stage is {current})",
                )
            if protocol.index(stage) < protocol.index(current):
                raise SubmissionRefused(
                    "stale",
                    f"replay: stage {stage} of round {round_number} is over (the "
                    f"current one is {current})",
                )
            raise SubmissionRefused(
                "forbidden",
                f"stage {stage} of round {round_number} has not started (the "
                f"current one is {current})",
            )
        return _still_open(job, f"{stage} job")

    def get(self, name: str, kind: JobKind, round_number: int) -> Job | None:
        """The job, in whatever state."""
        return self._jobs.get((name, kind, round_number))

    def reopen(self, name: str, round_number: int, kind: JobKind = "train") -> None:
        """An upload broke off or was refused: the job is open again."""
        job = self._jobs.get((name, kind, round_number))
        if job is not None and job.state == "receiving":
            job.state = "sent"

    def abandon(self, round_number: int, participants: Sequence[str]) -> list[Job]:
        """Close these participants' open jobs of ``round_number``.

        Return those whose upload was streaming in (``receiving``): the caller
        stops reading them (their :attr:`Job.reader`), since what they would
        deliver is refused as stale anyway.
        """
        kinds: tuple[JobKind, ...] = ("train", "eval", "secagg")
        receiving: list[Job] = []
        for p in participants:
            for kind in kinds:
                job = self._jobs.get((p, kind, round_number))
                if job is not None and job.state in ("sent", "receiving"):
                    if job.state == "receiving":
                        receiving.append(job)
                    job.state = "abandoned"
        return receiving

    def waiting(self, name: str) -> list[TaskOrder]:
        """Jobs of ``name`` handed out but not started on (sent again on reconnect)."""
        return [
            j.order
            for j in self._jobs.values()
            if j.participant == name and j.state == "sent"
        ]

    def expel(self, name: str, reason: str) -> list[Job]:
        """Remove ``name`` from the run for ``reason``; fail and return its open jobs.

        An upload in progress fails too: its end is refused as stale.
        """
        self._expelled[name] = reason
        failed = [
            j
            for j in self._jobs.values()
            if j.participant == name and j.state in ("sent", "receiving")
        ]
        for job in failed:
            job.state = "failed"
        return failed

    def expelled(self, name: str) -> str | None:
        """Why ``name`` was removed from the run, or None."""
        return self._expelled.get(name)

    @property
    def removed(self) -> frozenset[str]:
        """Participants removed from the run."""
        return frozenset(self._expelled)

    def owing(self) -> frozenset[tuple[str, str]]:
        """(participant, what) of each job handed out and not answered yet.

        ``what`` is the job's kind (``train``, ``eval``), or for a ``secagg`` job
        its stage.
        """
        return frozenset(
            (j.participant, j.order.stage if j.order.kind == "secagg" else j.order.kind)
            for j in self._jobs.values()
            if j.state in _OPEN_STATES
        )

    def fail_waiting(self, names: Sequence[str]) -> list[Job]:
        """Mark the jobs of ``names`` that wait for a result failed; return them."""
        failed = [
            j
            for j in self._jobs.values()
            if j.participant in names and j.state == "sent"
        ]
        for job in failed:
            job.state = "failed"
        return failed


def check_answers(header: SecAggHeader, job: Job) -> None:
    """Refuse a stage message that answers another task than ``job``'s.

    Stage, round and sender do not identify the message a reply answers: a
    round's masking sum and the secure sum of its fairness counts open stages of
    the same names in the same round, so a reply to the one, replayed, would
    pass for a reply to the other. Every stage message therefore names the
    :func:`~accord.transport.messages.task_digest` of the task it answers.
    """
    expected = task_digest(job.order)
    if header.answers != expected:
        raise SubmissionRefused(
            "stale",
            f"replay: this {header.stage[:64]} message of round {header.round} "
            f"does not answer the open task ({expected[:16]}…)",
        )


def _still_open(job: Job, what: str) -> Job:
    if job.state in ("done", "receiving", "failed"):
        raise SubmissionRefused(
            "duplicate",
            f"duplicate: your {what} of round {job.order.round} already has a result",
        )
    if job.state == "abandoned":
        raise SubmissionRefused(
            "stale", f"the deadline of round {job.order.round} passed"
        )
    return job


#: Room for a stage message's framing: run id, sender, field tags and lengths.
_OVERHEAD = 4096
#: Generous room per roster member for the stages whose message grows with the
#: roster: one encrypted pair of shares (share keys) or one revealed share
#: (unmask) per neighbour, each a few hundred bytes.
_PER_MEMBER = 2048


def secagg_limit(stage: str, *, vector_size: int, roster_size: int) -> int:
    """The largest message a participant may send for ``stage`` of a secure round.

    A masked input is ``vector_size`` little-endian uint32 words; the other
    messages grow at most linearly with the roster.
    """
    if stage == "masked_input":
        return 4 * vector_size + _OVERHEAD
    return _OVERHEAD + _PER_MEMBER * roster_size


def check_secagg_header(header: SecAggHeader, secure: SecureJob | None) -> None:
    """Refuse a stage's message larger than round ``secure`` can produce, or empty."""
    limit = 0
    if secure is not None:
        limit = secagg_limit(
            header.stage, vector_size=secure.vector_size, roster_size=len(secure.roster)
        )
    if not 0 < header.total_bytes <= limit:
        raise SubmissionRefused(
            "too_large" if header.total_bytes else "malformed",
            f"a {header.stage} message of {header.total_bytes} bytes; this round "
            f"allows 1 to {limit}",
        )


def check_update_header(header: UpdateHeader, model: PackedHeader, job: Job) -> None:
    """Refuse an update not trained from the job's model, or not shaped like it."""
    if header.base_digest != job.order.model_digest:
        raise SubmissionRefused(
            "stale",
            f"trained from model {header.base_digest[:16]}…, but round "
            f"{header.round} started from {job.order.model_digest[:16]}…",
        )
    announced, expected = header.params.total_bytes, model.total_bytes
    if announced > expected:
        raise SubmissionRefused(
            "too_large",
            f"the update announces {announced} bytes; the model has {expected}",
        )
    if header.params.spec != model.spec:
        raise SubmissionRefused("mismatch", _mismatch(model.spec, header.params.spec))
    if announced != expected:
        raise SubmissionRefused(
            "mismatch",
            f"the update announces {announced} bytes; the model has {expected}",
        )
    if header.num_examples <= 0:
        raise SubmissionRefused("mismatch", "num_examples must be positive")


def _mismatch(expected: ParamSpec, got: ParamSpec) -> str:
    for mine, theirs in zip(expected.tensors, got.tensors, strict=False):
        if mine != theirs:
            return (
                f"tensor {theirs.name[:100]!r} is {theirs.dtype}{list(theirs.shape)}; "
                f"the model has {mine.name!r} {mine.dtype}{list(mine.shape)}"
            )
    n, m = len(got.tensors), len(expected.tensors)
    return f"the update has {n} tensors; the model has {m}"
