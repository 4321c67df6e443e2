from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.data.partition import (
    Partition,
    dirichlet,
    iid,
    natural,
    quantity_skew,
    site_names,
    stratified_split,
)
from accord.errors import DatasetError

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def assert_disjoint_cover(p: Partition, n_rows: int) -> None:
    joined = np.concatenate(p.indices)
    assert len(joined) == n_rows
    assert np.array_equal(np.sort(joined), np.arange(n_rows))
    for index in p.indices:
        assert np.all(np.diff(index) > 0)  # sorted, no repeats


def same(a: Partition, b: Partition) -> bool:
    return a.names == b.names and all(
        np.array_equal(x, y) for x, y in zip(a.indices, b.indices, strict=True)
    )


@given(n_rows=st.integers(1, 400), n_sites=st.integers(1, 12), seed=seeds)
def test_iid_is_a_balanced_disjoint_cover(n_rows: int, n_sites: int, seed: int) -> None:
    if n_rows < n_sites:
        with pytest.raises(DatasetError):
            iid(n_rows, n_sites, seed)
        return
    p = iid(n_rows, n_sites, seed)
    assert_disjoint_cover(p, n_rows)
    assert max(p.sizes) - min(p.sizes) <= 1
    assert p.names == site_names(n_sites)
    assert same(p, iid(n_rows, n_sites, seed))


@given(n_rows=st.integers(20, 400), n_sites=st.integers(2, 8), seed=seeds)
def test_iid_different_seeds_differ(n_rows: int, n_sites: int, seed: int) -> None:
    assert not same(iid(n_rows, n_sites, seed), iid(n_rows, n_sites, seed + 1))


@given(
    n_rows=st.integers(10, 500),
    n_sites=st.integers(1, 10),
    min_size=st.integers(0, 20),
    alpha=st.floats(0.05, 50),
    seed=seeds,
)
def test_quantity_skew_covers_with_min_size(
    n_rows: int, n_sites: int, min_size: int, alpha: float, seed: int
) -> None:
    if n_rows < n_sites * min_size:
        with pytest.raises(DatasetError, match="fewer sites"):
            quantity_skew(n_rows, n_sites, seed, alpha=alpha, min_size=min_size)
        return
    p = quantity_skew(n_rows, n_sites, seed, alpha=alpha, min_size=min_size)
    assert_disjoint_cover(p, n_rows)
    assert min(p.sizes) >= min_size
    assert same(p, quantity_skew(n_rows, n_sites, seed, alpha=alpha, min_size=min_size))


def test_quantity_skew_small_alpha_gives_unequal_sizes() -> None:
    p = quantity_skew(5000, 10, seed=3, alpha=0.3, min_size=10)
    assert max(p.sizes) > 4 * min(p.sizes)


@settings(max_examples=60)
@given(
    labels=st.lists(st.integers(0, 4), min_size=40, max_size=300),
    n_sites=st.integers(1, 6),
    min_size=st.integers(1, 5),
    alpha=st.floats(0.1, 100),
    seed=seeds,
)
def test_dirichlet_covers_with_min_size(
    labels: list[int], n_sites: int, min_size: int, alpha: float, seed: int
) -> None:
    y = np.array(labels)
    try:
        p = dirichlet(y, n_sites, alpha, seed, min_size=min_size, max_tries=200)
    except DatasetError as exc:  # an honest refusal must say what to relax
        assert "raise alpha" in str(exc) or "fewer sites" in str(exc)
        return
    assert_disjoint_cover(p, len(y))
    assert min(p.sizes) >= min_size
    assert same(p, dirichlet(y, n_sites, alpha, seed, min_size=min_size, max_tries=200))


