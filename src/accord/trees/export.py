"""The ensemble as an XGBoost JSON model that ``xgboost.Booster`` loads.

XGBoost's JSON model format (``Booster.save_model("model.json")``) is a standard
that many tools read (XGBoost in every language, ONNX converters, Treelite). Each
:class:`~accord.trees.tree.Tree` already keeps XGBoost's node arrays, so the
export is a transcription: internal nodes carry their float32 threshold in
``split_conditions`` (a row goes left when ``x < threshold``, as the federation
routed it), leaves carry their weight there; ``base_score = 0.5`` (raw score 0)
and the ``binary:logistic`` objective. Written by hand, without xgboost, so a
federation can export its model where xgboost is not installed; the round trip
is tested against xgboost itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accord.trees.boosting import Booster
from accord.trees.tree import Tree

__all__ = ["to_xgboost_json", "write_xgboost_json"]

_NO_PARENT = 2147483647


def _tree_json(tree: Tree, index: int, features: int) -> dict[str, Any]:
    n = tree.nodes
    leaf = [tree.left[i] < 0 for i in range(n)]
    return {
        "base_weights": [float(w) for w in tree.weight],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": [0] * n,
        "id": index,
        "left_children": list(tree.left),
        "loss_changes": [float(g) for g in tree.gain],
        "parents": [_NO_PARENT if p < 0 else p for p in tree.parent],
        "right_children": list(tree.right),
        "split_conditions": [
            float(tree.weight[i]) if leaf[i] else float(tree.threshold[i])
            for i in range(n)
        ],
        "split_indices": [0 if leaf[i] else tree.feature[i] for i in range(n)],
        "split_type": [0] * n,
        "sum_hessian": [float(h) for h in tree.hess],
        "tree_param": {
            "num_deleted": "0",
            "num_feature": str(features),
            "num_nodes": str(n),
            "size_leaf_vector": "1",
        },
    }


def to_xgboost_json(
    booster: Booster, *, feature_names: Sequence[str] = ()
) -> dict[str, Any]:
    """The XGBoost JSON document of ``booster``, with the features' names if given.

    Raises ValueError when names are given but not one per feature.
    """
    count = len(booster.trees)
    names = list(feature_names)
    if names and len(names) != booster.features:
        raise ValueError(
            f"{len(names)} feature name(s) for a model of {booster.features} features"
        )
    return {
        "learner": {
            "attributes": {},
            "feature_names": names,
            "feature_types": ["float"] * len(names),
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {
                        "num_parallel_tree": "1",
                        "num_trees": str(count),
                    },
                    "iteration_indptr": list(range(count + 1)),
                    "tree_info": [0] * count,
                    "trees": [
                        _tree_json(t, i, booster.features)
                        for i, t in enumerate(booster.trees)
                    ],
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": "5E-1",
                "boost_from_average": "0",
                "num_class": "0",
                "num_feature": str(booster.features),
                "num_target": "1",
            },
            "objective": {
                "name": "binary:logistic",
                "reg_loss_param": {"scale_pos_weight": "1"},
            },
        },
        "version": [2, 1, 0],
    }


def write_xgboost_json(booster: Booster, path: str | Path) -> Path:
    """Write ``booster`` as XGBoost JSON to ``path``; the path."""
    out = Path(path)
    out.write_text(json.dumps(to_xgboost_json(booster)), encoding="utf-8")
    return out
