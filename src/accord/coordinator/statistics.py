"""The secure sum of the preprocessing statistics: the coordinator sees only totals.

Under secure aggregation (``[secure_aggregation] mode`` other than ``off``) a
deployment's preprocessing fit must not gather each site's counts, sums and sums
of squares in the clear. :func:`secure_statistics` sums them with the masking
protocol instead, over the same machinery as a secure training round
(:class:`~accord.coordinator.masking.MaskingStages`, the sites' CA-signed identity
keys, the run's threshold and neighbour graph), as round 0:

1. each site gets a ``statistics`` task: a
   :class:`~accord.data.handshake.StatisticsRequest` with the federation's
   numeric columns and the sum's :class:`~accord.secagg.session.SecureJob`; it
   lays its statistics out (:func:`~accord.data.sums.statistics_vector`), encodes
   them *exactly* (:class:`~accord.secagg.exact.ExactEncoding`, no bound to
   declare and nothing to overflow) and answers with its key advertisement;
2. the protocol's stages run as in a training round; the coordinator unmasks
   only the sum;
3. the sum decodes to the exactly rounded totals, bit for bit what the plain fit
   adds with :func:`math.fsum`, so the encoder, and every model trained with it,
   equals ``accord simulate``'s.

CKKS runs sum their statistics this way too: masking needs only the sites'
identity certificates, which enrolment gives every site, and no CKKS key. Every
site must contribute (the fit of a subset would not be the federation's): a
dropout, a refusal or a failed check aborts the run before round 1, naming the
site, as in a plain fit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from accord.config import SecureAggregationConfig
from accord.coordinator.executor import Executor
from accord.coordinator.masking import MaskingStages
from accord.coordinator.secure import OutcomeBook
from accord.data.handshake import PrepareRequest, StatisticsRequest
from accord.data.preprocess import SufficientStats
from accord.data.sums import statistics_from_sum, statistics_length
from accord.errors import (
    ConfigError,
    DatasetError,
    PreparationFailed,
    RunAborted,
    SecAggAborted,
)
from accord.secagg.config import SecAggConfig
from accord.secagg.exact import MAX_PARTICIPANTS, ExactEncoding
from accord.secagg.messages import Stage
from accord.secagg.server import SecAggServer
from accord.secagg.session import SecureJob

__all__ = ["STAGE", "read_sum", "secure_statistics"]

logger = logging.getLogger(__name__)

#: The task that opens the sum; its answer is the key advertisement.
STAGE = "statistics"
_ROUND = 0


def secure_statistics(
    executor: Executor,
    requests: Mapping[str, PrepareRequest],
    columns: Sequence[str],
    *,
    settings: SecureAggregationConfig,
    deadline_s: float,
    clock: Callable[[], float],
    run_id: str = "",
) -> tuple[SufficientStats, int]:
    """The federation's statistics over ``columns`` and its training rows.

    ``requests`` holds each site's split request. Raises
    :class:`PreparationFailed` naming a site that could not take part, or
    :class:`RunAborted` when the sum cannot be formed.
    """
    roster = tuple(sorted(requests))
    if len(roster) > MAX_PARTICIPANTS:
        raise RunAborted(
            f"{len(roster)} sites; the exact secure sum of the preprocessing "
            f"statistics takes at most {MAX_PARTICIPANTS}"
        )
    keys = executor.identity_keys(roster)
    for p in roster:
        if p not in keys:
            raise PreparationFailed(
                p,
                f"site {p!r} presented no identity certificate, so it cannot take "
                "part in the secure sum of the preprocessing statistics (a run with "
                "secure aggregation on, CKKS included, sums them by masking, which "
                "needs every site's identity certificate, and mutual TLS: not "
                "--insecure); enrol it again (accord pki request, "
                "docs/deployment.md)",
            )
    encoding = ExactEncoding(statistics_length(len(columns)))
    job = _job(run_id or uuid.uuid4().hex, roster, keys, encoding.words, settings)
    server = SecAggServer(job.config(keys))
    book = OutcomeBook(roster, lambda _: None)
    stages = MaskingStages(
        executor,
        server,
        round_number=_ROUND,
        roster=roster,
        book=book,
        clock=clock,
        stage_timeout_s=settings.stage_timeout_s,
    )
    payloads = {
        p: StatisticsRequest(requests[p], tuple(columns), job.to_json()).to_json()
        for p in roster
    }
    executor.submit_secagg(_ROUND, STAGE, payloads)
    try:
        stages.collect(Stage.ADVERTISE, clock() + deadline_s, as_stage=STAGE)
        if stages.alive != set(roster):
            # No fit without every site: do not run the other stages for nothing.
            raise SecAggAborted("a site did not advertise its keys", stage=STAGE)
        result = stages.finish()
    except SecAggAborted as exc:
        stages.abandon()
        raise _failed(book, f"the secure sum aborted: {exc.reason}") from None
    missing = [p for p in roster if p not in result.contributors]
    if missing:
        raise _failed(book, f"{', '.join(missing)} dropped out of the secure sum")
    logger.info(
        "summed the preprocessing statistics of %d site(s) securely (%d words each)",
        len(roster),
        encoding.words,
    )
    return read_sum(result.total, len(result.contributors), len(columns))


def read_sum(
    total: npt.NDArray[np.uint32], contributors: int, columns: int
) -> tuple[SufficientStats, int]:
    """The statistics of ``columns`` columns from the unmasked ring ``total``.

    Raises :class:`RunAborted` when no honest sites' inputs give ``total``.
    """
    encoding = ExactEncoding(statistics_length(columns))
    try:
        return statistics_from_sum(encoding.decode(total, contributors), columns)
    except ValueError as exc:  # DatasetError is one
        raise RunAborted(
            f"the preprocessing fit failed: {exc}"
            if isinstance(exc, DatasetError)
            else f"the securely summed statistics are impossible ({exc}); secure "
            "aggregation hides which site sent it: check the sites' accord versions "
            "and logs"
        ) from None


def _job(
    run_id: str,
    roster: tuple[str, ...],
    keys: Mapping[str, bytes],
    words: int,
    settings: SecureAggregationConfig,
) -> SecureJob:
    """The sum's public settings: the run's threshold and degree, ``words`` long."""
    try:
        base = SecAggConfig.create(
            run_id=run_id,
            round_number=_ROUND,
            identities={p: keys[p] for p in roster},
            vector_size=words,
            threshold=settings.threshold,
            degree=settings.degree,
        )
        return SecureJob(
            run_id=run_id,
            round_number=_ROUND,
            roster=roster,
            vector_size=words,
            threshold=base.threshold,
            degree=base.degree,
            clip=settings.clip,
            max_examples=settings.max_examples,
            identity_keys=tuple((p, keys[p].hex()) for p in roster),
        )
    except (ConfigError, ValueError) as exc:
        raise RunAborted(
            f"the secure sum of the preprocessing statistics cannot start: {exc}"
        ) from None


def _failed(book: OutcomeBook, why: str) -> RunAborted:
    """The error that names the first site that did not contribute, and why."""
    for outcome in book.ordered():
        if outcome.status != "ok":
            return PreparationFailed(
                outcome.participant,
                f"site {outcome.participant!r} could not take part in the "
                f"preprocessing fit (secure sum of the statistics): {outcome.reason}",
            )
    return RunAborted(f"the preprocessing fit failed: {why}")
