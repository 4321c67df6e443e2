"""Membership inference: attack scores, their ROC figures, and the bound DP implies.

A membership-inference attack gets a model and a record and says whether the record
was in the training data. Its power is read off the ROC curve of its scores over a
balanced set of members and non-members: the AUC, and the true-positive rate at a
small false-positive rate (Carlini et al. 2022 argue that the low-FPR regime, not the
AUC, is what matters: an attack that surely identifies a few records is a breach
even at AUC 0.5).

Two attacks, both as *scores* (higher: more likely a member):

- :func:`loss_scores`: the loss-threshold attack (Yeom et al. 2018), the negative
  cross-entropy of the true class. Members have lower loss on an overfit model.
- :func:`lira_offline_scores`: the offline likelihood-ratio attack (LiRA, Carlini et
  al. 2022). Shadow models are trained on random halves of data from the same
  distribution; for each record, the logit-scaled confidence
  ``log p_y - log(1 - p_y)`` of the shadows that did *not* train on it is fitted
  with a Gaussian, and the target model's confidence is scored by how far above
  that Gaussian it lies. With a handful of shadows the per-record variance is
  unreliable, so one variance is fitted over all records (the paper's "global
  variance" variant); the score is the z-value ``(φ − μ_out) / σ``, a monotone
  transform of the paper's one-sided likelihood, so AUC and TPR are the same.

The bound: if a mechanism is (ε, δ)-DP, every membership test has
``TPR ≤ e^ε · FPR + δ`` and, applied to the complementary test,
``1 − FPR ≤ e^ε · (1 − TPR) + δ`` (Kairouz, Oh and Viswanath 2015). The ROC
curve of any attack lies under the smaller of the two lines (and 1), so its AUC is
at most the area under that curve (:func:`dp_auc_bound`): ``e^ε / (1 + e^ε)`` for
δ = 0.

Pure numpy; the ROC AUC is :func:`accord.evaluation.metrics.binary_auc` (the
Mann–Whitney statistic, ties counted one half).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from accord.evaluation.metrics import binary_auc

__all__ = [
    "attack_auc",
    "dp_auc_bound",
    "dp_tpr_bound",
    "lira_offline_scores",
    "logit_confidence",
    "loss_scores",
    "roc_points",
    "tpr_at_fpr",
]

FloatArray = npt.NDArray[np.float64]
#: Probabilities are clipped to [_EPS, 1 - _EPS] before a logarithm.
_EPS = 1e-12
#: The smallest standard deviation LiRA divides by (all shadows agreeing exactly).
_MIN_STD = 1e-6


def _checked(
    scores: npt.ArrayLike, member: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    m = np.asarray(member, dtype=bool).reshape(-1)
    if s.shape != m.shape:
        raise ValueError(f"{m.size} membership labels but {s.size} scores")
    if not np.isfinite(s).all():
        raise ValueError("attack scores must be finite")
    if m.all() or not m.any():
        raise ValueError("need both members and non-members to score an attack")
    return s, m


def attack_auc(scores: npt.ArrayLike, member: npt.ArrayLike) -> float:
    """ROC AUC of ``scores`` for the boolean ``member`` labels (0.5: guessing)."""
    s, m = _checked(scores, member)
    return binary_auc(m, s)


def roc_points(
    scores: npt.ArrayLike, member: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """``(fpr, tpr)`` at every threshold, from (0, 0) to (1, 1).

    The attack says "member" when a score is at least the threshold; thresholds are
    the distinct scores, so tied records are always on the same side.
    """
    s, m = _checked(scores, member)
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(m)[last_of_tie]
    fp = np.cumsum(~m)[last_of_tie]
    fpr = np.r_[0.0, fp / np.count_nonzero(~m)]
    tpr = np.r_[0.0, tp / np.count_nonzero(m)]
    return fpr, tpr


def tpr_at_fpr(scores: npt.ArrayLike, member: npt.ArrayLike, fpr: float) -> float:
    """The highest TPR of a threshold whose false-positive rate is at most ``fpr``.

    No interpolation between thresholds: with ``n`` non-members a rate ``fpr``
    allows ``floor(fpr * n)`` false positives, so below ``1 / n`` it is the TPR with
    none at all.
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    rates, tprs = roc_points(scores, member)
    # A tolerance of one ulp-scale step: 1/1000 computed as 1 / 1000 must count.
    allowed = rates <= fpr + 1e-12
    return float(tprs[allowed].max())


