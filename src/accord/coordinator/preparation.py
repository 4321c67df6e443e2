"""Fit a deployment's preprocessing before round 1, record it, and ship it.

In a simulation one process fits the encoder on every site's training rows
(:mod:`accord.data.preprocess`). A deployment on ``csv:`` data must fit the same
one without any row leaving a site, so :func:`prepare` runs two stages over the
:class:`~accord.coordinator.executor.Executor` before the first round, as
``secagg`` jobs of round 0 (the stages secure aggregation already uses, so the
wire protocol is unchanged):

1. ``profile``: each site gets a :class:`~accord.data.handshake.PrepareRequest`
   (the federation's seed and holdout fraction, its position in the roster, the
   levels ``fed.toml`` declares) and answers with its
   :class:`~accord.data.profile.SiteProfile`;
2. the profiles are checked against the coordinator's own schema and combined
   (:func:`~accord.data.profile.fit_encoder`): a missing column, one of another
   kind, other classes or an undeclared level aborts the run here, naming the
   site and the column, with nothing trained;
3. ``encoding``: every site gets the encoder and answers with the digest of what
   it applied, which must be the coordinator's, and (when a ``guard`` is given
   and the run has no secure aggregation) its guarded data profile on the fitted
   scale (:mod:`accord.data.summary`), which :func:`prepare_data` returns for the
   data contract (:mod:`accord.coordinator.contract`).

Under secure aggregation (``[secure_aggregation] mode`` other than ``off``) the
profile holds the site's columns only (:class:`~accord.data.profile.SiteColumns`),
checked in step 2 alike, and the counts, sums and sums of squares are summed
securely in between (:mod:`accord.coordinator.statistics`): the coordinator
learns only the federation's totals, exactly, so the encoder is the same.

A site that refuses a stage (its policy: the sums would travel in the clear), fails,
or does not answer within the deadline also aborts the run before round 1,
named, with its reason. The fitted encoder is recorded with the run
(:func:`record_encoder`) so that an auditor can read it and a resumed coordinator
can check that the sites' data still gives the same fit (:func:`check_recorded`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from accord.config import SecureAggregationConfig
from accord.coordinator.documents import record_document, recorded_document
from accord.coordinator.executor import Executor, JobFailed, SecAggReply
from accord.data.handshake import (
    FairnessAsk,
    PrepareRequest,
    encoding_payload,
    parse_encoding_ack,
    parse_encoding_summary,
)
from accord.data.preprocess import Encoder
from accord.data.profile import (
    Schema,
    SiteColumns,
    SiteProfile,
    check_columns,
    columns_from_json,
    encoder_digest,
    encoder_from_json,
    encoder_to_json,
    fit_encoder,
    profile_from_json,
)
from accord.data.summary import Guard, SiteSummary
from accord.errors import (
    DatasetError,
    PreparationFailed,
    RunAborted,
    SchemaMismatch,
)

if TYPE_CHECKING:
    from accord.store.protocol import RunStore

__all__ = [
    "EVENT_KIND",
    "REFUSED_KIND",
    "Prepared",
    "Recorder",
    "check_recorded",
    "prepare",
    "prepare_data",
    "record_encoder",
    "recorded_encoder",
]

logger = logging.getLogger(__name__)

#: The kind of the store events that hold the fitted encoder.
EVENT_KIND = "preprocessing"
#: The kind of the store event that says why the fit failed.
REFUSED_KIND = "preprocessing_refused"
#: Where ``prepare`` reports a failed fit: ``(participant or None, detail)``.
Recorder = Callable[[str | None, str], None]
_ROUND = 0
_P = TypeVar("_P", SiteProfile, SiteColumns)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The fitted encoder, and each site's data profile (empty: none asked for)."""

    encoder: Encoder
    summaries: tuple[tuple[str, SiteSummary], ...] = ()


