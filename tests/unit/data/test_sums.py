"""The statistics vector of the secure sum, and the checks of the summed vector."""

import numpy as np
import pytest

from accord.data.preprocess import SufficientStats
from accord.data.sums import statistics_from_sum, statistics_length, statistics_vector
from accord.errors import DatasetError


def sites(seed: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(k * 3.0, k + 1.0, (n, 2)) for k, n in enumerate((9, 14, 5))]
    parts[1][::4, 1] = np.nan  # missing values count nowhere
    return parts


def test_the_summed_vectors_give_the_pooled_statistics_and_rows():
    parts = sites()
    summed = sum(statistics_vector(SufficientStats.of(p), len(p)) for p in parts)

    stats, rows = statistics_from_sum(summed, 2)

    pooled = SufficientStats.of(np.concatenate(parts))
    assert rows == 28 and statistics_length(2) == 7 == summed.size
    np.testing.assert_array_equal(stats.count, pooled.count)
    np.testing.assert_allclose(stats.total, pooled.total, rtol=1e-13)
    np.testing.assert_allclose(stats.total_sq, pooled.total_sq, rtol=1e-13)


def vector(count=10.0, total=5.0, squares=10.0, rows=10.0) -> np.ndarray:
    return np.array([count, total, squares, rows])


@pytest.mark.parametrize(
    ("summed", "why"),
    [
        (vector(count=10.5), "10.5 values"),
        (vector(count=11.0), "11.0 values in 10 rows"),  # one past the rows
        (vector(count=-1.0), "-1.0 values"),
        (vector(squares=-1e-9), "sum of squares"),
        (vector(total=10.1), "sum 10.1"),  # sum**2 > count * squares
        (vector(rows=0.0), "training rows add up to 0.0"),
        (vector(rows=2.5), "training rows add up to 2.5"),
    ],
)
def test_a_sum_no_tables_give_is_refused(summed, why):
    with pytest.raises(DatasetError, match="impossible") as refused:
        statistics_from_sum(summed, 1)
    assert why in str(refused.value)


def test_the_bounds_themselves_are_accepted():
    # count == rows, and sum**2 == count * squares (every value the same).
    stats, rows = statistics_from_sum(vector(count=10.0, total=10.0), 1)
    assert rows == 10 and stats.std[0] == 0.0


def test_an_overflowed_sum_says_what_to_do():
    with pytest.raises(DatasetError, match="log-transform or rescale"):
        statistics_from_sum(vector(squares=np.inf), 1)
    with pytest.raises(DatasetError, match="hold 3 values; 1 column"):
        statistics_from_sum(np.zeros(3), 1)
