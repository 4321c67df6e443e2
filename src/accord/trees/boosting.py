"""The coordinator's boosting loop, and the model it builds.

:func:`boost` runs one federated gradient-boosted ensemble over in-process
:class:`~accord.trees.site.TreeSite` s:

1. the shared grid's counts are summed (:class:`~accord.trees.summing.Summer`)
   and the cut points read off them (:mod:`accord.trees.sketch`);
2. for each tree, every site computes its gradients; for each level the sites'
   histograms of the level's nodes are summed and the coordinator picks the
   splits (:func:`~accord.trees.tree.grow_tree`), which the sites apply;
3. each finished tree's leaf weights go back to the sites.

The summer decides what the coordinator sees: each part (:class:`PlainSum`) or
only totals (:class:`MaskedSum`). With one site, or with a plain sum of sites
that together hold the pooled rows, the trees are those of the same histogram
algorithm on the pooled data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError
from accord.trees.params import TreeParams
from accord.trees.site import TreeSite
from accord.trees.sketch import cuts_from_counts, grid_edges
from accord.trees.summing import Summer
from accord.trees.tree import Route, Tree, grow_tree

__all__ = ["Booster", "boost"]

logger = logging.getLogger(__name__)

Floats = npt.NDArray[np.float64]


@dataclass(slots=True)
class Booster:
    """A binary classifier: the sum of its trees' weights, through the sigmoid.

    The raw score starts at 0 (XGBoost's ``base_score = 0.5``).
    """

    features: int
    cuts: list[npt.NDArray[np.float32]]
    params: TreeParams
    trees: list[Tree] = field(default_factory=list)

    def margin(self, x: npt.ArrayLike) -> Floats:
        """Raw scores (log-odds) of the rows of ``x``."""
        data = np.asarray(x, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != self.features:
            raise DatasetError(
                f"expected rows of {self.features} feature(s), got shape {data.shape}"
            )
        out = np.zeros(data.shape[0], dtype=np.float64)
        for tree in self.trees:
            out += tree.predict(data)
        return out

    def predict_proba(self, x: npt.ArrayLike) -> Floats:
        """``P(y = 1)`` of each row."""
        return 1.0 / (1.0 + np.exp(-self.margin(x)))


def boost(
    sites: Sequence[TreeSite],
    params: TreeParams,
    summer: Summer,
    *,
    on_tree: Callable[[int, Booster], None] | None = None,
) -> Booster:
    """Fit ``params.trees`` trees over ``sites``, summing with ``summer``.

    ``on_tree(t, booster)`` runs after tree ``t`` (1-based), e.g. to evaluate and
    record it. Raises :class:`DatasetError` when the sites disagree on features.
    """
    if not sites:
        raise DatasetError("boosting needs at least one site")
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        raise DatasetError("site names must be unique")
    edges = grid_edges(params.sketch_cells, params.sketch_range)
    counts = summer.counts({s.name: s.sketch(edges) for s in sites})
    cuts = cuts_from_counts(counts, edges, params.bins)
    for s in sites:
        s.set_cuts(cuts)
    bins = max(len(c) for c in cuts) + 1
    booster = Booster(features=len(cuts), cuts=cuts, params=params)

    def histograms(nodes: Sequence[int]) -> Floats:
        return summer.floats({s.name: s.histograms(nodes, bins) for s in sites})

    def route(splits: Route) -> None:
        for s in sites:
            s.route(splits)

    for t in range(1, params.trees + 1):
        for s in sites:
            s.start_tree()
        tree = grow_tree(histograms, route, cuts=cuts, params=params)
        for s in sites:
            s.finish(tree)
        booster.trees.append(tree)
        logger.debug("tree %d: %d node(s)", t, tree.nodes)
        if on_tree is not None:
            on_tree(t, booster)
    return booster
