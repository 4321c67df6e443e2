"""Every participant in the coordinator's process, one job at a time (``--workers 0``).

Meant for debugging: breakpoints and tracebacks work, nothing is forked. Jobs run
lazily inside :meth:`InProcessExecutor.next_event`, so the coordinator still sees a
deadline pass between jobs; a job that hangs cannot be interrupted here (use worker
processes for that), but one that finishes after the deadline is reported as late.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from accord.config import CompressionConfig
from accord.coordinator.executor import (
    EvalDone,
    Event,
    JobFailed,
    SecAggReply,
    TrainDone,
    TrainJob,
)
from accord.errors import ConfigError, UpdateRejected
from accord.params import Params
from accord.simulation.compression import SiteCompressors, decode_into
from accord.simulation.context import SimContext
from accord.simulation.jobs import JobError, TrainOutcome, run_eval, run_train
from accord.threads import limited

if TYPE_CHECKING:
    from accord.secagg.crypto import Verifier
    from accord.secagg.mask import MaskGenerator
    from accord.secagg.session import SecureSession

__all__ = ["InProcessExecutor"]

# (kind, round, participant, train job, (stage, payload) of a secagg job)
_Job = tuple[
    Literal["train", "eval", "secagg"],
    int,
    str,
    TrainJob | None,
    tuple[str, bytes] | None,
]


class InProcessExecutor:
    """Runs jobs synchronously, in submission order."""

    def __init__(
        self,
        context: SimContext,
        *,
        entropy: Callable[[str], Callable[[int], bytes]] | None = None,
        ckks_secret: bytes | None = None,
        compression: CompressionConfig | None = None,
        seed: int = 0,
    ) -> None:
        # ``[compression]``: each site compresses, then the update is decoded here.
        self._compression = compression or CompressionConfig()
        self._compressors = SiteCompressors(self._compression, seed)
        # The key holder's secret CKKS context, which every site holds (ckks mode).
        self._ckks_secret = ckks_secret
        # ``entropy(site)`` replaces the OS CSPRNG for a site's round secrets, so
        # that tests of what the coordinator sees are deterministic (tests only).
        self._entropy = entropy
        self._ctx = context
        self._global: Params | None = None
        self._queue: collections.deque[_Job] = collections.deque()
        self._buffer: Params | None = None
        # Update buffers: those the coordinator still reads (by token), and spares.
        # A round may hold several updates at once (see accord.coordinator.round).
        self._lent: dict[int, Params] = {}
        self._spares: list[Params] = []
        self._tokens = 0
        self._identities: dict[str, bytes] = {}  # private keys, made on first use
        self._sessions: dict[str, tuple[int, SecureSession]] = {}
        self._verifier: Verifier | None = None  # the sites' shared one
        self._masks: MaskGenerator | None = None  # the sites' shared mask buffers

    @property
    def participants(self) -> tuple[str, ...]:
        """Site names in partition order."""
        return self._ctx.participants

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        """Keep a read-only copy of the global model."""
        frozen = params.copy()
        for arr in frozen.values():
            arr.flags.writeable = False
        self._global = frozen
        self._buffer = Params({n: np.empty_like(a) for n, a in params.items()})

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Queue training jobs."""
        self._queue.extend(
            ("train", round_number, j.participant, j, None) for j in jobs
        )

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Queue evaluation jobs."""
        self._queue.extend(("eval", round_number, p, None, None) for p in participants)

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        """Each site's Ed25519 public key (the keys are made on first use)."""
        from accord.simulation.secure import identity_keys, public_key

        unknown = [p for p in participants if p not in self._ctx.participants]
        if unknown:
            raise ConfigError(f"no such participants: {', '.join(unknown)}")
        if not self._identities:
            self._identities = identity_keys(self._ctx.participants)
        return {p: public_key(self._identities[p]) for p in participants}

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        """Queue one stage's messages."""
        self._queue.extend(
            ("secagg", round_number, p, None, (stage, blob))
            for p, blob in payloads.items()
        )

    def next_event(self, timeout: float | None) -> Event | None:
        """Run the next queued job and report it; None when nothing is queued."""
        if not self._queue:
            if timeout:
                time.sleep(min(timeout, 0.01))
            return None
        if self._global is None or self._buffer is None:
            raise RuntimeError("publish() the global model before running jobs")
        kind, number, participant, job, message = self._queue.popleft()
        if message is not None:
            return self._step(number, participant, *message)
        # Same BLAS thread count as a worker process, so results match bit for bit.
        with limited(1):
            return self._run(kind, number, participant, job)

    def _step(self, number: int, participant: str, stage: str, blob: bytes) -> Event:
        from accord.secagg.ckks_session import DECRYPT_STAGE
        from accord.simulation.secure import decrypt_ckks, step_session

        if stage == DECRYPT_STAGE:
            assert self._global is not None
            size = self._global.size
            answer = decrypt_ckks(self._ckks_secret, blob, size)
            if isinstance(answer, JobError):
                return JobFailed(
                    participant, number, "secagg", answer.status, answer.reason
                )
            return SecAggReply(
                participant, number, stage, answer.payload, answer.duration_s
            )
        held = self._sessions.get(participant)
        if held is None or held[0] != number:
            return JobFailed(
                participant,
                number,
                "secagg",
                "failed",
                f"no secure session open for round {number}",
            )
        answer = step_session(held[1], stage, blob)
        if isinstance(answer, JobError):
            del self._sessions[participant]
            return JobFailed(
                participant,
                number,
                "secagg",
                answer.status,
                answer.reason,
                answer.duration_s,
            )
        if answer.last:
            del self._sessions[participant]
        return SecAggReply(
            participant, number, stage, answer.payload, answer.duration_s
        )

    def _run(
        self, kind: str, number: int, participant: str, job: TrainJob | None
    ) -> Event:
        assert self._global is not None and self._buffer is not None
        site = self._ctx.site(participant)
        if job is not None and job.secure is not None:
            return self._open(number, participant, job)
        if kind == "eval":
            personal = self._ctx.personal(participant, number)
            ev = run_eval(self._ctx.task, site.holdout, self._global, personal=personal)
            if isinstance(ev, JobError):
                return JobFailed(participant, number, "eval", ev.status, ev.reason)
            return EvalDone(
                participant, number, ev.metrics, ev.num_examples, ev.duration_s
            )
        assert job is not None
        buffer = self._spares.pop() if self._spares else self._global_like()
        out = run_train(
            self._ctx.task, site.train, self._global, job.config, buffer, check=True
        )
        if isinstance(out, JobError):
            self._spares.append(buffer)
            return JobFailed(
                participant, number, "train", out.status, out.reason, out.duration_s
            )
        if self._compressors.enabled:
            return self._compressed(number, participant, buffer, out)
        self._tokens += 1
        self._lent[self._tokens] = buffer
        return TrainDone(
            participant=participant,
            round=number,
            update=buffer,
            num_examples=out.num_examples,
            duration_s=out.duration_s,
            metrics=out.metrics,
            update_digest=out.digest,
            token=self._tokens,
            values_checked=out.norm is not None,  # proven finite as written
            norm=out.norm,
        )

    def _compressed(
        self, number: int, participant: str, buffer: Params, out: TrainOutcome
    ) -> Event:
        """What the site sends, decoded over its buffer as the coordinator would."""
        payload = self._compressors.compress(participant, number, buffer)
        try:
            decode_into(self._compression, number, payload, buffer)
        except UpdateRejected as exc:
            self._spares.append(buffer)
            return JobFailed(
                participant, number, "train", "rejected", exc.reason, 0.0, True
            )
        self._tokens += 1
        self._lent[self._tokens] = buffer
        return TrainDone(
            participant=participant,
            round=number,
            update=buffer,
            num_examples=out.num_examples,
            duration_s=out.duration_s,
            metrics=out.metrics,
            token=self._tokens,
            bytes_sent=len(payload),
        )

    def _global_like(self) -> Params:
        assert self._global is not None
        return Params({n: np.empty_like(a) for n, a in self._global.items()})

    def _open(self, number: int, participant: str, job: TrainJob) -> Event:
        from accord.secagg.ckks_session import UPLOAD_STAGE, CkksJob
        from accord.simulation.secure import encrypt_ckks, open_session

        assert self._global is not None and self._buffer is not None
        assert job.secure is not None
        if isinstance(job.secure, CkksJob):
            sent = encrypt_ckks(
                self._ctx.task,
                self._ctx.site(participant).train,
                self._global,
                job.config,
                job.secure,
                self._ckks_secret,
                self._buffer,
            )
            if isinstance(sent, JobError):
                return JobFailed(
                    participant,
                    number,
                    "train",
                    sent.status,
                    sent.reason,
                    sent.duration_s,
                )
            return SecAggReply(
                participant, number, UPLOAD_STAGE, sent.payload, sent.duration_s
            )
        if not self._identities:
            self.identity_keys(())
        self._sessions.pop(participant, None)
        if self._verifier is None:
            from accord.secagg.crypto import Verifier
            from accord.secagg.mask import MaskGenerator

            self._verifier = Verifier()
            self._masks = MaskGenerator()
        opened = open_session(
            self._ctx.task,
            self._ctx.site(participant).train,
            self._global,
            job.config,
            job.secure,
            self._identities[participant],
            self._buffer,
            verifier=self._verifier,
            masks=self._masks,
            **({"entropy": self._entropy(participant)} if self._entropy else {}),
        )
        if isinstance(opened, JobError):
            return JobFailed(
                participant,
                number,
                "train",
                opened.status,
                opened.reason,
                opened.duration_s,
            )
        self._sessions[participant] = (number, opened.session)
        return SecAggReply(
            participant, number, "advertise", opened.advertise, opened.duration_s
        )

    def release(self, event: TrainDone) -> None:
        """The update's buffer serves the next job."""
        buffer = self._lent.pop(event.token, None)
        if buffer is not None:
            self._spares.append(buffer)

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Drop queued jobs of these participants."""
        drop = set(participants)
        self._queue = collections.deque(
            j for j in self._queue if not (j[1] == round_number and j[2] in drop)
        )
        for p in drop:
            held = self._sessions.get(p)
            if held is not None and held[0] == round_number:
                del self._sessions[p]

    def close(self) -> None:
        """Forget queued jobs and open sessions."""
        self._queue.clear()
        self._sessions.clear()
