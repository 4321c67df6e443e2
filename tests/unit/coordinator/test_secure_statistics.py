"""Reading the federation's statistics from the unmasked ring sum."""

import numpy as np
import pytest

pytest.importorskip("cryptography")

from accord.coordinator.statistics import read_sum  # noqa: E402
from accord.data.preprocess import SufficientStats  # noqa: E402
from accord.data.sums import statistics_vector  # noqa: E402
from accord.errors import RunAborted  # noqa: E402
from accord.secagg.exact import LIMBS, ExactEncoding  # noqa: E402


def ring_total(vectors) -> np.ndarray:
    encoding = ExactEncoding(vectors[0].size)
    total = np.zeros(encoding.words, dtype=np.uint32)
    for vector in vectors:
        np.add(total, encoding.encode(vector), out=total)
    return total


def test_the_ring_sum_reads_as_the_exactly_summed_statistics():
    rng = np.random.default_rng(8)
    parts = [rng.normal(k, 1.0 + k, (20 + k, 3)) for k in range(4)]
    vectors = [statistics_vector(SufficientStats.of(p), len(p)) for p in parts]

    stats, rows = read_sum(ring_total(vectors), 4, 3)

    plain = SufficientStats.combine(SufficientStats.of(p) for p in parts)
    assert rows == 86
    assert stats.total.tobytes() == plain.total.tobytes()  # bit for bit
    assert stats.total_sq.tobytes() == plain.total_sq.tobytes()


def test_words_no_encoding_gives_are_refused_without_a_traceback():
    forged = np.full(4 * LIMBS, 2**32 - 1, dtype=np.uint32)

    with pytest.raises(RunAborted, match="impossible .*hides which site"):
        read_sum(forged, 2, 1)


def test_statistics_no_table_gives_are_refused():
    lying = statistics_vector(SufficientStats.of(np.ones((5, 1))), 5)
    lying[0] = 6.0  # six values in five rows

    with pytest.raises(RunAborted, match="6.0 values in 5 rows"):
        read_sum(ring_total([lying]), 1, 1)
