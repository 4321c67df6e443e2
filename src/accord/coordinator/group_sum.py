"""The secure sum of a deployed round's fairness counts: the coordinator sees totals.

Under secure aggregation no site's per-group confusion counts may reach the
coordinator one by one (they show how the model treats each group *at that
site*), so a deployed run whose ``[evaluation] sensitive`` names a column sums
them with the masking protocol after each federated evaluation, over the same
machinery as the preprocessing statistics (:mod:`accord.coordinator.statistics`)
and a secure training round (:class:`~accord.coordinator.masking.MaskingStages`,
the sites' CA-signed identity keys, the run's threshold and neighbour degree):

1. each site with an identity certificate gets a ``fairness`` task of the
   round: a :class:`~accord.data.handshake.FairnessSumRequest` naming the model
   it just evaluated, the federation's declared groups (:func:`declared_groups`)
   and the sum's :class:`~accord.secagg.session.SecureJob`, bound to its own
   session id (``RUN/fairness``) so that no message of the round's training sum
   passes for one of this sum; the site counts its decisions per group on its
   holdout, lays them out (:func:`~accord.evaluation.group_sums.counts_vector`),
   encodes them exactly (:class:`~accord.secagg.exact.ExactEncoding`) and answers
   with its key advertisement;
2. the protocol's stages run as in a training round (each stage message names
   the task it answers, :func:`~accord.transport.messages.task_digest`, since
   the two sums of a round share stage names); the coordinator unmasks only the
   sum;
3. the sum decodes to the counts of the sites in it
   (:func:`~accord.evaluation.group_sums.counts_from_sum`, checked against the
   sites' example bounds).

Dropouts survive, as in a training round: the sum covers the sites whose masked
input is in it (at least the run's threshold), and :class:`GroupSum` records who
is in it, who is not and why, and the coverage, with the round (a store event
and the ``fairness_coverage`` metric beside the summed counts). A sum that
cannot close (too few sites) leaves the round without counts, recorded with the
reason; the round itself stands.

CKKS runs sum their counts this way too: masking needs only the identity
certificates that enrolment gives every site, and no CKKS key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from accord.config import FedConfig, SecureAggregationConfig
from accord.coordinator.executor import Executor, eligible
from accord.coordinator.integrity import ExampleBounds
from accord.coordinator.masking import MaskingStages
from accord.coordinator.secure import OutcomeBook
from accord.data.handshake import FairnessSumRequest
from accord.data.preprocess import Encoder
from accord.errors import ConfigError, DatasetError, SecAggAborted
from accord.evaluation.fairness import MISSING_GROUP, GroupCounts
from accord.evaluation.group_sums import (
    MAX_GROUPS,
    count_metrics,
    counts_from_sum,
    counts_length,
)
from accord.records import MetricValue
from accord.secagg.config import SecAggConfig
from accord.secagg.exact import MAX_PARTICIPANTS, ExactEncoding
from accord.secagg.messages import Stage
from accord.secagg.server import SecAggServer
from accord.secagg.session import SecureJob

__all__ = [
    "COVERAGE",
    "EVENT_KIND",
    "STAGE",
    "GroupSum",
    "declared_groups",
    "run_groups",
    "secure_group_sum",
    "session_id",
]

logger = logging.getLogger(__name__)

#: The task that opens the sum; its answer is the key advertisement.
STAGE = "fairness"
#: The kind of the store event that records who is in a round's sum.
EVENT_KIND = "fairness_sum"
#: The federated metric that holds the share of the roster in the sum.
COVERAGE = "fairness_coverage"
#: Longest group name (a count metric's name must stay within 200 characters).
_MAX_GROUP_NAME = 160


def session_id(run_id: str) -> str:
    """The secure session id of a run's fairness sums (not its training rounds')."""
    return f"{run_id}/fairness"


def run_groups(config: FedConfig, encoder: Encoder | None) -> tuple[str, ...] | None:
    """The groups of a deployed run's secure fairness sums (None: it has none).

    A run sums its counts securely when it declares a sensitive column, runs
    under secure aggregation and fitted its preprocessing federatedly
    (``encoder``, from ``csv:`` sites: their preparation asked them to count).
    """
    column = config.evaluation.sensitive
    if column is None or config.secure_aggregation.mode == "off" or encoder is None:
        return None
    return declared_groups(column, encoder.levels)


def declared_groups(
    column: str, levels: Sequence[tuple[str, Sequence[str]]]
) -> tuple[str, ...]:
    """The groups a fairness sum lays out: the data contract's levels of ``column``.

    ``levels`` are the fitted encoder's categorical columns and their levels
    (the declared ones, or the union of the sites' as the contract agreed them);
    the missing group (:data:`~accord.evaluation.fairness.MISSING_GROUP`) is
    added, so a row without a value is counted rather than refused. Raises
    :class:`ConfigError` when ``column`` is not a categorical column of the
    contract: a secure sum needs groups agreed before any site counts.
    """
    found = dict(levels)
    if column not in found:
        raise ConfigError(
            f"[evaluation] sensitive = {column[:80]!r} is not a categorical column "
            "of the data contract; under secure aggregation the per-group counts "
            "are summed over groups agreed before round 1: declare it categorical "
            "([data] options categorical), or remove [evaluation] sensitive",
            key="evaluation.sensitive",
        )
    groups = tuple(dict.fromkeys((*found[column], MISSING_GROUP)))
    if len(groups) > MAX_GROUPS or any(len(g) > _MAX_GROUP_NAME for g in groups):
        raise ConfigError(
            f"the sensitive column {column[:80]!r} has {len(groups)} groups (at most "
            f"{MAX_GROUPS}, each named in at most {_MAX_GROUP_NAME} characters): "
            "declare a coarser sensitive column",
            key="evaluation.sensitive",
        )
    return groups


@dataclass(frozen=True, slots=True)
class GroupSum:
    """One round's securely summed counts, and who is in them.

    ``counts`` is None when the sum could not close (``reason`` says why);
    ``missing`` maps each site of the roster that is not in the sum to why.
    """

    round: int
    roster: tuple[str, ...]
    contributors: tuple[str, ...]
    counts: Mapping[str, GroupCounts] | None
    missing: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None

    @property
    def coverage(self) -> float:
        """The share of the roster whose counts are in the sum."""
        return len(self.contributors) / max(len(self.roster), 1)

    def metrics(self) -> list[MetricValue]:
        """The summed counts as the round's federated metrics, and the coverage.

        Named as a plain run's summed counts (``fairness:GROUP:tp``, ...), so
        ``accord release`` and the model card read either alike; none when the
        sum did not close.
        """
        if self.counts is None:
            return []
        out = [
            MetricValue("federated", None, name, value)
            for name, value in sorted(count_metrics(self.counts).items())
        ]
        out.append(MetricValue("federated", None, COVERAGE, self.coverage))
        return out

    def detail(self) -> str:
        """The record of the sum (JSON): roster, contributors, missing, coverage."""
        return json.dumps(
            {
                "round": self.round,
                "roster": list(self.roster),
                "contributors": list(self.contributors),
                "missing": dict(sorted(self.missing.items())),
                "coverage": self.coverage,
                "summed": self.counts is not None,
                "reason": self.reason,
            },
            sort_keys=True,
        )


def secure_group_sum(
    executor: Executor,
    *,
    round_number: int,
    model_digest: str,
    groups: Sequence[str],
    settings: SecureAggregationConfig,
    bounds: ExampleBounds,
    clock: Callable[[], float],
    run_id: str,
) -> GroupSum:
    """Sum the per-group counts of ``model_digest`` over the sites, securely.

    Never raises for a site's failure: the sum covers the survivors, and a sum
    that cannot close comes back without counts, with the reason.
    """
    everyone = eligible(executor)
    keys = executor.identity_keys(everyone)
    missing = {
        p: "presented no identity certificate, so it cannot take part in a secure sum"
        for p in everyone
        if p not in keys
    }
    roster = tuple(p for p in everyone if p in keys)

    def failed(reason: str, book: OutcomeBook | None = None) -> GroupSum:
        gone = dict(missing)
        if book is not None:
            for outcome in book.ordered():
                if outcome.status != "ok":
                    gone[outcome.participant] = outcome.reason or outcome.status
        for p in roster:
            gone.setdefault(p, reason)
        logger.warning(
            "round %d: the fairness counts were not summed: %s", round_number, reason
        )
        return GroupSum(round_number, everyone, (), None, gone, reason)

    if len(roster) > MAX_PARTICIPANTS:
        return failed(f"{len(roster)} sites; the exact sum takes {MAX_PARTICIPANTS}")
    encoding = ExactEncoding(counts_length(len(groups)))
    try:
        job = _job(session_id(run_id), round_number, roster, keys, encoding, settings)
        server = SecAggServer(job.config(keys))
    except (ConfigError, ValueError) as exc:
        return failed(f"the sum cannot start: {exc}")
    book = OutcomeBook(roster, lambda _: None)
    stages = MaskingStages(
        executor,
        server,
        round_number=round_number,
        roster=roster,
        book=book,
        clock=clock,
        stage_timeout_s=settings.stage_timeout_s,
    )
    payload = FairnessSumRequest(model_digest, tuple(groups), job.to_json()).to_json()
    executor.submit_secagg(round_number, STAGE, dict.fromkeys(roster, payload))
    try:
        stages.collect(
            Stage.ADVERTISE, clock() + settings.stage_timeout_s, as_stage=STAGE
        )
        result = stages.finish()
    except SecAggAborted as exc:
        stages.abandon()
        return failed(f"the secure sum aborted: {exc.reason}", book)
    contributors = tuple(p for p in roster if p in result.contributors)
    try:
        total = encoding.decode(result.total, len(contributors))
        limit = sum(bounds.bound(p) for p in contributors)
        counts = counts_from_sum(total, groups, max_rows=limit)
    except ValueError as exc:  # DatasetError is one
        why = str(exc) if isinstance(exc, DatasetError) else f"impossible sum: {exc}"
        return failed(why, book)
    for p in roster:
        if p not in contributors:
            missing[p] = next(
                (o.reason or o.status for o in book.ordered() if o.participant == p),
                "dropped out of the secure sum",
            )
    logger.info(
        "round %d: summed the fairness counts of %d of %d site(s) securely",
        round_number,
        len(contributors),
        len(everyone),
    )
    return GroupSum(round_number, everyone, contributors, counts, missing)


def _job(
    sum_id: str,
    round_number: int,
    roster: tuple[str, ...],
    keys: Mapping[str, bytes],
    encoding: ExactEncoding,
    settings: SecureAggregationConfig,
) -> SecureJob:
    """The sum's public settings: the run's threshold and degree."""
    base = SecAggConfig.create(
        run_id=sum_id,
        round_number=round_number,
        identities={p: keys[p] for p in roster},
        vector_size=encoding.words,
        threshold=settings.threshold,
        degree=settings.degree,
    )
    return SecureJob(
        run_id=sum_id,
        round_number=round_number,
        roster=roster,
        vector_size=encoding.words,
        threshold=base.threshold,
        degree=base.degree,
        clip=settings.clip,
        max_examples=settings.max_examples,
        identity_keys=tuple((p, keys[p].hex()) for p in roster),
    )
