"""How the coordinator reaches participants: :class:`Executor` and its events.

The round logic never knows whether participants are worker processes on this machine
(:mod:`accord.simulation`) or organizations at the other end of a gRPC stream: both
implement :class:`Executor`. The coordinator publishes the global model, submits jobs,
and consumes events; updates arrive as :class:`~accord.params.Params` views that stay
valid until the coordinator calls :meth:`Executor.release`, which lets an executor hand
over shared memory or a receive buffer without a copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from accord.params import Params
from accord.task.protocol import TrainConfig

if TYPE_CHECKING:  # secure aggregation needs its extra; the plain loop does not
    from accord.coordinator.integrity import ExampleBounds
    from accord.secagg.ckks_session import CkksJob
    from accord.secagg.session import SecureJob

__all__ = [
    "Bounding",
    "EvalDone",
    "Event",
    "Executor",
    "JobFailed",
    "Removing",
    "SecAggReply",
    "TrainDone",
    "TrainJob",
    "eligible",
]


@dataclass(frozen=True, slots=True)
class TrainJob:
    """Train ``participant`` from the published global model with ``config``.

    With ``secure`` set, the participant keeps its update and answers with the
    first stage's message (:class:`SecAggReply`) instead of a :class:`TrainDone`:
    a masking session's key advertisement (:class:`SecureJob`) or its encrypted
    update (:class:`CkksJob`).
    """

    participant: str
    config: TrainConfig
    secure: SecureJob | CkksJob | None = None
    #: The signed ledger entry of the last round this participant contributed
    #: to, for it to countersign (empty: none; executors that cannot carry it
    #: leave it out).
    ledger_entry: str = ""


@dataclass(frozen=True, slots=True)
class TrainDone:
    """A participant's update (local − global), valid until released."""

    participant: str
    round: int
    update: Params
    num_examples: int
    duration_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    update_digest: str | None = None
    token: int = 0
    #: The executor proved every value finite as it received them (the round
    #: then checks only the structure, without reading the values again).
    values_checked: bool = False
    #: With ``values_checked``: the update's L2 norm, computed in the same pass
    #: (None: not computed; the round computes it if it needs it).
    norm: float | None = None
    #: The participant's receipt for the ledger entry its job carried (a DSSE
    #: envelope as JSON), and the identity certificate (DER) it was checked in
    #: with; empty when it sent none.
    receipt: str = ""
    certificate: bytes = b""
    #: The bytes the participant sent for this update, where the executor measured
    #: them (``[compression]``); None: not counted.
    bytes_sent: int | None = None


@dataclass(frozen=True, slots=True)
class EvalDone:
    """A participant's scores of the published global model on its holdout."""

    participant: str
    round: int
    metrics: Mapping[str, float]
    num_examples: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class JobFailed:
    """A job ended without a usable result; ``reason`` is readable by its owner.

    ``refused_on_arrival``: the executor refused the result as it arrived, by the
    bounds the coordinator gave it (:class:`Bounding`), and told the sender why;
    otherwise the site reported the failure, or nothing usable came.
    """

    participant: str
    round: int
    kind: Literal["train", "eval", "secagg"]
    status: Literal["failed", "rejected", "timeout"]
    reason: str
    duration_s: float = 0.0
    refused_on_arrival: bool = False


@dataclass(frozen=True, slots=True)
class SecAggReply:
    """A participant's encoded message for one stage of a secure round.

    ``payload`` is opaque here (:mod:`accord.transport.secagg_wire` parses it);
    ``duration_s`` is the participant's time for the stage, training included for
    the first.
    """

    participant: str
    round: int
    stage: str
    payload: bytes
    duration_s: float = 0.0


Event = TrainDone | EvalDone | JobFailed | SecAggReply


class Executor(Protocol):
    """Runs jobs at participants and reports what happened, in arrival order."""

    @property
    def participants(self) -> tuple[str, ...]:
        """Every participant this executor can reach, in a stable order."""
        ...

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        """Make ``params`` the global model that the next jobs start from.

        ``digest``, when the caller has it, is ``params.digest()`` (an executor
        that names the model by its digest need not hash it again).
        """
        ...

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Start training jobs; each ends in exactly one TrainDone or JobFailed."""
        ...

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Start evaluation jobs; each ends in exactly one EvalDone or JobFailed."""
        ...

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        """The raw Ed25519 identity public keys of these participants, where known.

        A participant left out of the answer (a deployed site that presented no
        identity certificate) cannot take part in a secure round: the round records
        it as failed and goes on without it.
        """
        ...

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        """Send each participant its coordinator message opening ``stage``.

        Each ends in exactly one :class:`SecAggReply` for ``stage`` or one
        :class:`JobFailed` of kind ``secagg``.
        """
        ...

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event, or None if none arrived within ``timeout`` seconds."""
        ...

    def release(self, event: TrainDone) -> None:
        """The coordinator is done reading ``event.update``."""
        ...

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Stop waiting for these participants' jobs; their late results are dropped."""
        ...

    def close(self) -> None:
        """Stop every job and free every resource."""
        ...


@runtime_checkable
class Removing(Protocol):
    """An executor that can remove participants from a run while it runs.

    A deployment removes a participant whose certificate was revoked; the round loop
    selects from the roster without them (their roster positions, and so everyone's
    seeds, stay the same).
    """

    @property
    def removed(self) -> frozenset[str]:
        """Participants removed from the run so far."""
        ...


@runtime_checkable
class Bounding(Protocol):
    """An executor that holds results to the federation's bounds as they arrive.

    A deployment reads an update's example count, or an evaluation report, before
    the rest of the message: given the bounds, it refuses a claim beyond them at
    once, tells the sender why (in the answer to that very call), and fails the
    job with a ``rejected`` :class:`JobFailed` (``refused_on_arrival``). The
    coordinator still checks every result itself.
    """

    def bound_examples(self, bounds: ExampleBounds) -> None:
        """Refuse, from now on, results that claim more than ``bounds`` allow."""
        ...


def eligible(executor: Executor) -> tuple[str, ...]:
    """The participants ``executor`` may still give jobs to, in roster order."""
    gone = executor.removed if isinstance(executor, Removing) else frozenset()
    return tuple(p for p in executor.participants if p not in gone)
