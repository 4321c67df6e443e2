import json

import numpy as np
import numpy.typing as npt
import pytest

from accord.trees import (
    MaskedSum,
    PlainSum,
    TreeParams,
    TreeSite,
    boost,
    to_xgboost_json,
)
from accord.trees.sketch import bin_rows
from accord.trees.tree import Tree

Rows = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]
PARAMS = TreeParams(trees=8, max_depth=3, learning_rate=0.3, bins=16)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    return float(
        (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2)
        / (pos.sum() * (~pos).sum())
    )


def _same_structure(a: Tree, b: Tree) -> None:
    assert (a.left, a.right, a.feature, a.bin) == (b.left, b.right, b.feature, b.bin)
    assert a.threshold == b.threshold


def test_one_site_is_the_pooled_histogram_tree_exactly(rows: Rows) -> None:
    x, y = rows

    federated = boost([TreeSite("only", x, y)], PARAMS, PlainSum())
    pooled = boost([TreeSite("pooled", x, y)], PARAMS, PlainSum())

    for a, b in zip(federated.trees, pooled.trees, strict=True):
        _same_structure(a, b)
        assert a.weight == b.weight


def test_sites_together_grow_the_pooled_trees(rows: Rows) -> None:
    x, y = rows
    sites = [TreeSite(f"s{i}", x[i::3], y[i::3]) for i in range(3)]

    federated = boost(sites, PARAMS, PlainSum())
    pooled = boost([TreeSite("pooled", x, y)], PARAMS, PlainSum())

    for a, b in zip(federated.trees, pooled.trees, strict=True):
        _same_structure(a, b)
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-12, atol=1e-15)
    assert _auc(y, federated.predict_proba(x)) > 0.75


def test_masked_sums_grow_the_same_trees(rows: Rows) -> None:
    pytest.importorskip("cryptography")
    x, y = rows
    params = TreeParams(trees=3, max_depth=3, bins=16)
    plain = boost(
        [TreeSite(f"s{i}", x[i::3], y[i::3]) for i in range(3)], params, PlainSum()
    )
    summer = MaskedSum(("s0", "s1", "s2"))

    masked = boost(
        [TreeSite(f"s{i}", x[i::3], y[i::3]) for i in range(3)], params, summer
    )

    assert summer.rounds == 1 + 3 * 3  # the sketch, then one sum per level
    for a, b in zip(plain.trees, masked.trees, strict=True):
        _same_structure(a, b)
        np.testing.assert_allclose(a.weight, b.weight, atol=1e-7)


def test_the_exported_json_predicts_identically_in_xgboost(rows: Rows) -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = rows
    booster = boost(
        [TreeSite("a", x[:300], y[:300]), TreeSite("b", x[300:], y[300:])],
        PARAMS,
        PlainSum(),
    )
    document = json.dumps(to_xgboost_json(booster)).encode()

    loaded = xgb.Booster(model_file=bytearray(document))
    predicted = loaded.predict(xgb.DMatrix(x))
    margins = loaded.predict(xgb.DMatrix(x), output_margin=True)

    np.testing.assert_allclose(predicted, booster.predict_proba(x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(margins, booster.margin(x), rtol=0, atol=1e-5)
    leaves = loaded.predict(xgb.DMatrix(x), pred_leaf=True)
    binned = bin_rows(x, booster.cuts)
    for t, tree in enumerate(booster.trees):  # routed by bins = by thresholds
        np.testing.assert_array_equal(leaves[:, t], tree.leaf_of_bins(binned))


def test_non_binary_labels_are_refused(rows: Rows) -> None:
    from accord.errors import DatasetError

    x, _ = rows
    with pytest.raises(DatasetError, match="0 or 1"):
        TreeSite("a", x, np.full(len(x), 2))
