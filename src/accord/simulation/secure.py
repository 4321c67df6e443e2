"""Secure rounds on a simulated site: shared by worker processes and in-process mode.

A simulation is run by one operator, so the sites' Ed25519 identity keys come from
one registry (:func:`identity_keys`) that the executor creates and hands each worker
the private keys of its own sites; each site then trusts the roster's public keys
that the round's :class:`~accord.secagg.session.SecureJob` lists. A deployment takes
them from certificates instead. Everything else is what a deployed site does:
train, encode and mask the update in the site's own process, answer each stage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from accord.data.arrays import ArrayData
from accord.errors import SecAggAborted, SubmissionRefused
from accord.jsontext import parse_json
from accord.params import Params
from accord.secagg.ckks_session import CkksJob, ckks_decrypt, ckks_upload
from accord.secagg.crypto import Ed25519PrivateKey, SignatureCheck, identity_public
from accord.secagg.mask import MaskGenerator
from accord.secagg.messages import Stage
from accord.secagg.session import SecureJob, SecureSession
from accord.simulation.jobs import JobError, train, write_update
from accord.task.protocol import Task, TrainConfig
from accord.transport.secagg_wire import decode_from_coordinator, encode

__all__ = [
    "Encrypted",
    "OpenSession",
    "StageAnswer",
    "identity_keys",
    "decrypt_ckks",
    "encrypt_ckks",
    "load_identity",
    "open_session",
    "parse_job",
    "public_key",
    "step_session",
]


def identity_keys(participants: list[str] | tuple[str, ...]) -> dict[str, bytes]:
    """A fresh raw Ed25519 private key (32 bytes) per participant."""
    return {p: os.urandom(32) for p in participants}


def load_identity(raw: bytes) -> Ed25519PrivateKey:
    """The private key of 32 raw bytes."""
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(raw: bytes) -> bytes:
    """The raw public key of a raw private key."""
    return identity_public(load_identity(raw))


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A trained site's session and its first message."""

    session: SecureSession
    round: int
    advertise: bytes
    duration_s: float


@dataclass(frozen=True, slots=True)
class StageAnswer:
    """A site's reply to one stage."""

    payload: bytes
    duration_s: float
    last: bool


def open_session(
    task: Task,
    data: ArrayData,
    global_params: Params,
    config: TrainConfig,
    job: SecureJob,
    identity: bytes,
    buffer: Params,
    *,
    verifier: SignatureCheck | None = None,
    masks: MaskGenerator | None = None,
    entropy: Callable[[int], bytes] = os.urandom,
) -> OpenSession | JobError:
    """Train, encode the update into the ring and advertise keys.

    ``buffer`` receives the plain update and is overwritten by the next job; the
    session keeps only the encoded words. ``verifier``: one
    :class:`~accord.secagg.crypto.Verifier` for all the sites of a process, so
    that what they all check (advertisements, survivor signatures) is verified once.
    ``masks``: one :class:`~accord.secagg.mask.MaskGenerator` for all the sites of a
    process (its buffers are reused, never shared by two sites at once).
    """
    trained = train(task, data, global_params, config)
    if isinstance(trained, JobError):
        return trained
    out = write_update(trained, global_params, buffer)
    del trained
    if isinstance(out, JobError):
        return out
    t0 = time.perf_counter()
    try:
        session = SecureSession(
            job,
            config.participant,
            load_identity(identity),
            job.declared_keys(),
            buffer,
            out.num_examples,
            seed=config.seed,
            verifier=verifier,
            masks=masks,
            entropy=entropy,
        )
        advert = encode(session.advertise())
    except (SecAggAborted, ValueError) as exc:
        return JobError("failed", str(exc), out.duration_s)
    elapsed = out.duration_s + time.perf_counter() - t0
    return OpenSession(session, job.round_number, advert, elapsed)


def step_session(
    session: SecureSession, stage: str, payload: bytes
) -> StageAnswer | JobError:
    """Answer the coordinator's message for ``stage``; a JobError says why not."""
    t0 = time.perf_counter()
    try:
        which = Stage(stage)
        reply = encode(session.step(decode_from_coordinator(payload, which)))
    except SubmissionRefused as exc:
        return JobError("rejected", exc.reason, time.perf_counter() - t0)
    except SecAggAborted as exc:
        return JobError("failed", str(exc), time.perf_counter() - t0)
    except ValueError as exc:  # an unknown stage name
        return JobError("rejected", str(exc), time.perf_counter() - t0)
    return StageAnswer(reply, time.perf_counter() - t0, which is Stage.UNMASK)


@dataclass(frozen=True, slots=True)
class Encrypted:
    """A trained site's encrypted update (CKKS rounds)."""

    payload: bytes
    duration_s: float


def encrypt_ckks(
    task: Task,
    data: ArrayData,
    global_params: Params,
    config: TrainConfig,
    job: CkksJob,
    secret_context: bytes | None,
    buffer: Params,
) -> Encrypted | JobError:
    """Train, then encrypt the clipped, weighted update under the key holder's key."""
    if secret_context is None:
        return JobError("failed", "this site holds no CKKS key", 0.0)
    trained = train(task, data, global_params, config)
    if isinstance(trained, JobError):
        return trained
    out = write_update(trained, global_params, buffer)
    del trained
    if isinstance(out, JobError):
        return out
    t0 = time.perf_counter()
    try:
        blob = ckks_upload(job, secret_context, buffer, out.num_examples)
    except (SecAggAborted, ValueError) as exc:
        return JobError("failed", str(exc), out.duration_s)
    return Encrypted(blob, out.duration_s + time.perf_counter() - t0)


def decrypt_ckks(
    secret_context: bytes | None, payload: bytes, values: int
) -> StageAnswer | JobError:
    """Decrypt the coordinator's encrypted sum, as the key's holders can."""
    t0 = time.perf_counter()
    if secret_context is None:
        return JobError("failed", "this site holds no CKKS key", 0.0)
    try:
        reply = ckks_decrypt(secret_context, payload, values)
    except SubmissionRefused as exc:
        return JobError("rejected", exc.reason, time.perf_counter() - t0)
    except (SecAggAborted, ValueError) as exc:
        return JobError("failed", str(exc), time.perf_counter() - t0)
    return StageAnswer(reply, time.perf_counter() - t0, True)


def parse_job(text: str) -> SecureJob | CkksJob:
    """A training job's secure settings, masking or CKKS; ValueError if neither."""
    try:
        mode = parse_json(text).get("mode", "masking")
    except (ValueError, AttributeError):
        raise ValueError("secure settings are not a JSON object") from None
    return CkksJob.from_json(text) if mode == "ckks" else SecureJob.from_json(text)
