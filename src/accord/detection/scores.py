"""Anomaly scores of a round's updates, and the threshold rules that flag them.

Each participant's update gets its L2 norm, its cosine similarity to the round's
aggregate, its mean L2 distance to the other updates, its distance to the
coordinate-wise median, and the distance to its nearest other update relative to
the round's median such distance. Norm and median distance are also given as
robust z-scores (median and MAD across the round, not mean and standard deviation,
so that the attackers being scored do not widen the yardstick that scores them).

Why these: scaling / model replacement and Gaussian noise stand out by norm;
sign flipping and IPM point away from the aggregate (cosine); ALIE and min-max /
min-sum are built to sit inside the honest spread, but every colluding attacker
sends the *same* crafted vector, so its nearest neighbour is at distance 0
(``nearest_ratio``), which honest sites on different data never are. A rule is a
bound on one score; an update that breaks any is flagged, with the rule named.

Pure and deterministic: no randomness, float64 throughout, input order kept.
Cost: O(n^2 d) for the pairwise distances through one Gram matrix, n updates of d
coordinates (10 sites of a 10M-parameter model: ~1 GFLOP, well under a second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.params import Params
from accord.records import UpdateScore

__all__ = ["FlagRules", "UpdateMatrix", "robust_z", "score_round"]

Matrix = npt.NDArray[np.float64]
#: MAD of a normal sample times this estimates its standard deviation.
_MAD_TO_STD = 1.4826


@dataclass(frozen=True, slots=True)
class FlagRules:
    """Bounds that flag an update; None: the rule is off."""

    max_norm_z: float | None = None
    min_cosine: float | None = None
    max_distance_z: float | None = None
    min_nearest_ratio: float | None = None

    def broken(self, score: UpdateScore) -> tuple[str, ...]:
        """The rules ``score`` breaks, as readable conditions."""
        out: list[str] = []
        if self.max_norm_z is not None and score.norm_z > self.max_norm_z:
            out.append(f"norm_z {score.norm_z:.3g} > {self.max_norm_z:g}")
        if self.min_cosine is not None and score.cosine < self.min_cosine:
            out.append(f"cosine {score.cosine:.3g} < {self.min_cosine:g}")
        if self.max_distance_z is not None and score.distance_z > self.max_distance_z:
            out.append(f"distance_z {score.distance_z:.3g} > {self.max_distance_z:g}")
        if (
            self.min_nearest_ratio is not None
            and score.nearest_ratio < self.min_nearest_ratio
        ):
            out.append(
                f"nearest_ratio {score.nearest_ratio:.3g} < {self.min_nearest_ratio:g}"
            )
        return tuple(out)


class UpdateMatrix:
    """A round's updates, flattened to float64 rows as they are received.

    The round's accumulator may fold and release an update at once; this keeps the
    copy that scoring needs (O(participants x model) memory, which is why scoring
    is opt-in for the streaming mean).
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._rows: list[Matrix] = []
        self._excluded: list[bool] = []

    def add(self, participant: str, update: Params, *, excluded: bool) -> None:
        """Keep a float64 copy of ``update``; ``excluded``: not aggregated."""
        self._names.append(participant)
        self._rows.append(np.asarray(update.flatten(), dtype=np.float64))
        self._excluded.append(excluded)

    def __len__(self) -> int:
        return len(self._names)

    def score(self, aggregate: Params, rules: FlagRules) -> tuple[UpdateScore, ...]:
        """Scores of every kept update against the others and ``aggregate``."""
        if not self._rows:
            return ()
        return score_round(
            self._names,
            np.stack(self._rows),
            np.asarray(aggregate.flatten(), dtype=np.float64),
            rules,
            excluded=self._excluded,
        )


def robust_z(values: npt.ArrayLike) -> Matrix:
    """``(x - median) / (1.4826 * MAD)``; 0 where every value is the median.

    When the MAD is 0 (half or more of the values are equal) a value away from the
    median has z = +-inf: it is infinitely far by the yardstick of the majority.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    centre = float(np.median(x))
    scale = _MAD_TO_STD * float(np.median(np.abs(x - centre)))
    dev = x - centre
    if scale > 0:
        return dev / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dev == 0, 0.0, np.sign(dev) * math.inf)


def _pairwise(rows: Matrix) -> Matrix:
    """Euclidean distances between rows, through the Gram matrix (no n x n x d)."""
    gram = rows @ rows.T
    sq = np.diag(gram)
    d2 = sq[:, None] + sq[None, :] - 2.0 * gram
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.maximum(d2, 0.0))


def _cosines(rows: Matrix, aggregate: Matrix, norms: Matrix) -> Matrix:
    ref = float(np.linalg.norm(aggregate))
    denom = norms * ref
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(denom > 0, (rows @ aggregate) / denom, 0.0)
    return np.clip(cos, -1.0, 1.0)


def score_round(
    names: Sequence[str],
    rows: Matrix,
    aggregate: Matrix,
    rules: FlagRules,
    *,
    excluded: Sequence[bool] | None = None,
) -> tuple[UpdateScore, ...]:
    """Score each row of ``rows`` (``(n, d)``, one update each) in ``names`` order.

    ``aggregate`` is the round's aggregate update (``d``); ``excluded[i]`` marks an
    update that was not aggregated (quarantined). With one update the distances
    are 0 and the z-scores 0: there is nothing to compare it with.
    """
    n = rows.shape[0]
    if len(names) != n or aggregate.shape != (rows.shape[1],):
        raise ValueError(
            f"{len(names)} names and an aggregate of shape {aggregate.shape} for "
            f"updates of shape {rows.shape}"
        )
    gone = list(excluded) if excluded is not None else [False] * n
    norms = np.linalg.norm(rows, axis=1)
    cos = _cosines(rows, aggregate, norms)
    dist = _pairwise(rows)
    mean_dist = dist.sum(axis=1) / max(n - 1, 1)
    median_dist = np.linalg.norm(rows - np.median(rows, axis=0), axis=1)
    if n > 1:
        nearest = np.where(np.eye(n, dtype=bool), np.inf, dist).min(axis=1)
        typical = float(np.median(nearest))
        ratio = nearest / typical if typical > 0 else np.ones(n)
    else:
        ratio = np.ones(n)
    norm_z, dist_z = robust_z(norms), robust_z(median_dist)
    out = []
    for i, name in enumerate(names):
        score = UpdateScore(
            participant=name,
            norm=float(norms[i]),
            cosine=float(cos[i]),
            mean_distance=float(mean_dist[i]),
            median_distance=float(median_dist[i]),
            nearest_ratio=float(ratio[i]),
            norm_z=float(norm_z[i]),
            distance_z=float(dist_z[i]),
            excluded=bool(gone[i]),
        )
        out.append(_with_flags(score, rules.broken(score)))
    return tuple(out)


def _with_flags(score: UpdateScore, flags: tuple[str, ...]) -> UpdateScore:
    if not flags:
        return score
    return UpdateScore(
        participant=score.participant,
        norm=score.norm,
        cosine=score.cosine,
        mean_distance=score.mean_distance,
        median_distance=score.median_distance,
        nearest_ratio=score.nearest_ratio,
        norm_z=score.norm_z,
        distance_z=score.distance_z,
        flags=flags,
        excluded=score.excluded,
    )
