"""What a deployed site counts per group when fairness is measured.

In a run whose ``[evaluation] sensitive`` names a column, the coordinator's
preparation request asks each ``csv:`` site for its per-group confusion counts
(:class:`~accord.data.handshake.FairnessAsk`). The site counts the decisions
``P(second class) >= threshold`` on its own holdout against its labels, per value
of the sensitive column (:func:`~accord.evaluation.fairness.confusion_by_group`,
the function a simulation's ``accord release`` runs). In a plain run it reports
them with each evaluation, as metrics
(:func:`~accord.evaluation.group_sums.count_metrics`); under secure aggregation
it sends nothing in the clear and answers each round's ``fairness`` task with
them masked (:func:`secure_counts_words`, :mod:`accord.coordinator.group_sum`).
No prediction or row leaves the site: four integers per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.data.handshake import FairnessAsk
from accord.errors import TaskError
from accord.evaluation.fairness import GroupCounts, confusion_by_group
from accord.evaluation.group_sums import count_metrics, counts_vector
from accord.params import Params
from accord.task.protocol import Task

__all__ = ["group_count_metrics", "group_counts", "secure_counts_words"]


def group_count_metrics(
    task: Task,
    params: Params,
    holdout: ArrayData,
    ask: FairnessAsk,
    values: npt.NDArray[np.object_],
) -> dict[str, float]:
    """The site's per-group counts of ``params`` on ``holdout``, as metrics.

    ``values`` are the holdout rows' sensitive values. Raises :class:`TaskError`
    when the task's predictions are unusable and
    :class:`~accord.errors.DatasetError` when the counts cannot be reported.
    """
    return count_metrics(group_counts(task, params, holdout, ask, values))


def secure_counts_words(
    counts: Mapping[str, GroupCounts], groups: Sequence[str]
) -> npt.NDArray[np.uint32]:
    """The counts laid out over the declared ``groups``, as exact ring words.

    Raises :class:`~accord.errors.DatasetError` for a group the federation did
    not declare (:func:`~accord.evaluation.group_sums.counts_vector`).
    """
    from accord.secagg.exact import ExactEncoding  # the secagg extra

    vector = counts_vector(counts, groups)
    return ExactEncoding(vector.size).encode(vector)


def group_counts(
    task: Task,
    params: Params,
    holdout: ArrayData,
    ask: FairnessAsk,
    values: npt.NDArray[np.object_],
) -> dict[str, GroupCounts]:
    """The site's confusion counts of ``params`` on ``holdout``, per group.

    Raises :class:`TaskError` when the task's predictions are unusable.
    """
    if not len(holdout):
        return {}
    try:
        proba = np.asarray(task.predict(params, holdout.x), dtype=np.float64)
    except Exception as exc:  # the user's predict may raise anything
        raise TaskError(f"predict failed while counting per group: {exc}") from None
    if proba.ndim != 2 or proba.shape[0] != len(holdout) or proba.shape[1] < 2:
        raise TaskError(
            f"predict returned shape {proba.shape} for {len(holdout)} rows; class "
            "probabilities (rows x classes) are needed to count per group"
        )
    return confusion_by_group(
        holdout.y == 1, proba[:, 1], values, threshold=ask.threshold
    )