def prepare(
    executor: Executor,
    participants: Sequence[str],
    schema: Schema,
    *,
    seed: int,
    holdout_fraction: float,
    secure_aggregation: str,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    record: Recorder | None = None,
    settings: SecureAggregationConfig | None = None,
    run_id: str = "",
) -> Encoder:
    """:func:`prepare_data`'s encoder, asking no site for its data profile."""
    return prepare_data(
        executor,
        participants,
        schema,
        seed=seed,
        holdout_fraction=holdout_fraction,
        secure_aggregation=secure_aggregation,
        deadline_s=deadline_s,
        clock=clock,
        record=record,
        settings=settings,
        run_id=run_id,
    ).encoder


def prepare_data(
    executor: Executor,
    participants: Sequence[str],
    schema: Schema,
    *,
    seed: int,
    holdout_fraction: float,
    secure_aggregation: str,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    record: Recorder | None = None,
    settings: SecureAggregationConfig | None = None,
    run_id: str = "",
    guard: Guard | None = None,
    fairness: FairnessAsk | None = None,
) -> Prepared:
    """Gather the profiles of ``participants``, fit, ship; the encoder and profiles.

    ``participants`` are those connected, in roster order; each one's position in
    ``executor.participants`` picks its holdout split, as in a simulation. Why the
    fit failed, and the site to blame where there is one, goes to ``record``
    (``(participant, detail)``; the run store, in ``accord coordinator``) before
    the error is raised. With ``secure_aggregation`` other than ``"off"`` the
    statistics are summed securely under ``settings`` (the run's
    ``[secure_aggregation]``), bound to ``run_id`` (the wire's run id).
    ``guard``: ask each site for its data profile under it (plain runs only:
    under secure aggregation no site's own statistics are asked for).
    ``fairness``: ask each site to count its decisions per group at each
    evaluation: added to its evaluation reports in a plain run, summed securely
    after each evaluation under secure aggregation
    (:mod:`accord.coordinator.group_sum`).
    """
    secure = settings or SecureAggregationConfig.model_validate(
        {"mode": secure_aggregation}
    )
    roster = executor.participants
    wanted = guard if secure_aggregation == "off" else None
    counts = fairness
    requests = {
        p: PrepareRequest(
            seed,
            holdout_fraction,
            roster.index(p),
            secure_aggregation,
            schema.declared,
            wanted,
            counts,
        )
        for p in participants
    }
    try:
        return _prepare(
            executor,
            participants,
            schema,
            requests,
            deadline_s,
            clock,
            secure if secure_aggregation != "off" else None,
            run_id,
        )
    except (RunAborted, SchemaMismatch) as exc:
        if record is not None:
            record(getattr(exc, "site", None), str(exc))
        raise


def _prepare(
    executor: Executor,
    participants: Sequence[str],
    schema: Schema,
    requests: Mapping[str, PrepareRequest],
    deadline_s: float,
    clock: Callable[[], float],
    secure: SecureAggregationConfig | None,
    run_id: str,
) -> Prepared:
    executor.submit_secagg(
        _ROUND, "profile", {p: r.to_json() for p, r in requests.items()}
    )
    replies = _collect(executor, "profile", participants, deadline_s, clock)
    if secure is None:
        profiles = [
            (name, _parse(name, replies[name], profile_from_json))
            for name in participants
        ]
        encoder = fit_encoder(profiles, schema)
    else:
        from accord.coordinator.statistics import secure_statistics  # the extra

        columns = [
            (name, _parse(name, replies[name], columns_from_json))
            for name in participants
        ]
        levels = check_columns(columns, schema)
        stats, rows = secure_statistics(
            executor,
            requests,
            schema.numeric,
            settings=secure,
            deadline_s=deadline_s,
            clock=clock,
            run_id=run_id,
        )
        logger.info("the sites hold %d training rows together", rows)
        encoder = Encoder.from_stats(schema.numeric, levels, stats)
    digest = encoder_digest(encoder)
    logger.info(
        "fitted the preprocessing from %d site(s): %d features, digest %s",
        len(participants),
        len(encoder.feature_names),
        digest[:16],
    )
    executor.submit_secagg(
        _ROUND,
        "encoding",
        {p: encoding_payload(r, encoder) for p, r in requests.items()},
    )
    acks = _collect(executor, "encoding", participants, deadline_s, clock)
    summaries: list[tuple[str, SiteSummary]] = []
    for name in participants:
        try:
            applied = parse_encoding_ack(acks[name])
            summary = parse_encoding_summary(acks[name])
        except DatasetError as exc:
            raise RunAborted(
                f"site {name!r} answered the encoding with {exc}"
            ) from None
        if summary is not None:
            summaries.append((name, summary))
        if applied != digest:
            raise RunAborted(
                f"site {name!r} applied the preprocessing {applied[:16]}…, not the "
                f"fitted {digest[:16]}…; check its accord version"
            )
    asked = any(r.summary is not None for r in requests.values())
    if asked and len(summaries) != len(participants):
        missing = sorted(set(participants) - {n for n, _ in summaries})
        raise RunAborted(
            f"site(s) {', '.join(missing)} sent no data profile before round 1; "
            "check their accord version, or set [profile] enabled = false"
        )
    return Prepared(encoder, tuple(summaries))