def _true_class(
    proba: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != labels.size:
        raise ValueError(
            f"proba must have shape (n, k) with n={labels.size}, got {p.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}) to index proba")
    p_true = p[np.arange(labels.size), labels]
    rest = p.sum(axis=1) - p_true
    return np.clip(p_true, _EPS, 1.0), np.clip(rest, _EPS, 1.0)


def loss_scores(proba: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """The loss-threshold attack's scores: ``log p_y``, minus the cross-entropy."""
    p_true, _ = _true_class(proba, y)
    return np.log(p_true)


def logit_confidence(proba: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """``log p_y − log Σ_{j≠y} p_j``: LiRA's statistic, near-Gaussian across models."""
    p_true, rest = _true_class(proba, y)
    return np.log(p_true) - np.log(rest)


def lira_offline_scores(
    target: npt.ArrayLike, shadows: npt.ArrayLike, shadow_in: npt.ArrayLike
) -> FloatArray:
    """Offline LiRA: each record's target confidence as a z-value against its OUTs.

    ``target`` is :func:`logit_confidence` of the audited model, shape ``(n,)``;
    ``shadows`` the same for each shadow model, shape ``(k, n)``; ``shadow_in``
    marks, per shadow, the records it trained on. A record no shadow left out gets
    the mean over all OUT confidences (it still scores, less sharply).
    """
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    conf = np.asarray(shadows, dtype=np.float64)
    inside = np.asarray(shadow_in, dtype=bool)
    if conf.ndim != 2 or conf.shape[1] != t.size or inside.shape != conf.shape:
        raise ValueError(
            f"shadows and shadow_in must have shape (k, {t.size}), got "
            f"{conf.shape} and {inside.shape}"
        )
    out = ~inside
    if not out.any():
        raise ValueError("offline LiRA needs each shadow to leave some records out")
    counts = out.sum(axis=0)
    sums = np.where(out, conf, 0.0).sum(axis=0)
    pooled = float(conf[out].mean())
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), pooled)
    residual = np.where(out, conf - mean[None, :], np.nan)
    std = max(float(np.nanstd(residual)), _MIN_STD)
    return (t - mean) / std


def dp_tpr_bound(epsilon: float, delta: float, fpr: float) -> float:
    """The highest TPR any membership test can have at ``fpr`` under (ε, δ)-DP."""
    _check_dp(epsilon, delta)
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    if math.isinf(epsilon):
        return 1.0
    return _roc_bound(epsilon, delta, fpr)


def _roc_bound(epsilon: float, delta: float, x: float) -> float:
    grow = math.exp(epsilon)
    return min(1.0, grow * x + delta, 1.0 - (1.0 - delta - x) / grow)


def dp_auc_bound(epsilon: float, delta: float) -> float:
    """The largest AUC any membership test can have under (ε, δ)-DP.

    The area under ``min(1, e^ε x + δ, 1 − e^−ε (1 − δ − x))``: a concave
    piecewise-linear curve, integrated exactly between its kinks.
    """
    _check_dp(epsilon, delta)
    if math.isinf(epsilon):
        return 1.0
    grow = math.exp(epsilon)
    kinks = [0.0, 1.0, (1.0 - delta) / (1.0 + grow), (1.0 - delta) / grow, 1 - delta]
    xs = np.array(sorted(min(1.0, max(0.0, k)) for k in kinks))
    ys = np.array([_roc_bound(epsilon, delta, float(x)) for x in xs])
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))


def _check_dp(epsilon: float, delta: float) -> None:
    if math.isnan(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be >= 0 (or inf), got {epsilon}")
    if not 0 <= delta <= 1:
        raise ValueError(f"delta must be in [0, 1], got {delta}")
