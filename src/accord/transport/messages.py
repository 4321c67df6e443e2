"""What the coordinator and the participants say to each other, as plain data.

These frozen dataclasses are the wire protocol's messages as the rest of accord sees
them; :mod:`accord.transport.codec` (with :mod:`~accord.transport.secure_codec` for
secure rounds) turns them into protobuf messages and back, so nothing outside the
transport imports generated code.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from accord.params import ParamSpec
from accord.task.protocol import TrainConfig

__all__ = [
    "CHUNK_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_TASK_BYTES",
    "MAX_TASK_PAYLOAD",
    "PROTOCOL_VERSION",
    "RUN_ABORTED_PREFIX",
    "RUN_FINISHED",
    "RUN_INTERRUPTED",
    "Chunk",
    "EvalReport",
    "FailureReport",
    "Goodbye",
    "JobKind",
    "PackedHeader",
    "ParticipantState",
    "Published",
    "Receipt",
    "SecAggHeader",
    "TaskOrder",
    "UpdateHeader",
    "Welcome",
    "farewell",
    "task_digest",
    "wire_run_id",
]

#: Version of the wire protocol; a participant sends it in its Hello. 2: models'
#: and updates' digests are BLAKE3 (:meth:`accord.params.Params.digest`), not
#: SHA-256, so a coordinator and a participant of different versions would refuse
#: every model and update as corrupt; they now refuse each other at the Hello.
PROTOCOL_VERSION = 2
#: Largest slice of a packed buffer in one message: far below the 4 MiB message
#: limit, large enough that per-message overhead is negligible.
CHUNK_BYTES = 1 << 20
#: Largest message the coordinator reads from a caller: a chunk and its framing fit
#: with room to spare. A larger one is refused as ``too_large`` and recorded.
MAX_MESSAGE_BYTES = 4 * 2**20
#: Largest task a site accepts from its coordinator: a CKKS round's ``ckks_decrypt``
#: task carries the encrypted sum in one message, about 80 bytes per model value
#: with the default parameters (3 million values fit).
MAX_TASK_BYTES = 256 * 2**20
#: Largest ``secagg`` payload of a task: the rest is room for its other fields.
MAX_TASK_PAYLOAD = MAX_TASK_BYTES - 2**20

#: ``secagg``: the next stage of a secure-aggregation round.
JobKind = Literal["train", "eval", "secagg"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A slice of a packed buffer (or of an encoded message) starting at ``offset``."""

    offset: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class PackedHeader:
    """Structure, packed size and digest of a buffer that follows in chunks."""

    spec: ParamSpec
    total_bytes: int
    digest: str


@dataclass(frozen=True, slots=True)
class TaskOrder:
    """A job the coordinator asks a participant to run on ``model_digest``.

    A train task of a secure round also carries ``secure_json`` (the round's
    :class:`~accord.secagg.session.SecureJob` as JSON, which the site parses) and
    the identity certificates (DER) of the round's roster; a ``secagg`` task
    carries the ``stage`` it opens and the coordinator's message for it
    (``payload``, an encoded ``SecAggMessage``) and no model. ``crl`` (DER, on
    every task and on the :class:`Welcome`) is the CA's revocation list as the
    coordinator holds it; the site verifies it itself
    (:mod:`accord.transport.coordinator_pin`). ``ledger_entry`` (train tasks) is
    the signed ledger entry of the last round the site contributed to, which it
    may countersign (:mod:`accord.ledger.receipt`).
    """

    run_id: str
    round: int
    kind: JobKind
    model_digest: str
    config: TrainConfig | None = None
    secure_json: str = ""
    stage: str = ""
    payload: bytes = b""
    certificates: tuple[bytes, ...] = ()
    crl: bytes = b""
    ledger_entry: str = ""


@dataclass(frozen=True, slots=True)
class Welcome:
    """First message of the task stream: the coordinator accepted the subscription."""

    run_id: str
    round: int
    crl: bytes = b""