def _parse(name: str, reply: bytes, parse: Callable[[bytes], _P]) -> _P:
    """A site's profile, or PreparationFailed naming the site."""
    try:
        return parse(reply)
    except DatasetError as exc:
        reason = f"site {name!r} sent an unusable profile: {exc}"
        raise PreparationFailed(name, reason) from None


def _collect(
    executor: Executor,
    stage: str,
    participants: Sequence[str],
    deadline_s: float,
    clock: Callable[[], float],
) -> dict[str, bytes]:
    """Every participant's answer to ``stage``, or RunAborted naming who did not."""
    waiting = set(participants)
    answers: dict[str, bytes] = {}
    deadline = clock() + deadline_s
    while waiting:
        left = deadline - clock()
        event = executor.next_event(max(left, 0.0)) if left > 0 else None
        if event is None:
            names = ", ".join(sorted(waiting))
            raise RunAborted(
                f"no {stage} answer from {names} within {deadline_s:.0f} s before "
                "round 1; check their site logs, or raise [round] deadline_s"
            )
        if event.round != _ROUND or event.participant not in waiting:
            logger.warning("ignored %s before round 1", type(event).__name__)
            continue
        if isinstance(event, JobFailed):
            raise PreparationFailed(
                event.participant,
                f"site {event.participant!r} could not take part in the "
                f"preprocessing fit ({stage}): {event.reason}",
            )
        if isinstance(event, SecAggReply) and event.stage == stage:
            answers[event.participant] = event.payload
            waiting.discard(event.participant)
    return answers


def record_encoder(store: RunStore, run_id: str, encoder: Encoder) -> str:
    """Record the encoder with the run (as events, in parts); return its digest."""
    text = encoder_to_json(encoder).decode("utf-8")
    return record_document(store, run_id, EVENT_KIND, text)


def recorded_encoder(store: RunStore, run_id: str) -> Encoder | None:
    """The encoder last recorded with ``run_id`` (None: none was)."""
    data = recorded_document(store, run_id, EVENT_KIND)
    return None if data is None else encoder_from_json(data)


def check_recorded(store: RunStore, run_id: str, encoder: Encoder) -> Mapping[str, str]:
    """On resume: refuse unless the sites' data fits as it did; record it if new.

    Returns ``{"digest": ...}`` of the encoder the run keeps using.
    """
    recorded = recorded_encoder(store, run_id)
    digest = encoder_digest(encoder)
    if recorded is None:
        return {"digest": record_encoder(store, run_id, encoder)}
    before = encoder_digest(recorded)
    if before != digest:
        raise RunAborted(
            f"the sites' data no longer gives the preprocessing run {run_id} was "
            f"trained with (recorded {before[:16]}…, now {digest[:16]}…): a site's "
            "table changed. Restore it, or start a new run (leave out --resume)"
        )
    return {"digest": digest}
