"""The best split of a node from its histogram, with XGBoost's gain.

For a node with gradient sum ``G`` and hessian sum ``H``, cutting a feature after
bin ``j`` sends ``(G_L, H_L)`` left and the rest right; the gain is XGBoost's

    gain = 1/2 [G_L^2 / (H_L + lambda) + G_R^2 / (H_R + lambda)
                - G^2 / (H + lambda)] - gamma

and a cut counts only if both children hold at least ``min_child_weight`` of
hessian and the gain is positive. The leaf weight is ``-G / (H + lambda)``.
Ties go to the lowest feature, then the lowest bin, so the choice is a pure
function of the histogram: the same sums give the same tree, at any site count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.trees.params import TreeParams

__all__ = ["Split", "best_split", "leaf_weight"]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Split:
    """Cut ``feature`` after bin ``bin`` (rows in bins ``<= bin`` go left)."""

    feature: int
    bin: int
    gain: float
    left: tuple[float, float]
    right: tuple[float, float]


def leaf_weight(grad: float, hess: float, params: TreeParams) -> float:
    """The optimal (unshrunk) weight of a leaf with these sums."""
    return -grad / (hess + params.reg_lambda)


def best_split(
    histogram: Floats, bins_per_feature: npt.NDArray[np.int64], params: TreeParams
) -> Split | None:
    """The best split of one node (``histogram``: ``features x bins x 2``), if any.

    ``bins_per_feature[f]`` is how many bins feature ``f`` has: cuts after its
    last bin would leave the right child empty and are not considered.
    """
    cum = np.cumsum(histogram, axis=1)
    total_g = float(cum[0, -1, 0])
    total_h = float(cum[0, -1, 1])
    gl, hl = cum[..., 0], cum[..., 1]
    gr, hr = total_g - gl, total_h - hl
    lam = params.reg_lambda
    parent = total_g * total_g / (total_h + lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = 0.5 * (gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent)
    gain = gain - params.gamma
    cols = np.arange(histogram.shape[1])[None, :]
    valid = (cols < (bins_per_feature[:, None] - 1)) & np.isfinite(gain)
    valid &= (hl >= params.min_child_weight) & (hr >= params.min_child_weight)
    gain = np.where(valid, gain, -np.inf)
    flat = int(np.argmax(gain))
    f, j = divmod(flat, histogram.shape[1])
    best = float(gain[f, j])
    if not best > 1e-12:
        return None
    return Split(
        feature=f,
        bin=j,
        gain=best,
        left=(float(gl[f, j]), float(hl[f, j])),
        right=(float(gr[f, j]), float(hr[f, j])),
    )
