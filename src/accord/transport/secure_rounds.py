"""What a secure round's tasks carry, and what bounds its messages, for either protocol.

The coordinator's transport serves two secure protocols. A **masking** round's
train task carries its :class:`~accord.secagg.session.SecureJob` (without the
identity keys the coordinator would vouch for) and the roster's identity
certificates, and each stage's message is bounded by
:func:`~accord.transport.jobs.secagg_limit`. A **CKKS** round's train task carries
its :class:`~accord.secagg.ckks_session.CkksJob` and no certificate (a site needs
no key but the key holder's); the upload that answers it may be at most what
:func:`~accord.secagg.ckks.max_upload_bytes` allows under the key holder's
parameters, and a decryption is exactly ``8 * (values + 1)`` bytes
(:class:`CkksLimits`). A message of one protocol in a round of the other is a
``mismatch``.

:func:`secure_order` is called only with a job the round loop made, so the secagg
modules it imports are loaded already (as :func:`statistics_order` is only for a
secure sum the preprocessing fit opened, and :func:`fairness_order` for one a
round's fairness counts opened); this module imports none of them itself,
which keeps the extras out of plain deployments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accord.errors import ConfigError, SubmissionRefused
from accord.transport.jobs import (
    CKKS_STAGES,
    FAIRNESS_STAGES,
    PREPARE_MAX_BYTES,
    PREPARE_STAGES,
    check_secagg_header,
)
from accord.transport.messages import MAX_TASK_PAYLOAD, SecAggHeader, TaskOrder

if TYPE_CHECKING:
    from accord.secagg.ckks_keys import CkksParams
    from accord.secagg.ckks_session import CkksJob
    from accord.secagg.session import SecureJob
    from accord.transport.identity import IdentityBook

__all__ = [
    "CkksLimits",
    "check_stage_header",
    "fairness_order",
    "oversized_task",
    "secure_order",
    "statistics_order",
]


@dataclass(frozen=True, slots=True)
class CkksLimits:
    """What bounds the messages of one CKKS round: the model's size, the upload's."""

    values: int
    max_upload: int

    def check(self, header: SecAggHeader) -> None:
        """Refuse a message this round cannot produce (stage, or size)."""
        stage, size = header.stage, header.total_bytes
        if stage not in CKKS_STAGES:
            raise SubmissionRefused(
                "mismatch", f"this round runs CKKS; a {stage} message has no place"
            )
        if size <= 0:
            raise SubmissionRefused("malformed", f"an empty {stage} message")
        if stage == CKKS_STAGES[0]:
            if size > self.max_upload:
                raise SubmissionRefused(
                    "too_large",
                    f"a ckks_upload of {size} bytes; {self.values} values under "
                    f"the key holder's parameters take at most {self.max_upload}",
                )
            return
        expected = 8 * (self.values + 1)
        if size != expected:
            raise SubmissionRefused(
                "too_large" if size > expected else "mismatch",
                f"a ckks_decrypt reply of {size} bytes; {self.values} values and "
                f"the weight take exactly {expected}",
            )


def secure_order(
    order: TaskOrder,
    job: SecureJob | CkksJob,
    *,
    identities: IdentityBook,
    ckks_params: CkksParams | None,
) -> tuple[TaskOrder, SecureJob | CkksLimits]:
    """A secure train job's task, and what bounds the messages of its round."""
    from accord.secagg.ckks_session import CkksJob

    if not isinstance(job, CkksJob):
        sent = dataclasses.replace(job, identity_keys=())
        return (
            dataclasses.replace(
                order,
                secure_json=sent.to_json(),
                certificates=identities.certificates(job.roster),
            ),
            job,
        )
    if ckks_params is None:
        raise ConfigError(
            "a CKKS round needs the key holder's parameters to bound its uploads: "
            "give the executor ckks_params (`accord coordinator --ckks-public`)",
            key="secure_aggregation.mode",
        )
    from accord.secagg.ckks import max_upload_bytes

    limits = CkksLimits(job.values, max_upload_bytes(ckks_params, job.values))
    return dataclasses.replace(order, secure_json=job.to_json()), limits


def statistics_order(
    order: TaskOrder, *, identities: IdentityBook
) -> tuple[TaskOrder, SecureJob]:
    """A ``statistics`` task with its roster's certificates, and its secure sum's job.

    The task opens the secure sum of the preprocessing statistics (round 0); its
    payload, the coordinator's own :class:`~accord.data.handshake.StatisticsRequest`,
    names the :class:`~accord.secagg.session.SecureJob` that bounds the sum's
    later stages, as a secure train task's does.
    """
    from accord.data.handshake import StatisticsRequest
    from accord.secagg.session import SecureJob

    request = StatisticsRequest.from_json(order.payload)
    job = SecureJob.from_json(request.secure_json)
    certificates = identities.certificates(job.roster)
    return dataclasses.replace(order, certificates=certificates), job


def fairness_order(
    order: TaskOrder, *, identities: IdentityBook
) -> tuple[TaskOrder, SecureJob]:
    """A ``fairness`` task with its roster's certificates, and its secure sum's job.

    The task opens the secure sum of a round's per-group counts, after its
    evaluation; its payload, the coordinator's own
    :class:`~accord.data.handshake.FairnessSumRequest`, names the
    :class:`~accord.secagg.session.SecureJob` that bounds the sum's later stages.
    """
    from accord.data.handshake import FairnessSumRequest
    from accord.secagg.session import SecureJob

    request = FairnessSumRequest.from_json(order.payload)
    job = SecureJob.from_json(request.secure_json)
    certificates = identities.certificates(job.roster)
    return dataclasses.replace(order, certificates=certificates), job


def check_stage_header(
    header: SecAggHeader, rule: SecureJob | CkksLimits | None
) -> None:
    """Refuse a stage's message that the round's protocol and size cannot produce."""
    if header.stage in PREPARE_STAGES:
        if not 0 < header.total_bytes <= PREPARE_MAX_BYTES:
            raise SubmissionRefused(
                "too_large" if header.total_bytes else "malformed",
                f"a {header.stage} message of {header.total_bytes} bytes; the "
                f"preprocessing stages allow 1 to {PREPARE_MAX_BYTES}",
            )
        return
    if isinstance(rule, CkksLimits):
        rule.check(header)
        return
    if header.stage == FAIRNESS_STAGES[0]:  # the fairness sum's advertisement
        check_secagg_header(dataclasses.replace(header, stage="advertise"), rule)
        return
    if header.stage in CKKS_STAGES:
        raise SubmissionRefused(
            "mismatch",
            f"this round does not run CKKS; a {header.stage} message has no place",
        )
    check_secagg_header(header, rule)


def oversized_task(stage: str, payload: bytes) -> str | None:
    """Why a ``secagg`` task cannot carry ``payload`` (None: it can).

    A ``ckks_decrypt`` task carries the whole encrypted sum in one message, which
    gRPC refuses past :data:`~accord.transport.messages.MAX_TASK_PAYLOAD`.
    """
    if len(payload) <= MAX_TASK_PAYLOAD:
        return None
    return (
        f"the {stage} message has {len(payload)} bytes, more than a task carries "
        f"({MAX_TASK_PAYLOAD}); for CKKS, a smaller model or fewer primes in "
        "coeff_mod_bit_sizes"
    )
