"""What a deployed site adds to its evaluation report when fairness is measured.

In a plain run (no secure aggregation) whose ``[evaluation] sensitive`` names a
column, the coordinator's preparation request asks each ``csv:`` site for its
per-group confusion counts (:class:`~accord.data.handshake.FairnessAsk`). The site
then counts, at every evaluation, the decisions ``P(second class) >= threshold``
on its own holdout against its labels, per value of the sensitive column
(:func:`~accord.evaluation.fairness.confusion_by_group`, the function a
simulation's ``accord release`` runs), and reports them as metrics
(:func:`~accord.evaluation.group_sums.count_metrics`). No prediction or row leaves
the site: four integers per group. Under secure aggregation nothing is asked for
and nothing is sent (docs/governance.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.data.handshake import FairnessAsk
from accord.errors import TaskError
from accord.evaluation.fairness import confusion_by_group
from accord.evaluation.group_sums import count_metrics
from accord.params import Params
from accord.task.protocol import Task

__all__ = ["group_count_metrics"]


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
    counts = confusion_by_group(
        holdout.y == 1, proba[:, 1], values, threshold=ask.threshold
    )
    return count_metrics(counts)
