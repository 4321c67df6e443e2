"""One regression tree, grown level by level from summed histograms.

:func:`grow_tree` is the coordinator's side of a tree: it asks for the summed
histograms of the nodes of one level (``histograms``: plain or secure sums of the
sites' own, it does not know which), picks each node's best split
(:func:`~accord.trees.split.best_split`), tells the sites where their rows go
(``route``), and repeats down to ``max_depth``; what is left are leaves, weighted
``eta * -G / (H + lambda)``. So sites see only cut points, splits and leaf values,
and the coordinator only sums.

A :class:`Tree` keeps XGBoost's node arrays (children, parents, split feature and
threshold, weights, gains, hessian sums), so the export is a transcription.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accord.trees.params import TreeParams
from accord.trees.split import Split, best_split, leaf_weight

__all__ = ["Route", "Tree", "grow_tree"]

Floats = npt.NDArray[np.float64]
#: A level's splits: node -> (feature, bin, left child, right child).
Route = dict[int, tuple[int, int, int, int]]


@dataclass(slots=True)
class Tree:
    """A binary tree in XGBoost's array layout; node 0 is the root."""

    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    feature: list[int] = field(default_factory=list)
    bin: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)
    hess: list[float] = field(default_factory=list)

    def add(self, parent: int, grad: float, hess: float, params: TreeParams) -> int:
        """A new leaf under ``parent`` (-1 for the root); its id."""
        self.left.append(-1)
        self.right.append(-1)
        self.parent.append(parent)
        self.feature.append(0)
        self.bin.append(-1)
        self.threshold.append(0.0)
        self.weight.append(params.learning_rate * leaf_weight(grad, hess, params))
        self.gain.append(0.0)
        self.hess.append(hess)
        return len(self.left) - 1

    @property
    def nodes(self) -> int:
        """Number of nodes, leaves included."""
        return len(self.left)

    def leaf_of_bins(self, binned: npt.NDArray[np.uint16]) -> npt.NDArray[np.int64]:
        """The leaf each row of bin indices lands in."""
        at = np.zeros(binned.shape[0], dtype=np.int64)
        return self._descend(
            at, lambda node, rows: binned[rows, self.feature[node]] <= self.bin[node]
        )

    def predict(self, x: npt.ArrayLike) -> Floats:
        """Each row's leaf weight, routing float32 ``x`` by thresholds (``x < t``)."""
        data = np.asarray(x, dtype=np.float32)
        at = np.zeros(data.shape[0], dtype=np.int64)
        leaves = self._descend(
            at,
            lambda node, rows: (
                data[rows, self.feature[node]] < np.float32(self.threshold[node])
            ),
        )
        return np.asarray(self.weight, dtype=np.float64)[leaves]

    def _descend(
        self,
        at: npt.NDArray[np.int64],
        goes_left: Callable[[int, npt.NDArray[np.int64]], npt.NDArray[np.bool_]],
    ) -> npt.NDArray[np.int64]:
        for node in range(self.nodes):  # parents come before their children
            if self.left[node] < 0:
                continue
            rows = np.flatnonzero(at == node)
            left = goes_left(node, rows)
            at[rows] = np.where(left, self.left[node], self.right[node])
        return at


def grow_tree(
    histograms: Callable[[Sequence[int]], Floats],
    route: Callable[[Route], None],
    *,
    cuts: Sequence[npt.NDArray[np.float32]],
    params: TreeParams,
) -> Tree:
    """Grow one tree level-wise to ``params.max_depth``.

    ``histograms(nodes)`` returns the federation's summed histograms of ``nodes``
    (``nodes x features x bins x 2``); ``route(splits)`` moves the sites' rows to
    the children of the level's split nodes.
    """
    bins_per_feature = np.array([len(c) + 1 for c in cuts], dtype=np.int64)
    tree = Tree()
    root = histograms([0])[0]
    tree.add(-1, float(root[0, :, 0].sum()), float(root[0, :, 1].sum()), params)
    frontier = [0]
    for depth in range(params.max_depth):
        hists = root[None] if depth == 0 else histograms(frontier)
        splits: Route = {}
        for node, hist in zip(frontier, hists, strict=True):
            found = best_split(hist, bins_per_feature, params)
            if found is not None:
                splits[node] = _split(tree, node, found, cuts, params)
        if not splits:
            break
        route(splits)
        frontier = [child for s in splits.values() for child in s[2:]]
    return tree


def _split(
    tree: Tree,
    node: int,
    found: Split,
    cuts: Sequence[npt.NDArray[np.float32]],
    params: TreeParams,
) -> tuple[int, int, int, int]:
    left = tree.add(node, *found.left, params)
    right = tree.add(node, *found.right, params)
    tree.left[node], tree.right[node] = left, right
    tree.feature[node], tree.bin[node] = found.feature, found.bin
    tree.threshold[node] = float(cuts[found.feature][found.bin])
    tree.gain[node] = found.gain
    return found.feature, found.bin, left, right
