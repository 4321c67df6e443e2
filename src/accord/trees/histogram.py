"""Per-node gradient and hessian histograms: what a site sends for each tree level.

For every node being split, every feature and every bin, a site adds the first
and second derivatives of the loss (``g``, ``h``) of its rows that sit in that
node and bin. The result is a sum over rows, so the federation's histogram is the
plain (or the secure) sum of the sites' histograms and the coordinator can pick
splits from it exactly as if the rows were pooled. One ``numpy.bincount`` per
derivative builds a whole level at once.

Layout: ``float64[nodes, features, bins, 2]``, ``[..., 0]`` the gradient sums and
``[..., 1]`` the hessian sums; ``bins`` is the federation's largest bin count, so
features with fewer cuts leave their last bins at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["build_histograms", "logistic_gradients"]

Floats = npt.NDArray[np.float64]


def logistic_gradients(margin: Floats, labels: npt.ArrayLike) -> tuple[Floats, Floats]:
    """``g`` and ``h`` of the log loss at raw scores ``margin`` for 0/1 ``labels``.

    The hessian is floored at 1e-16 as XGBoost floors it, so a leaf of confident
    rows keeps a finite weight.
    """
    p = 1.0 / (1.0 + np.exp(-margin))
    y = np.asarray(labels, dtype=np.float64)
    return p - y, np.maximum(p * (1.0 - p), 1e-16)


def build_histograms(
    binned: npt.NDArray[np.uint16],
    grad: Floats,
    hess: Floats,
    positions: npt.NDArray[np.int64],
    nodes: Sequence[int],
    bins: int,
) -> Floats:
    """The histograms of ``nodes`` (in that order) over the rows at ``positions``.

    ``positions[i]`` is the node row ``i`` sits in; rows in other nodes count
    nowhere.
    """
    rows, features = binned.shape
    top = max(int(positions.max(initial=0)), max(nodes, default=0))
    slot = np.full(top + 1, -1, dtype=np.int64)
    slot[np.asarray(nodes, dtype=np.int64)] = np.arange(len(nodes))
    row_slot = slot[positions]
    keep = row_slot >= 0
    base = (row_slot[keep] * features)[:, None] + np.arange(features)[None, :]
    index = (base * bins + binned[keep].astype(np.int64)).ravel()
    size = len(nodes) * features * bins
    out = np.empty((len(nodes), features, bins, 2), dtype=np.float64)
    for k, values in enumerate((grad, hess)):
        weights = np.repeat(values[keep], features)
        out[..., k] = np.bincount(index, weights, minlength=size).reshape(
            len(nodes), features, bins
        )
    return out