def class_shares(p: Partition, y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.array(
        [np.bincount(y[i], minlength=n_classes) / len(i) for i in p.indices]
    )


def test_dirichlet_large_alpha_is_close_to_iid() -> None:
    y = np.repeat(np.arange(3), 2000)
    p = dirichlet(y, 4, alpha=1000.0, seed=7)
    assert np.abs(class_shares(p, y, 3) - 1 / 3).max() < 0.05


def test_dirichlet_small_alpha_is_skewed() -> None:
    y = np.repeat(np.arange(3), 2000)
    p = dirichlet(y, 4, alpha=0.05, seed=7, min_size=10)
    dominant = class_shares(p, y, 3).max(axis=1)
    assert dominant.mean() > 0.8
    assert min(p.sizes) >= 10


def test_dirichlet_different_seeds_differ() -> None:
    y = np.repeat(np.arange(4), 100)
    assert not same(dirichlet(y, 4, 0.5, seed=1), dirichlet(y, 4, 0.5, seed=2))


def test_dirichlet_gives_up_with_an_actionable_error() -> None:
    y = np.zeros(100, dtype=np.int64)
    with pytest.raises(DatasetError, match="raise alpha, use fewer sites"):
        dirichlet(y, 10, alpha=0.01, seed=0, min_size=9, max_tries=20)


def test_natural_ranks_groups_by_size_then_name() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 9 + ["d"] * 2
    p = natural(values, 3)
    assert p.names == ("c", "a", "b")
    assert p.sizes == (9, 5, 5)
    assert np.array_equal(p.indices[1], np.arange(5, 10))


def test_natural_pool_adds_an_other_site() -> None:
    values = np.array(["x"] * 6 + ["y"] * 4 + ["z"] * 3 + ["w"])
    p = natural(values, 2, other="pool")
    assert p.names == ("x", "y", "other")
    assert_disjoint_cover(p, len(values))
    assert np.array_equal(p.indices[2], np.arange(10, 14))


def test_natural_all_groups_above_min_size() -> None:
    values = ["x"] * 6 + ["y"] * 4 + ["z"] * 2
    assert natural(values, None, min_size=3).names == ("x", "y")


def test_natural_refuses_more_sites_than_big_groups() -> None:
    with pytest.raises(DatasetError, match="at most 2 natural sites"):
        natural(["x"] * 6 + ["y"] * 4 + ["z"] * 2, 3, min_size=3)


def test_natural_pooled_name_avoids_a_real_other_group() -> None:
    p = natural(["other"] * 5 + ["x"] * 3 + ["y"], 2, other="pool")
    assert p.names == ("other", "x", "other (pooled)")


@given(
    values=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=200),
    n_sites=st.integers(1, 7),
)
def test_natural_pool_is_a_disjoint_cover(values: list[str], n_sites: int) -> None:
    n_groups = len(set(values))
    if n_sites > n_groups:
        with pytest.raises(DatasetError):
            natural(values, n_sites, other="pool")
        return
    p = natural(values, n_sites, other="pool")
    assert_disjoint_cover(p, len(values))
    assert len(p) == n_sites + (n_sites < n_groups)
    for name, index in zip(p.names[:n_sites], p.indices, strict=False):
        assert {values[i] for i in index} == {name}


@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=300),
    fraction=st.floats(0.0, 0.9),
    seed=seeds,
)
def test_stratified_split_keeps_each_class_share(
    labels: list[int], fraction: float, seed: int
) -> None:
    y = np.array(labels)
    kept, held = stratified_split(y, fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(y)))
    expected = round(fraction * len(y))
    if fraction > 0 and len(y) >= 2:
        expected = min(max(expected, 1), len(y) - 1)
    assert len(held) == expected
    for c in np.unique(y):
        share = np.sum(y == c) * expected / len(y)
        assert abs(np.sum(y[held] == c) - share) < 1 + 1e-9
    k2, h2 = stratified_split(y, fraction, seed)
    assert np.array_equal(kept, k2) and np.array_equal(held, h2)


def test_stratified_split_works_for_a_tiny_single_class_site() -> None:
    kept, held = stratified_split(np.zeros(3, dtype=np.int64), 0.2, seed=0)
    assert len(kept) == 2 and len(held) == 1


def test_stratified_split_rejects_bad_fraction() -> None:
    with pytest.raises(DatasetError, match=r"\[0, 1\)"):
        stratified_split(np.zeros(3), 1.0, seed=0)


def test_partition_validates_and_freezes() -> None:
    with pytest.raises(ValueError, match="unique"):
        Partition(("a", "a"), (np.arange(1), np.arange(1, 2)))
    p = iid(10, 2, seed=0)
    with pytest.raises(ValueError, match="read-only"):
        p.indices[0][0] = 5


def test_site_names_sort_past_one_hundred() -> None:
    assert site_names(3) == ("site-00", "site-01", "site-02")
    names = site_names(101)
    assert names[5] == "site-005" and list(names) == sorted(names)
