"""The participant runtime: dial out, take tasks, train locally, send updates.

:class:`ParticipantRuntime` keeps a task stream open to the coordinator and runs
each task it receives, one at a time: fetch the global model the task names and
check its digest, run :func:`~accord.simulation.jobs.run_train` or
:func:`~accord.simulation.jobs.run_eval` (the same code a simulation worker runs,
with the same single BLAS thread by default, so a deployment reproduces a
simulation bit for bit) and stream the result back. A job that fails, or a result
the coordinator refuses, is reported with its reason so that the round need not
wait for its deadline. Staying connected (dialing out, redialing after a backoff,
giving up, the coordinator's CRLs checked against the site's pin) is
:mod:`accord.participant.connection`'s job; it stops when the coordinator says
goodbye, when the site's certificate is refused, or when asked to.

Secure rounds (:mod:`accord.participant.rounds`): a train task carrying secure
settings is checked first (the site's
:class:`~accord.participant.policy.SitePolicy`, then the protocol's own checks: the
roster's identity certificates for masking, :mod:`accord.participant.secure`, the
key holder's context for CKKS, :mod:`accord.participant.ckks`); the trained update
is masked or encrypted at once and only the protocol's messages leave the site,
through ``SubmitSecAgg``, one per stage. The site's policy may refuse plain train
tasks, or secure ones below a minimum threshold.

A site on ``csv:`` data (:class:`~accord.participant.table.SiteTable`) has no
features until the coordinator fits the federation's preprocessing: it answers
the ``profile`` and ``encoding`` stages of round 0, and under secure aggregation
the ``statistics`` stage whose secure sum then runs like a secure round's
(:mod:`accord.participant.preparation`), builds its task with ``builder`` for
the encoded data, and refuses train and eval tasks until then.

The task runs inside :class:`~accord.task.strategy_site.StrategySite`, which does
the site's part of the round's strategy: its loss before training for q-FedAvg,
and SCAFFOLD's control variate ``c_i``, kept in ``state_dir`` (never sent; only
``delta_c`` leaves, with the update).

Personalization is the site's own choice: with ``finetune`` (or a ``sim:`` site
whose fed.toml asks for it) each eval task also fine-tunes a copy of the global
model on the site's training rows and reports its scores beside the global
model's (:mod:`accord.task.personalization`); the fine-tuned model stays here.
FedPer and Ditto (``personal``, or a ``sim:`` site's fed.toml) keep the site's own
tensors (FedPer's head, Ditto's personal model) in ``state_dir/personal/<run>/``
as safetensors, so they survive a restart; only the shared tensors are sent.

Everything received, sent (sizes, digests) and refused goes to the
:class:`~accord.participant.sitelog.SiteLog`. A result the coordinator refuses
(an update claiming more examples than the federation allows, say) is logged
there as ``refused_by_coordinator`` with the coordinator's reason, and as a
warning, which ``accord participant`` shows on its terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from accord.errors import (
    ConfigError,
    DatasetError,
    PrivacyLedgerError,
    SecAggAborted,
    SubmissionRefused,
    TaskError,
)
from accord.params import Params
from accord.participant.backoff import Backoff
from accord.participant.compression import SiteCompression
from accord.participant.connection import serve
from accord.participant.data import LocalData
from accord.participant.group_counts import (
    group_count_metrics,
    group_counts,
    secure_counts_words,
)
from accord.participant.policy import SitePolicy
from accord.participant.preparation import Preparation, PreparationRefused, TaskBuilder
from accord.participant.privacy_guard import PrivacyGuard, supports_dp_sgd
from accord.participant.privacy_ledger import PrivacyLedger
from accord.participant.receipts import Receipts
from accord.participant.rounds import SecureRounds
from accord.participant.site_state import prune_runs
from accord.participant.sitelog import SiteLog
from accord.participant.table import SiteTable
from accord.privacy.dpsgd import DpSgdPlan
from accord.simulation.jobs import (
    JobError,
    SitePersonalization,
    TrainOutcome,
    run_eval,
    run_train,
)
from accord.task.local_strategy import LocalStrategy
from accord.task.personal_method import PersonalMethod, with_store
from accord.task.personal_state import (
    FileStore,
    MemoryStore,
    PersonalStore,
    find_personal,
    run_folder,
)
from accord.task.personalization import FineTune
from accord.task.protocol import Task, TrainConfig
from accord.task.strategy_site import StrategySite
from accord.threads import limited
from accord.transforms.compression import Declared
from accord.transport.jobs import FAIRNESS_STAGES, PREPARE_STAGES
from accord.transport.messages import (
    EvalReport,
    FailureReport,
    PackedHeader,
    SecAggHeader,
    TaskOrder,
    UpdateHeader,
    task_digest,
)

if TYPE_CHECKING:  # the runtime itself needs no grpc: tests drive it with a fake
    from accord.transport.client import CoordinatorClient
    from accord.transport.coordinator_pin import CoordinatorPin
    from accord.transport.identity import SigningIdentity

__all__ = ["ParticipantRuntime"]

logger = logging.getLogger(__name__)

#: Update buffers up to this size are kept for the next round (no page faults for a
#: fresh allocation every round); larger ones go back to the OS as soon as sent.
_SPARE_MAX_BYTES = 256 * 2**20

#: Refusals after which the site reports the job failed (the others, a duplicate
#: or a stale message, mean the coordinator already has its answer or moved on).
_REPORT_AFTER = frozenset({"mismatch", "malformed", "too_large", "corrupt"})
_RESULTS = {"train": "update", "eval": "evaluation report"}
_UNPREPARED = (
    "this site has no encoded data yet: the coordinator did not ship the "
    "federation's preprocessing (the profile and encoding stages before round 1)"
)


_NOT_COUNTING = (
    "this site counts no decisions per group: the run's preparation did not ask "
    "for fairness counts ([evaluation] sensitive), or its data is not encoded yet"
)
_COUNTS_PLAIN = (
    "this run has no secure aggregation: the site reports its per-group counts "
    "with its evaluation, and takes part in no secure sum of them"
)


def _job_key(order: TaskOrder) -> tuple[str, int, str]:
    """What identifies a job across reconnections: a secure round has one per stage.

    A stage task is keyed by the message it carries too: a round's masking sum
    and the secure sum of its fairness counts open stages of the same names.
    """
    if order.kind == "secagg":
        return order.run_id, order.round, f"secagg:{order.stage}:{task_digest(order)}"
    return order.run_id, order.round, order.kind


class ParticipantRuntime:
    """Serves one site's tasks until the coordinator ends the run.

    ``signing`` (the site's identity key and certificate) and ``ca_pem`` (the CA
    certificate it checks the roster's identity certificates against) let it take
    part in masking rounds, ``ckks_context`` (the key holder's secret context) in
    CKKS rounds; ``policy`` says which train tasks it refuses, and ``ledger``
    (:mod:`~accord.participant.privacy_ledger`) is where the site counts the
    epsilon of every DP-SGD round it trains, checked by the policy before each
    one (:mod:`~accord.participant.privacy_guard`). ``pin`` checks the CRLs the
    coordinator sends (``connect`` trusts the same pin's roots).
    ``accept_noise_seed`` lets a masking round fix the seed of the site's DP noise
    share (tests that compare a deployment with a simulation; it voids the DP).
    """

    def __init__(
        self,
        connect: Callable[[], CoordinatorClient],
        task: Task | None,
        data: LocalData | SiteTable,
        *,
        builder: TaskBuilder | None = None,
        log: SiteLog | None = None,
        backoff: Backoff | None = None,
        threads: int | None = 1,
        give_up_after_s: float | None = None,
        signing: SigningIdentity | None = None,
        ca_pem: bytes | None = None,
        policy: SitePolicy | None = None,
        ckks_context: bytes | None = None,
        pin: CoordinatorPin | None = None,
        accept_noise_seed: bool = False,
        ledger: PrivacyLedger | None = None,
        state_dir: Path | None = None,
        finetune: FineTune | None = None,
        personal: PersonalMethod | None = None,
        name: str | None = None,
    ) -> None:
        self._connect = connect
        self._name = name
        self._state_dir = state_dir
        #: The runs this process has served: the first task of another prunes
        #: the state folder (:func:`~accord.participant.site_state.prune_runs`).
        self._runs: set[str] = set()
        #: The run each wire run's train tasks declare their site state under
        #: (DP-SGD's ledger entries, SCAFFOLD's c_i): the first one declared.
        self._declared: dict[str, str] = {}
        self._compression = SiteCompression(state_dir)
        # The site's own choice to fine-tune at evaluation (a sim: site's fed.toml
        # may also ask for it): the personalized model is the site's business.
        self._finetune = finetune
        # FedPer or Ditto, the site's own choice (a sim: site's task comes with
        # its fed.toml's): wraps a plain task; its tensors are kept per run.
        self._personal = personal
        self._wrapped: tuple[Task, str, StrategySite] | None = None
        self._pin = pin
        self.log = log or SiteLog()
        self._backoff = backoff or Backoff()
        self._threads = threads
        self._give_up_after_s = give_up_after_s
        self._policy = policy or SitePolicy()
        self._privacy = PrivacyGuard(self._policy, ledger=ledger)
        self._secure = SecureRounds(
            self._policy,
            signing=signing,
            ca_pem=ca_pem,
            ckks_context=ckks_context,
            accept_noise_seed=accept_noise_seed,
        )
        self._prep = Preparation(
            data, task=task, builder=builder, policy=policy, secure=self._secure
        )
        self._receipts = Receipts(signing, self.log)
        self._answered: set[tuple[str, int, str]] = set()
        #: The last model fetched: its digest, its view and the buffer behind it.
        self._model: tuple[str, Params, bytearray] | None = None
        # The last update's buffer, once nothing reads it any more: the next round
        # writes into it instead of faulting in a fresh model-sized allocation.
        self._spare: bytearray | None = None

    def _last_model_buffer(self) -> bytearray | None:
        """The last model's buffer, to receive the next one, if nothing reads it.

        The model is forgotten either way (a new one is being fetched). Its
        views (arrays a task may have kept) hold a reference to the buffer, so
        the buffer is reused only when this frame's is the last one: a fresh,
        model-sized allocation costs its page faults every round.
        """
        if self._model is None:
            return None
        buffer, self._model = self._model[2], None
        # This frame's name and getrefcount's argument: no one else's.
        return buffer if sys.getrefcount(buffer) == 2 else None

    def _keep(self, buffer: bytearray) -> None:
        """Keep ``buffer`` for the next update, if it is small enough to hold on to."""
        self._spare = buffer if len(buffer) <= _SPARE_MAX_BYTES else None

    def run(self, stop: threading.Event | None = None) -> str:
        """Serve tasks; return the coordinator's goodbye (or ``"stopped"``)."""
        return serve(
            self._connect,
            self._handle,
            log=self.log,
            backoff=self._backoff,
            pin=self._pin,
            give_up_after_s=self._give_up_after_s,
            stop=stop,
        )

    # One task.

    def _handle(self, client: CoordinatorClient, order: TaskOrder, run: str) -> None:
        if _job_key(order) in self._answered:
            self.log.record("ignored_repeat", round=order.round, kind=order.kind)
            return
        try:
            run_folder(order.run_id)
        except ConfigError as exc:  # it would name this site's state folders
            self._refuse(client, order, str(exc))
            return
        if order.run_id != run:  # each run would get its own state folders
            self._refuse(
                client,
                order,
                f"this connection serves run {run!r}; a task of run "
                f"{order.run_id!r} is refused",
            )
            return
        if order.run_id not in self._runs:
            self._runs.add(order.run_id)
            if self._state_dir is not None:
                for removed in prune_runs(self._state_dir, keep=order.run_id):
                    self.log.record("state_pruned", folder=str(removed))
        detail: dict[str, object] = {"model_digest": order.model_digest}
        if order.kind == "secagg":
            detail = {"stage": order.stage}
        elif order.secure_json:
            detail["secure"] = True
        self.log.record(
            "received_task",
            run_id=order.run_id,
            round=order.round,
            kind=order.kind,
            **detail,
        )
        if order.kind == "secagg" and order.stage in PREPARE_STAGES:
            self._prepare(client, order)
            return
        if order.kind == "secagg" and order.stage == FAIRNESS_STAGES[0]:
            self._fairness_sum(client, order)
            return
        if order.kind == "secagg":
            self._secagg(client, order)
            return
        if self._prep.ready is None:
            self._refuse(client, order, _UNPREPARED)
            return
        if order.kind == "train":
            refusal = self._admit_train(order)
            if refusal is not None:
                self._refuse(client, order, refusal)
                return
        try:
            params = self._fetch(client, order)
        except SubmissionRefused as exc:
            self._refuse(client, order, f"the global model is unusable: {exc.reason}")
            return
        if order.kind == "train":
            self._train(client, order, params, secure=bool(order.secure_json))
        else:
            self._evaluate(client, order, params)

    def _admit_train(self, order: TaskOrder) -> str | None:
        """Why the site refuses a train task (its policy, a secure round's checks)."""
        self._secure.drop()  # a new round: the last one's secrets go
        if not order.secure_json:
            refusal = self._policy.refusal(secure=False)
        else:
            refusal = self._secure.admit(order)
        if refusal is not None or order.config is None:
            return refusal
        refusal = _addressed(order.config, self._name)
        if refusal is not None:
            return refusal
        declared = sorted(_declared_runs(order.config))
        if len(declared) > 1:
            return f"the task declares its DP-SGD and SCAFFOLD state under {declared}"
        if declared:  # the first binds this run's: one ledger key, one c_i folder
            bound = self._declared.setdefault(order.run_id, declared[0])
            if declared[0] != bound:
                return (
                    f"the task declares its site state (DP-SGD, SCAFFOLD) under run "
                    f"{declared[0]!r}; this run's tasks declared {bound!r}"
                )
        return self._privacy.refusal(
            order.config,
            supports_dp=supports_dp_sgd(self._usable(order.run_id)[1]),
            run=self._declared.get(order.run_id),
        )

    def _fetch(self, client: CoordinatorClient, order: TaskOrder) -> Params:
        if self._model is not None and self._model[0] == order.model_digest:
            return self._model[1]
        header, buffer = client.fetch_model(
            order.run_id, order.model_digest, into=self._last_model_buffer()
        )
        params = header.spec.view(buffer)
        actual = params.digest()
        if actual != order.model_digest or header.digest != order.model_digest:
            raise SubmissionRefused(
                "corrupt",
                f"its digest is {actual[:16]}…, the task named "
                f"{order.model_digest[:16]}…",
            )
        self.log.record(
            "fetched_model", round=order.round, bytes=len(buffer), digest=actual
        )
        self._model = (actual, params, buffer)
        return params

    def _train(
        self,
        client: CoordinatorClient,
        order: TaskOrder,
        params: Params,
        *,
        secure: bool,
    ) -> None:
        config = order.config
        if config is None or config.round != order.round:
            self._refuse(client, order, "the training configuration does not match")
            return
        spec = params.spec
        buffer, self._spare = self._spare, None
        if buffer is None or len(buffer) != spec.packed_nbytes:
            buffer = bytearray(spec.packed_nbytes)
        out = spec.view(buffer, writable=True)
        data, task = self._usable(order.run_id)
        with self._limits():
            # In the clear, the update's digest comes from the pass that writes
            # it (a masked or encrypted one is never sent as it is: no digest).
            result = run_train(task, data.train, params, config, out, check=not secure)
        if isinstance(result, JobError):
            del out
            self._keep(buffer)  # nothing was sent from it
            self._fail(
                client, order, result.reason, refused=result.status == "rejected"
            )
            return
        # How the site trained, for its own privacy audit to repeat it
        # (:mod:`accord.participant.privacy_audit`); settings, never data.
        self.log.record(
            "trained",
            run_id=order.run_id,
            round=order.round,
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            options=dict(config.options),
        )
        try:  # written ahead: counted before anything of it leaves the site
            epsilon = self._privacy.spent(config)
        except PrivacyLedgerError as exc:
            del out
            self._keep(buffer)
            self._fail(client, order, str(exc), refused=False)
            return
        if epsilon is not None:
            self.log.record("privacy_spent", round=order.round, total_epsilon=epsilon)
        if secure:
            self._seal(client, order, out, result)
            del out
            self._keep(buffer)  # only the masked or encrypted form is kept
            return
        digest = result.digest
        payload: bytes | bytearray = buffer
        try:
            declared = Declared.of(config.options)
            if declared is not None:
                payload = self._compression.compress(
                    declared, order.run_id, config.participant, order.round, out
                )
                digest = out.digest()  # of what the coordinator will decode
                self.log.record(
                    "compressed_update",
                    round=order.round,
                    method=declared.method,
                    bytes=len(payload),
                    dense=len(buffer),
                )
        except (ValueError, ConfigError, OSError) as exc:
            del out
            self._keep(buffer)
            self._fail(client, order, f"compression: {exc}", refused=False)
            return
        header = UpdateHeader(
            run_id=order.run_id,
            round=order.round,
            base_digest=order.model_digest,
            params=PackedHeader(spec, len(payload), digest),
            num_examples=result.num_examples,
            duration_s=result.duration_s,
            metrics=_finite(result.metrics),
            receipt=self._receipts.sign(order),
        )
        # Written ahead: if the site stops mid-upload (Ctrl-C, a crash), its log
        # still names the update the coordinator may have received and used.
        self.log.record(
            "sending_update",
            round=order.round,
            bytes=len(payload),
            digest=digest,
            num_examples=result.num_examples,
        )
        try:
            receipt = client.submit_update(header, payload)
        except SubmissionRefused as exc:
            self._refused_by_coordinator(client, order, exc)
            return
        except (KeyboardInterrupt, SystemExit):
            self.log.record("upload_interrupted", round=order.round, digest=digest)
            raise
        self._receipts.sent(order, digest)
        # The coordinator read the whole stream before its receipt: reuse the buffer.
        del out
        self._keep(buffer)
        self._answered.add(_job_key(order))
        self.log.record(
            "sent_update",
            round=order.round,
            bytes=len(payload),
            digest=digest,
            num_examples=result.num_examples,
            receipt_digest=receipt.digest,
        )

    def _usable(self, run_id: str) -> tuple[LocalData, Task]:
        ready = self._prep.ready
        assert ready is not None  # _handle refuses jobs before the encoding
        data, task = ready
        wrapped = self._wrapped
        if wrapped is None or wrapped[0] is not task or wrapped[1] != run_id:
            state = None if self._state_dir is None else self._state_dir / "scaffold"
            # A ``sim:`` site's task comes wrapped for the simulation's own folder.
            inner = task.task if isinstance(task, StrategySite) else task
            inner = self._personalized(inner, run_id)
            wrapped = self._wrapped = (
                task,
                run_id,
                StrategySite(inner, state_dir=state),
            )
        return data, wrapped[2]

    def _personalized(self, task: Task, run_id: str) -> Task:
        """``task`` keeping FedPer's or Ditto's tensors in this run's state folder."""
        store: PersonalStore = (
            MemoryStore()
            if self._state_dir is None or not run_id
            else FileStore.for_run(self._state_dir, run_id)
        )
        rebound = with_store(task, store)  # a sim: site's, as its fed.toml declares
        if rebound is not None:
            return rebound
        if self._personal is not None:
            return self._personal.wrap(task, store)
        return task

    # The preprocessing fit (round 0).

    def _prepare(self, client: CoordinatorClient, order: TaskOrder) -> None:
        """Answer the ``profile`` or ``encoding`` stage (:mod:`.preparation`)."""
        t0 = time.perf_counter()
        try:
            payload = self._prep.answer(order)
        except PreparationRefused as exc:
            self._refuse(client, order, str(exc))
            return
        if order.stage == "encoding":  # the encoder and split, for the site's audit
            self.log.record(
                "encoded_data",
                run_id=order.run_id,
                digest=self._prep.digest,
                encoding=json.loads(order.payload),
            )
            if self._prep.profile_digest is not None:  # what the contract must name
                self.log.record("sent_profile", digest=self._prep.profile_digest)
        self._send_stage(client, order, order.stage, payload, time.perf_counter() - t0)

    # Secure rounds.

    def _seal(
        self,
        client: CoordinatorClient,
        order: TaskOrder,
        update: Params,
        result: TrainOutcome,
    ) -> None:
        """Mask or encrypt the trained update; send the first stage's message."""
        assert order.config is not None
        t0 = time.perf_counter()
        try:
            stage, payload = self._secure.seal(
                order, update, result.num_examples, seed=order.config.seed
            )
        except (SecAggAborted, ValueError) as exc:
            self._fail(client, order, str(exc), refused=True)
            return
        duration = result.duration_s + time.perf_counter() - t0
        self._send_stage(client, order, stage, payload, duration)

    def _secagg(self, client: CoordinatorClient, order: TaskOrder) -> None:
        """Answer one stage of the open secure round."""
        t0 = time.perf_counter()
        try:
            reply = self._secure.answer(order)
        except (SecAggAborted, ValueError) as exc:
            # ValueError: a peer's key or message no check above caught; the round
            # fails for this site, the participant stays up for the next one.
            self._fail(client, order, str(exc), refused=False)
            return
        except SubmissionRefused as exc:
            reason = f"the coordinator's {order.stage} message: {exc.reason}"
            self._fail(client, order, reason, refused=True)
            return
        self._send_stage(client, order, order.stage, reply, time.perf_counter() - t0)

    def _fairness_sum(self, client: CoordinatorClient, order: TaskOrder) -> None:
        """Count per group on the named model, mask the counts, advertise.

        The ``fairness`` task of a secure run (:mod:`accord.coordinator.
        group_sum`): admitted like the preprocessing's secure sum (the roster's
        certificates, the site's minimum threshold), counted on the model the
        task names (the one the site just evaluated), laid out over the declared
        groups and encoded exactly; only the masked counts leave the site.
        """
        from accord.data.handshake import FairnessSumRequest

        t0 = time.perf_counter()
        fairness = self._prep.fairness
        if self._prep.ready is None or fairness is None:
            self._refuse(client, order, _NOT_COUNTING)
            return
        if not self._prep.fairness_secure:
            self._refuse(client, order, _COUNTS_PLAIN)
            return
        try:
            request = FairnessSumRequest.from_json(order.payload)
        except DatasetError as exc:
            self._refuse(client, order, f"the fairness task is unusable: {exc}")
            return
        refusal = self._secure.admit_sum(order, request.secure_json)
        if refusal is not None:
            self._refuse(client, order, refusal)
            return
        named = dataclasses.replace(order, model_digest=request.model_digest)
        try:
            params = self._fetch(client, named)
        except SubmissionRefused as exc:
            self._secure.drop()
            self._refuse(client, order, f"the global model is unusable: {exc.reason}")
            return
        data, task = self._usable(order.run_id)
        try:
            with self._limits():
                counts = group_counts(task, params, data.holdout, *fairness)
            words = secure_counts_words(counts, request.groups)
            payload = self._secure.seal_sum(order, words)
        except (DatasetError, TaskError, SecAggAborted, ValueError) as exc:
            self._secure.drop()
            self._refuse(client, order, f"its fairness counts cannot be summed: {exc}")
            return
        self.log.record(
            "counted_groups",
            round=order.round,
            model_digest=request.model_digest,
            groups=len(counts),
        )
        self._send_stage(client, order, order.stage, payload, time.perf_counter() - t0)

    def _send_stage(
        self,
        client: CoordinatorClient,
        order: TaskOrder,
        stage: str,
        payload: bytes,
        duration_s: float,
    ) -> None:
        header = SecAggHeader(
            order.run_id,
            order.round,
            stage,
            len(payload),
            duration_s,
            answers=task_digest(order),
        )
        try:
            receipt = client.submit_secagg(header, payload)
        except SubmissionRefused as exc:
            if exc.kind != "duplicate":
                self._secure.drop()
            self._refused_by_coordinator(client, order, exc)
            return
        self._answered.add(_job_key(order))
        self.log.record(
            "sent_secagg",
            round=order.round,
            stage=stage,
            bytes=len(payload),
            digest=hashlib.sha256(payload).hexdigest(),
            receipt_digest=receipt.digest,
        )

    def _evaluate(
        self, client: CoordinatorClient, order: TaskOrder, params: Params
    ) -> None:
        data, task = self._usable(order.run_id)
        setting = self._finetune or data.finetune
        personal = (
            None
            if setting is None and find_personal(task) is None
            else SitePersonalization(setting, data.train, order.round, data.name)
        )
        with self._limits():
            result = run_eval(task, data.holdout, params, personal=personal)
            counts: dict[str, float] = {}
            plain = self._prep.fairness is not None and not self._prep.fairness_secure
            if not isinstance(result, JobError) and plain:
                assert self._prep.fairness is not None
                try:
                    counts = group_count_metrics(
                        task, params, data.holdout, *self._prep.fairness
                    )
                except (DatasetError, TaskError) as exc:
                    result = JobError("failed", str(exc), 0.0)
        if isinstance(result, JobError):
            self._fail(client, order, result.reason, refused=False)
            return
        report = EvalReport(
            run_id=order.run_id,
            round=order.round,
            model_digest=order.model_digest,
            metrics={**_finite(result.metrics), **counts},
            num_examples=result.num_examples,
            duration_s=result.duration_s,
        )
        try:
            client.submit_eval(report)
        except SubmissionRefused as exc:
            self._refused_by_coordinator(client, order, exc)
            return
        self._answered.add(_job_key(order))
        self.log.record(
            "sent_eval", round=order.round, num_examples=result.num_examples
        )

    # Failures and refusals.

    def _refuse(self, client: CoordinatorClient, order: TaskOrder, reason: str) -> None:
        """Decline the task (the site will not or cannot run it)."""
        self.log.record(
            "refused_task", round=order.round, kind=order.kind, reason=reason
        )
        self._fail(client, order, reason, refused=True, record=False)

    def _fail(
        self,
        client: CoordinatorClient,
        order: TaskOrder,
        reason: str,
        *,
        refused: bool,
        record: bool = True,
    ) -> None:
        if record:
            self.log.record(
                "job_failed", round=order.round, kind=order.kind, reason=reason
            )
        report = FailureReport(
            order.run_id, order.round, order.kind, reason, refused=refused
        )
        try:
            client.report_failure(report)
        except SubmissionRefused as exc:
            self.log.record("refused_by_coordinator", kind=exc.kind, reason=exc.reason)
        self._answered.add(_job_key(order))

    def _refused_by_coordinator(
        self, client: CoordinatorClient, order: TaskOrder, exc: SubmissionRefused
    ) -> None:
        """Keep the coordinator's reason in the site log, and tell the operator."""
        what = _RESULTS.get(order.kind, f"{order.stage or order.kind} message")
        logger.warning(
            "the coordinator refused this site's %s of round %d (%s): %s",
            what,
            order.round,
            exc.kind,
            exc.reason,
        )
        self.log.record(
            "refused_by_coordinator",
            round=order.round,
            kind=order.kind,
            refusal=exc.kind,
            reason=exc.reason,
        )
        if exc.kind in _REPORT_AFTER:
            reason = f"the coordinator refused the result: {exc.reason}"
            self._fail(client, order, reason, refused=True, record=False)
        else:
            self._answered.add(_job_key(order))

    @contextlib.contextmanager
    def _limits(self) -> Iterator[None]:
        """Run the user's code with this site's BLAS/torch thread count."""
        if self._threads is None:
            yield
            return
        torch = sys.modules.get("torch")
        saved = torch.get_num_threads() if torch is not None else None
        if torch is not None:
            torch.set_num_threads(self._threads)
        try:
            with limited(self._threads):
                yield
        finally:
            if torch is not None and saved is not None:
                torch.set_num_threads(saved)


def _addressed(config: TrainConfig, name: str | None) -> str | None:
    """Why a train task is not this site's to train (None: it is).

    The participant it names keys the site's state folders and seeds its draws:
    a coordinator that named a new one in each task would make the site keep
    state for each.
    """
    if name is not None and config.participant != name:
        return (
            f"the task is addressed to participant {config.participant!r}; this "
            f"site is {name!r}"
        )
    return None


def _declared_runs(config: TrainConfig) -> set[str]:
    """The runs a train task's declarations key the site's state by.

    DP-SGD's plan keys the site's privacy ledger, SCAFFOLD's declaration its
    ``c_i``; both name the coordinator's run (its store's id, which the wire's
    need not be). A malformed declaration is the task's to refuse, with its
    reason, and names none here.
    """
    try:
        plan = DpSgdPlan.of(config.options)
        strategy = LocalStrategy.of(config.options)
    except ConfigError:
        return set()
    runs = set() if plan is None else {plan.run}
    return runs | ({strategy.run} if strategy.scaffold else set())


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """Metrics the wire accepts (a non-finite value would refuse the whole message)."""
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
