"""A site's answers to the stages that fit the federation's preprocessing.

Before round 1 of a federation on ``csv:`` data the coordinator opens two stages
(``secagg`` tasks of round 0, :data:`~accord.transport.jobs.PREPARE_STAGES`):
``profile``, answered with the site's :class:`~accord.data.profile.SiteProfile`,
and ``encoding``, which carries the fitted encoder; the site encodes its rows with
it, builds its task for the resulting features, and answers with the digest of
the encoder it applied and, when the request asks for one in a run without
secure aggregation, its guarded data profile (:mod:`accord.data.summary`), under
the run's guard with its minimum count raised to the site's own floor
(``--min-profile-count``) where that is higher.
Until then it has no training data and refuses train and eval tasks.

When the run has secure aggregation on (the request's mode is not ``off``), the
``profile`` stage is answered with the site's columns only (names, classes, the
levels of undeclared categorical columns), and a ``statistics`` stage in between
sums the counts, sums and sums of squares under secure aggregation: the site
admits it like a secure round (its roster's certificates, its policy's minimum
threshold; :meth:`~accord.participant.rounds.SecureRounds.admit_sum`), encodes
its statistics exactly (:class:`~accord.secagg.exact.ExactEncoding`) and answers
the masking protocol's stages, which the runtime routes as for any secure round.
In a plain run the profile's sums travel in the clear (over mutual TLS), so a
site whose policy requires secure aggregation (``--require-secure-aggregation``,
``--min-threshold``) refuses that ``profile`` stage, with that reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from accord.data.handshake import (
    FairnessAsk,
    PrepareRequest,
    StatisticsRequest,
    encoding_ack,
    parse_encoding,
)
from accord.data.profile import columns_to_json, encoder_digest, profile_to_json
from accord.data.summary import summary_to_json
from accord.errors import AccordError
from accord.participant.data import LocalData
from accord.participant.policy import SitePolicy
from accord.participant.rounds import SecureRounds
from accord.participant.table import SiteTable
from accord.task.protocol import Task
from accord.transport.messages import TaskOrder

__all__ = ["Preparation", "PreparationRefused", "TaskBuilder"]

#: Builds the site's task for its encoded data (``--task`` with its info).
TaskBuilder = Callable[[LocalData], Task]


class PreparationRefused(Exception):
    """The site will not or cannot answer a preparation stage; the reason says why."""


class Preparation:
    """The site's data and task, ready at once (``sim:``) or after ``encoding``."""

    def __init__(
        self,
        source: LocalData | SiteTable | None,
        *,
        task: Task | None = None,
        builder: TaskBuilder | None = None,
        policy: SitePolicy | None = None,
        secure: SecureRounds | None = None,
    ) -> None:
        self._source = source
        self._policy = policy or SitePolicy()
        self._secure = secure
        self._builder = builder
        self._data: LocalData | None = None
        self._task: Task | None = None
        self.digest: str | None = None
        #: SHA-256 of the data profile sent with the encoding answer (None: none
        #: was asked for): the digest the run's data contract must name for us.
        self.profile_digest: str | None = None
        #: What the site counts per group in each evaluation (runs that declare
        #: a sensitive column): the ask and the holdout rows' values.
        self.fairness: tuple[FairnessAsk, npt.NDArray[np.object_]] | None = None
        #: Whether the counts are summed securely (the ``fairness`` task) rather
        #: than reported with the evaluation: never in the clear under secure
        #: aggregation.
        self.fairness_secure = False
        if source is None:
            return  # a connection-only runtime: refuses every task (never ready)
        if not isinstance(source, SiteTable):
            self._data = source
            self._task = task if task is not None else _build(builder, source)
        elif builder is None:
            raise TypeError("a csv: site needs a task builder: its features come later")

    @property
    def ready(self) -> tuple[LocalData, Task] | None:
        """The encoded data and its task, or None while the encoder is awaited."""
        if self._data is None or self._task is None:
            return None
        return self._data, self._task

    def answer(self, order: TaskOrder) -> bytes:
        """The site's message for ``order.stage``; PreparationRefused says why not."""
        if not isinstance(self._source, SiteTable):
            raise PreparationRefused(
                "this site's data is already encoded (--data sim:...) or absent: "
                "the federation's preprocessing is fitted only for csv: data"
            )
        try:
            if order.stage == "profile":
                return self._profile(self._source, order.payload)
            if order.stage == "statistics":
                return self._statistics(self._source, order)
            return self._encoding(self._source, order.payload)
        except AccordError as exc:
            raise PreparationRefused(str(exc)) from None

    def _profile(self, source: SiteTable, payload: bytes) -> bytes:
        request = PrepareRequest.from_json(payload)
        if request.secure:
            return columns_to_json(source.columns(request))
        if self._policy.requires_secure:
            raise PreparationRefused(
                "site policy: this site sends nothing in the clear "
                "(--require-secure-aggregation), and this run's preprocessing "
                "statistics (counts, sums, sums of squares) would be: the "
                "federation must run with secure aggregation on ([secure_aggregation] "
                'mode = "masking") to sum them securely (docs/security.md)'
            )
        profile = source.profile(request)
        floor = self._policy.min_profile_count
        if floor is not None and profile.train_rows < floor:
            # Counts, sums and sums of squares of a few rows are those rows' values
            # (one row: exactly); a split the coordinator chose can make it few.
            raise PreparationRefused(
                f"the preprocessing profile would describe {profile.train_rows} "
                f"training rows (holdout_fraction {request.holdout_fraction:g}), "
                f"fewer than this site's floor of {floor} (--min-profile-count)"
            )
        return profile_to_json(profile)

    def _statistics(self, source: SiteTable, order: TaskOrder) -> bytes:
        """Admit the secure sum, encode the statistics exactly, advertise."""
        if self._secure is None:
            raise PreparationRefused("this site takes part in no secure sum")
        request = StatisticsRequest.from_json(order.payload)
        if not request.request.secure:
            raise PreparationRefused("a statistics task in a run without secure sums")
        refusal = self._secure.admit_sum(order, request.secure_json)
        if refusal is not None:
            raise PreparationRefused(refusal)
        vector = source.statistics(request.request, request.columns)
        try:
            from accord.secagg.exact import ExactEncoding
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise PreparationRefused(f"this site cannot sum securely: {exc}") from None
        try:
            words = ExactEncoding(vector.size).encode(vector)
        except ValueError as exc:
            reason = f"its statistics cannot be summed: {exc}"
            raise PreparationRefused(reason) from None
        return self._secure.seal_sum(order, words)

    def _encoding(self, source: SiteTable, payload: bytes) -> bytes:
        request, encoder = parse_encoding(payload)
        info, train, holdout = source.encode(encoder, request)
        self.fairness = None
        self.fairness_secure = request.secure
        if request.fairness is not None:
            if len(info.class_names) != 2:
                raise PreparationRefused(
                    f"fairness counts are defined for two classes; this table has "
                    f"{len(info.class_names)}: remove [evaluation] sensitive"
                )
            values = source.holdout_values(request.fairness.column, request)
            self.fairness = (request.fairness, values)
        data = LocalData(source.name, info, train, holdout)
        task = _build(self._builder, data)
        self._data, self._task = data, task
        self.digest = encoder_digest(encoder)
        summary = None
        if request.summary is not None and not request.secure:
            floor = self._policy.min_profile_count
            if floor is not None and floor > request.summary.min_count:
                guard = replace(request.summary, min_count=floor)
                request = replace(request, summary=guard)
            summary = source.summary(encoder, request)
            sent = summary_to_json(summary)
            self.profile_digest = hashlib.sha256(sent).hexdigest()
        return encoding_ack(encoder, len(info.feature_names), summary)


def _build(builder: TaskBuilder | None, data: LocalData) -> Task:
    if builder is None:
        raise TypeError("pass the site's task, or a builder for it")
    return builder(data)
