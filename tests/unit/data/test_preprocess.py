from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.data.datasets import load_table
from accord.data.preprocess import (
    Encoder,
    FeatureMatrix,
    SufficientStats,
    extract_features,
)


def features(numeric: np.ndarray, codes: np.ndarray | None = None) -> FeatureMatrix:
    codes = np.zeros((len(numeric), 0), np.int64) if codes is None else codes
    levels = (("colour", ("blue", "red")),) if codes.shape[1] else ()
    names = tuple(f"n{j}" for j in range(numeric.shape[1]))
    return FeatureMatrix(numeric, codes, names, levels)


def with_gaps(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    values = rng.normal(10.0, 3.0, (rows, cols))
    values[rng.random((rows, cols)) < 0.2] = np.nan
    return values


@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6), seed=st.integers(0, 99)
)
def test_summed_site_stats_equal_pooled_stats(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = [with_gaps(rng, n, 3) for n in sizes]
    summed = SufficientStats.combine(SufficientStats.of(p) for p in parts)
    pooled = SufficientStats.of(np.concatenate(parts))
    np.testing.assert_allclose(summed.count, pooled.count)
    np.testing.assert_allclose(summed.total, pooled.total, rtol=1e-12)
    np.testing.assert_allclose(summed.total_sq, pooled.total_sq, rtol=1e-12)


def test_stats_match_numpy_ignoring_missing() -> None:
    values = with_gaps(np.random.default_rng(0), 500, 4)
    stats = SufficientStats.of(values)
    np.testing.assert_allclose(stats.mean, np.nanmean(values, axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, np.nanstd(values, axis=0), rtol=1e-9)


def test_encoder_fit_uses_train_rows_of_every_site_and_nothing_else() -> None:
    rng = np.random.default_rng(1)
    train = [with_gaps(rng, n, 2) for n in (30, 70, 5)]
    encoder = Encoder.fit(features(t) for t in train)
    pooled = np.concatenate(train)
    np.testing.assert_allclose(encoder.mean, np.nanmean(pooled, axis=0), rtol=1e-12)
    np.testing.assert_allclose(encoder.scale, np.nanstd(pooled, axis=0), rtol=1e-9)
    before = (encoder.mean.copy(), encoder.scale.copy())
    encoder.transform(features(np.full((4, 2), 1e9)))  # an outlandish holdout
    assert np.array_equal(encoder.mean, before[0])
    assert np.array_equal(encoder.scale, before[1])


def test_transform_standardizes_imputes_and_one_hot_encodes() -> None:
    numeric = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    codes = np.array([[0], [1], [-1]])
    encoder = Encoder.fit([features(numeric, codes)])
    out = encoder.transform(features(numeric, codes))
    assert out.dtype == np.float32 and out.shape == (3, 4)
    np.testing.assert_allclose(out[:, 0], [-1.0, 1.0, 0.0])  # missing -> mean -> 0
    np.testing.assert_allclose(out[:, 1], 0.0)  # constant column, not NaN
    np.testing.assert_array_equal(out[:, 2:], [[1, 0], [0, 1], [0, 0]])
    assert encoder.feature_names == ("n0", "n1", "colour=blue", "colour=red")


def test_extract_features_from_a_csv_table(
    csv_path: Path, csv_options: dict[str, Any]
) -> None:
    table = load_table(f"csv:{csv_path}", **csv_options)
    matrix = extract_features(table)
    assert matrix.numeric_names == ("a", "b")
    assert matrix.levels == (("colour", ("blue", "green", "missing", "red")),)
    assert np.isnan(matrix.numeric[:, 1]).any()
    assert (matrix.codes >= 0).all()
    assert len(matrix.rows(np.array([0, 2]))) == 2


def test_log_columns_are_transformed_before_scaling() -> None:
    table = load_table("covid_testing")
    matrix = extract_features(table)
    j = matrix.numeric_names.index("col_rec_tat")
    raw = table.frame["col_rec_tat"].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(matrix.numeric[:, j], np.log1p(raw))
    with pytest.raises(ValueError, match="at least one site"):
        SufficientStats.combine([])