#: The goodbye of a run that ran all its rounds; any other one ended it early.
RUN_FINISHED = "run finished"
#: The goodbye of a coordinator stopped by Ctrl-C or SIGTERM: the run stays
#: resumable (``accord coordinator --resume``), so a site may be started again.
RUN_INTERRUPTED = "run interrupted by the coordinator; it may resume"
#: How the goodbye of a run that failed before its end begins.
RUN_ABORTED_PREFIX = "run aborted: "
_MAX_GOODBYE_REASON = 1000


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The run is over: the participant closes its stream and stops.

    ``reason`` says how it ended: :data:`RUN_FINISHED` after its last round,
    :data:`RUN_INTERRUPTED` if the coordinator was interrupted, ``run aborted:
    WHY`` if it failed; other texts (a newer connection took over) end only this
    stream. The text is the whole protocol, so that a coordinator of an earlier
    release, which says "run finished" or an admin's reason, is understood too.
    """

    run_id: str
    reason: str

    @property
    def finished(self) -> bool:
        """Whether the run ran all its rounds (anything else ended it early)."""
        return self.reason == RUN_FINISHED

    @property
    def interrupted(self) -> bool:
        """Whether the coordinator was interrupted and may resume the run."""
        return self.reason == RUN_INTERRUPTED


def farewell(exc: BaseException | None) -> str:
    """The goodbye of a run that ended with ``exc`` (None: it ran to its end)."""
    if exc is None:
        return RUN_FINISHED
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (accord.cli.main)
        return RUN_INTERRUPTED
    why = str(exc).strip() or type(exc).__name__
    if len(why) > _MAX_GOODBYE_REASON:  # the wire takes 4,096 characters of text
        why = why[:_MAX_GOODBYE_REASON] + "…"
    return f"{RUN_ABORTED_PREFIX}{why}"


@dataclass(frozen=True, slots=True)
class UpdateHeader:
    """First message of an update: what follows, and what it was trained from.

    ``receipt`` is the site's countersignature of the ledger entry its task carried
    (a DSSE envelope as JSON), or empty.
    """

    run_id: str
    round: int
    base_digest: str
    params: PackedHeader
    num_examples: int
    duration_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    receipt: str = ""


@dataclass(frozen=True, slots=True)
class SecAggHeader:
    """First message of a SubmitSecAgg stream: the stage it answers, and its size.

    ``duration_s`` is the site's time for the stage, training included for
    ``advertise``.
    """

    run_id: str
    round: int
    stage: str
    total_bytes: int
    duration_s: float
    #: :func:`task_digest` of the task the message answers: a stage's answer is
    #: keyed by the message it answers, not only by its stage, round and sender.
    answers: str = ""


def task_digest(order: TaskOrder) -> str:
    """SHA-256 (hex) of what a task asks: the key its secure-stage answer names.

    Two sums can open stages of the same name in the same round (a training
    round's masking and the fairness counts' after its evaluation); the answer
    to one must not be taken for an answer to the other, so the coordinator
    admits a stage message only if it names the digest of the job it answers
    (:meth:`~accord.transport.jobs.JobBook.admit_stage`). Covers the run, round,
    kind, stage, model, secure settings and payload (not the certificates or
    CRL, which only help the site check the task).
    """
    h = hashlib.sha256(b"accord-task-v1")
    for part in (
        order.run_id.encode("utf-8"),
        str(order.round).encode("ascii"),
        order.kind.encode("utf-8"),
        order.stage.encode("utf-8"),
        order.model_digest.encode("utf-8"),
        order.secure_json.encode("utf-8"),
        order.payload,
    ):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class EvalReport:
    """A site's scores of the global model ``model_digest`` on its holdout."""

    run_id: str
    round: int
    model_digest: str
    metrics: Mapping[str, float]
    num_examples: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class FailureReport:
    """A job that produced nothing usable; ``refused`` when the site declined it."""

    run_id: str
    round: int
    kind: JobKind
    reason: str
    refused: bool = False
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the coordinator accepted from ``participant`` (as it authenticated it)."""

    run_id: str
    round: int
    participant: str
    digest: str = ""
    bytes: int = 0


def wire_run_id(run_id: str) -> str:
    """The run id one coordinator process uses on the wire: ``{run_id}.{8 hex}``.

    It starts with the store's run id, so a site's log says which run it served,
    and ends with a part drawn afresh by each process. A coordinator that resumes
    a run after a crash therefore refuses, as ``stale``, whatever was meant for the
    process that died (an update trained for its round, a model request, a report),
    and a site that already answered a round of the dead process does not take the
    resumed round's task of the same number for a repeat: it trains again.
    """
    return f"{run_id}.{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Published:
    """The global model as FetchModel streams it: header and packed bytes."""

    header: PackedHeader
    buffer: bytearray  # never written to once published


@dataclass(frozen=True, slots=True)
class ParticipantState:
    """What :meth:`GrpcExecutor.status` reports about one participant."""

    name: str
    connected: bool
    last_round: int
