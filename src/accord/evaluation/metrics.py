"""Classification metrics computed from predicted probabilities, in plain numpy.

Every site scores a model with these functions, from the task's ``predict``, so that
metrics are comparable across sites and a participant needs neither scikit-learn nor
torch to evaluate. They are written by hand for that reason; the tests check them
against :mod:`sklearn.metrics`.

Conventions:

- ``y_true`` holds integer class indices ``0 .. k-1``; ``proba`` has shape ``(n, k)``.
- ROC AUC is the Mann–Whitney rank statistic, ties counted one half (as
  :func:`sklearn.metrics.roc_auc_score`). With more than two classes it is the
  unweighted mean of the one-vs-rest AUCs (``multi_class="ovr", average="macro"``).
- A metric that is undefined returns ``nan`` rather than raising: accuracy and loss on
  no rows; binary AUC when the data hold only one class. For several classes the
  macro average runs over the classes whose one-vs-rest AUC is defined (present, and
  not alone), because a site's holdout often lacks some classes in non-IID
  federations; it is ``nan`` only if no class qualifies. scikit-learn raises instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.errors import TaskError
from accord.params import Params
from accord.task.protocol import Task

__all__ = ["accuracy", "binary_auc", "evaluate", "log_loss", "roc_auc"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _labels(y_true: npt.ArrayLike) -> IntArray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    return y.astype(np.int64, copy=False)


def _proba(y: IntArray, proba: npt.ArrayLike) -> FloatArray:
    """``proba`` as a float64 ``(n, k)`` matrix checked against the labels."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(
            f"proba must have shape (n, k) with n={y.shape[0]}, got {p.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}) to index proba")
    return p


def accuracy(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> float:
    """Share of rows whose most probable class is the true one (``nan`` if none)."""
    y = _labels(y_true)
    p = _proba(y, proba)
    if y.size == 0:
        return math.nan
    return float(np.count_nonzero(p.argmax(axis=1) == y) / y.size)


def log_loss(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, *, eps: float = 1e-15
) -> float:
    """Mean negative log-likelihood of the true class (``nan`` if no rows).

    Probabilities are clipped to ``[eps, 1 - eps]`` so that one confident mistake
    gives a large but finite loss. Rows are not renormalised.
    """
    y = _labels(y_true)
    p = _proba(y, proba)
    if y.size == 0:
        return math.nan
    p_true = np.clip(p[np.arange(y.size), y], eps, 1.0 - eps)
    return float(-np.mean(np.log(p_true)))


def _average_ranks(scores: FloatArray) -> FloatArray:
    """1-based ranks of ``scores`` with tied values sharing their mean rank."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last = np.cumsum(counts, dtype=np.float64)
    mean_rank = last - (counts - 1) / 2.0
    return mean_rank[inverse.reshape(-1)]


def binary_auc(positive: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC of ``scores`` for a boolean ``positive`` mask (Mann–Whitney U).

    The probability that a random positive scores higher than a random negative,
    ties counting one half. ``nan`` when either group is empty or a score is not
    finite.
    """
    pos = np.asarray(positive, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if pos.shape != s.shape:
        raise ValueError(f"{pos.shape[0]} labels but {s.shape[0]} scores")
    n_pos = int(np.count_nonzero(pos))
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.isfinite(s).all():
        return math.nan
    rank_sum = float(_average_ranks(s)[pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> float:
    """ROC AUC: binary for two columns, macro one-vs-rest for more.

    See the module docstring for when the result is ``nan``.
    """
    y = _labels(y_true)
    p = _proba(y, proba)
    k = p.shape[1]
    if k == 2:
        return binary_auc(y == 1, p[:, 1])
    per_class = [binary_auc(y == c, p[:, c]) for c in range(k)]
    defined = [a for a in per_class if not math.isnan(a)]
    return float(np.mean(defined)) if defined else math.nan


def evaluate(task: Task, params: Params, data: ArrayData) -> dict[str, float]:
    """Score ``params`` on ``data`` through ``task.predict``.

    Returns ``{"accuracy", "auc", "loss", "n"}``; ``n`` is the number of rows. Raises
    :class:`TaskError` if the task's predictions have the wrong shape.
    """
    n = len(data)
    if n == 0:
        return {"accuracy": math.nan, "auc": math.nan, "loss": math.nan, "n": 0.0}
    proba: npt.NDArray[Any] = np.asarray(task.predict(params, data.x))
    if proba.ndim != 2 or proba.shape[0] != n:
        raise TaskError(
            f"predict returned shape {proba.shape} for {n} rows; it must return "
            "class probabilities of shape (n, n_classes)"
        )
    y = _labels(data.y)
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise TaskError(
            f"predict returned {proba.shape[1]} class columns but the labels go up "
            f"to {int(y.max())}; return one column per class of the dataset"
        )
    return {
        "accuracy": accuracy(y, proba),
        "auc": roc_auc(y, proba),
        "loss": log_loss(y, proba),
        "n": float(n),
    }
