"""A site's side of federated boosting: its rows never leave it.

A :class:`TreeSite` holds its feature matrix and 0/1 labels, and answers the
coordinator with sums only: its grid counts for the sketch
(:meth:`~TreeSite.sketch`) and, per tree level, the gradient/hessian histograms
of the nodes being split (:meth:`~TreeSite.histograms`). From the coordinator it
receives only the cut points, the level's splits (:meth:`~TreeSite.route`) and,
implicitly, the leaf weights of each finished tree (:meth:`~TreeSite.finish`),
which it adds to its rows' raw scores for the next tree's gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError
from accord.trees.histogram import build_histograms, logistic_gradients
from accord.trees.sketch import bin_rows, site_sketch
from accord.trees.tree import Route, Tree

__all__ = ["TreeSite"]

Floats = npt.NDArray[np.float64]


class TreeSite:
    """One site's rows, its current raw scores and where each row sits in the tree."""

    def __init__(self, name: str, x: npt.ArrayLike, y: npt.ArrayLike) -> None:
        self.name = name
        self._x = np.asarray(x, dtype=np.float32)
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.shape[0] != self._x.shape[0]:
            raise DatasetError(f"site {name!r}: one label per row is needed")
        if not np.isin(labels, (0, 1)).all():
            raise DatasetError(
                f"site {name!r}: gradient-boosted trees in accord fit binary "
                "classification; the labels must be 0 or 1"
            )
        self._y = labels.astype(np.float64)
        self._binned: npt.NDArray[np.uint16] | None = None
        self._margin = np.zeros(self._x.shape[0], dtype=np.float64)
        self._positions = np.zeros(self._x.shape[0], dtype=np.int64)
        self._grad = self._hess = self._margin

    @property
    def rows(self) -> int:
        """Training rows at this site."""
        return int(self._x.shape[0])

    def sketch(self, edges: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """Row counts per feature and cell of the shared grid."""
        return site_sketch(self._x, edges)

    def set_cuts(self, cuts: Sequence[npt.NDArray[np.float32]]) -> None:
        """Bin the rows by the federation's cut points."""
        self._binned = bin_rows(self._x, cuts)

    def start_tree(self) -> None:
        """Gradients at the current scores; every row back at the root."""
        self._grad, self._hess = logistic_gradients(self._margin, self._y)
        self._positions = np.zeros(self.rows, dtype=np.int64)

    def histograms(self, nodes: Sequence[int], bins: int) -> Floats:
        """The site's histograms of ``nodes`` (``nodes x features x bins x 2``)."""
        binned = self._need_bins()
        return build_histograms(
            binned, self._grad, self._hess, self._positions, nodes, bins
        )

    def route(self, splits: Route) -> None:
        """Move the rows of each split node to its children."""
        binned = self._need_bins()
        moved = self._positions.copy()
        for node, (feature, cut, left, right) in splits.items():
            here = self._positions == node
            goes_left = binned[:, feature] <= cut
            moved[here & goes_left] = left
            moved[here & ~goes_left] = right
        self._positions = moved

    def finish(self, tree: Tree) -> None:
        """Add the finished tree's leaf weights to the rows' raw scores."""
        self._margin = self._margin + np.asarray(tree.weight)[self._positions]

    def _need_bins(self) -> npt.NDArray[np.uint16]:
        if self._binned is None:
            raise RuntimeError("the site has no cut points yet (set_cuts first)")
        return self._binned
