"""Shared bin edges from a federated quantile sketch that is a plain sum.

Histogram-based boosting needs one set of cut points per feature that every site
uses, so that the sites' histograms line up bin for bin and can be added. A
mergeable quantile summary that is also a *sum* lets secure aggregation hide each
site's part: every site counts its rows in the cells of one fixed grid per
feature (:func:`site_sketch`: ``cells`` equal cells over ``[-range, range]``, the
outer two open-ended), the counts are summed (plainly or under secure
aggregation), and the coordinator reads the federation's quantiles off the summed
counts (:func:`cuts_from_counts`). No site's minimum, maximum or quantiles leave
it. The grid is fixed because accord's preprocessing standardises numeric columns
with the federation's mean and standard deviation and one-hot encodes the rest,
so ``+-8`` standard deviations at 4096 cells resolve a quantile to 0.004 of a
standard deviation; values beyond the grid share the outermost bins.

Cut points are grid edges, as float32, because XGBoost compares features as
float32 and the exported model must route every row as the federation's trees
do: a row with value ``v`` is in bin ``#(cuts <= v)`` and a split after bin
``j`` sends ``v < cuts[j]`` left, XGBoost's rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError

__all__ = ["bin_rows", "cuts_from_counts", "grid_edges", "site_sketch"]

Floats32 = npt.NDArray[np.float32]


def grid_edges(cells: int, half_width: float) -> Floats32:
    """The ``cells - 1`` inner edges of the sketch's grid, float32, increasing."""
    edges = np.linspace(-half_width, half_width, cells + 1, dtype=np.float64)[1:-1]
    out = edges.astype(np.float32)
    if np.any(np.diff(out) <= 0):
        raise DatasetError("the sketch grid is too fine for float32; use fewer cells")
    return out


def _features(x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    data = np.asarray(x, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] == 0:
        raise DatasetError("a site needs at least one row of features to sketch")
    if not np.isfinite(data).all():
        raise DatasetError(
            "the features hold NaN or infinity; gradient-boosted trees in accord "
            "need imputed features (the preprocessing imputes them)"
        )
    return data


def site_sketch(x: npt.ArrayLike, edges: Floats32) -> npt.NDArray[np.int64]:
    """A site's row counts per feature and grid cell (``features x cells``)."""
    data = _features(x)
    cells = edges.size + 1
    out = np.empty((data.shape[1], cells), dtype=np.int64)
    for f in range(data.shape[1]):
        cell = np.searchsorted(edges, data[:, f], side="right")
        out[f] = np.bincount(cell, minlength=cells)
    return out


def cuts_from_counts(
    counts: npt.NDArray[np.int64], edges: Floats32, bins: int
) -> list[Floats32]:
    """Each feature's cut points from the federation's summed grid counts.

    At most ``bins - 1`` cuts per feature, at the grid edges nearest the
    quantiles ``1/bins, ..., (bins-1)/bins``; a cut with no row on one side is
    dropped. Raises :class:`DatasetError` for counts no rows give.
    """
    if counts.ndim != 2 or counts.shape[1] != edges.size + 1:
        raise DatasetError(
            f"the summed sketch has shape {counts.shape}; {edges.size + 1} grid "
            "cells per feature were expected"
        )
    if (counts < 0).any() or counts.sum(axis=1).min(initial=1) <= 0:
        raise DatasetError(
            "the summed sketch counts are impossible (negative or empty)"
        )
    targets = np.arange(1, bins) / bins
    cuts: list[Floats32] = []
    for row in counts:
        cum = np.cumsum(row)
        total = cum[-1]
        cell = np.searchsorted(cum, targets * total, side="left")
        cell = np.unique(cell)
        cell = cell[(cell < edges.size) & (cum[np.minimum(cell, cum.size - 1)] < total)]
        cell = cell[cum[cell] > 0]
        cuts.append(edges[cell].astype(np.float32))
    return cuts


def bin_rows(x: npt.ArrayLike, cuts: Sequence[Floats32]) -> npt.NDArray[np.uint16]:
    """Each value's bin index under ``cuts`` (rows x features)."""
    data = _features(x)
    if data.shape[1] != len(cuts):
        raise DatasetError(
            f"expected a matrix of {len(cuts)} feature(s), got shape {data.shape}"
        )
    out = np.empty(data.shape, dtype=np.uint16)
    for f, c in enumerate(cuts):
        out[:, f] = np.searchsorted(c, data[:, f], side="right")
    return out
