"""Federated gradient-boosted trees: histogram-based, horizontal, XGBoost-compatible.

Sites keep their rows; the federation agrees on cut points through a quantile
sketch that is a sum (:mod:`~accord.trees.sketch`), sites send per-node
gradient/hessian histograms (:mod:`~accord.trees.histogram`), the coordinator
adds them, plainly or under secure aggregation (:mod:`~accord.trees.summing`),
and picks splits with XGBoost's gain (:mod:`~accord.trees.split`), growing each
tree level-wise (:mod:`~accord.trees.tree`, :mod:`~accord.trees.boosting`). The
model is exported as XGBoost JSON (:mod:`~accord.trees.export`). Pure numpy;
``docs/trees.md`` explains the protocol and what each party sees.
"""

from accord.trees.boosting import Booster, boost
from accord.trees.export import to_xgboost_json, write_xgboost_json
from accord.trees.params import TreeParams
from accord.trees.site import TreeSite
from accord.trees.summing import MaskedSum, PlainSum, Summer

__all__ = [
    "Booster",
    "MaskedSum",
    "PlainSum",
    "Summer",
    "TreeParams",
    "TreeSite",
    "boost",
    "to_xgboost_json",
    "write_xgboost_json",
]
