import numpy as np
import pytest

from accord.errors import DatasetError
from accord.trees.sketch import bin_rows, cuts_from_counts, grid_edges, site_sketch


def test_summed_sketches_give_the_pooled_cuts() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 3)).astype(np.float32)
    edges = grid_edges(512, 8.0)

    parts = [site_sketch(x[i::3], edges) for i in range(3)]
    summed = cuts_from_counts(np.sum(parts, axis=0), edges, 16)
    pooled = cuts_from_counts(site_sketch(x, edges), edges, 16)

    for a, b in zip(summed, pooled, strict=True):
        np.testing.assert_array_equal(a, b)
    ranks = np.searchsorted(np.sort(x[:, 0]), summed[0]) / len(x)
    np.testing.assert_allclose(ranks, np.arange(1, 16) / 16, atol=0.02)


def test_a_binary_column_gets_one_cut_between_its_values() -> None:
    x = np.array([[0.0], [0.0], [1.0], [0.0]], dtype=np.float32)
    edges = grid_edges(64, 2.0)

    (cuts,) = cuts_from_counts(site_sketch(x, edges), edges, 8)

    assert cuts.size == 1 and 0.0 < cuts[0] <= 1.0
    np.testing.assert_array_equal(bin_rows(x, [cuts])[:, 0], [0, 0, 1, 0])


def test_bins_follow_xgboosts_less_than_rule() -> None:
    cuts = [np.array([0.5, 1.0], dtype=np.float32)]
    x = np.array([[0.49], [0.5], [0.99], [1.0], [7.0]], dtype=np.float32)

    np.testing.assert_array_equal(bin_rows(x, cuts)[:, 0], [0, 1, 1, 2, 2])


def test_non_finite_features_are_refused() -> None:
    with pytest.raises(DatasetError, match="impute"):
        site_sketch(np.array([[np.nan]]), grid_edges(8, 1.0))


def test_impossible_counts_are_refused() -> None:
    edges = grid_edges(8, 1.0)
    with pytest.raises(DatasetError, match="impossible"):
        cuts_from_counts(-np.ones((1, 8), dtype=np.int64), edges, 4)
