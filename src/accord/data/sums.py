"""The preprocessing statistics as one vector, for a secure sum, and its checks.

When a federation runs under secure aggregation, no site's counts, sums and sums
of squares may reach the coordinator one by one: each site lays its statistics
out as one float64 vector (:func:`statistics_vector`), the vectors are summed
under secure aggregation (:mod:`accord.coordinator.statistics`, exactly, with
:class:`~accord.secagg.exact.ExactEncoding`), and the coordinator reads the
federation's statistics back from the sum (:func:`statistics_from_sum`).

The layout, for ``k`` numeric columns in the federation's schema order: the ``k``
counts, the ``k`` sums, the ``k`` sums of squares, then the number of training
rows. The coordinator cannot check one site's statistics any more (it never sees
them), so it checks the sum: a count that is not a whole number or exceeds the
training rows, a negative sum of squares, or sums that no real values give
(``sum^2 > count * sum of squares``) mean a site sent something no table gives,
and the fit is refused (without knowing which site: docs/security.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from accord.data.preprocess import SufficientStats
from accord.errors import DatasetError

__all__ = ["statistics_from_sum", "statistics_length", "statistics_vector"]

Floats = npt.NDArray[np.float64]


def statistics_length(columns: int) -> int:
    """Values in the vector of ``columns`` numeric columns."""
    return 3 * columns + 1


def statistics_vector(stats: SufficientStats, train_rows: int) -> Floats:
    """One site's statistics and training rows, laid out for the secure sum."""
    return np.concatenate(
        [stats.count, stats.total, stats.total_sq, [float(train_rows)]]
    ).astype(np.float64)


def statistics_from_sum(total: Floats, columns: int) -> tuple[SufficientStats, int]:
    """The federation's statistics and training rows from the summed vectors.

    Raises :class:`DatasetError` when no honest sites' tables give ``total``.
    """
    if total.shape != (statistics_length(columns),):
        raise DatasetError(
            f"the summed statistics hold {total.size} values; {columns} column(s) "
            f"take {statistics_length(columns)}"
        )
    if not np.isfinite(total).all():
        raise DatasetError(
            "the summed statistics are not finite: a site's values overflow float64 "
            "sums; log-transform or rescale the column"
        )
    count, sums, squares = (total[i * columns : (i + 1) * columns] for i in range(3))
    rows = float(total[-1])
    if rows != math.floor(rows) or not 0 < rows < 2**53:
        raise _impossible(f"the training rows add up to {rows}")
    for j in range(columns):
        c, t, q = float(count[j]), float(sums[j]), float(squares[j])
        if c != math.floor(c) or not 0 <= c <= rows:
            raise _impossible(f"column {j + 1} has {c} values in {rows:.0f} rows")
        if q < 0 or t * t > c * q * (1 + 1e-9) + 1e-300:
            raise _impossible(f"column {j + 1}'s sum {t} and sum of squares {q}")
    stats = SufficientStats(count.copy(), sums.copy(), squares.copy())
    return stats, int(rows)


def _impossible(what: str) -> DatasetError:
    return DatasetError(
        f"the securely summed statistics are impossible ({what}): a site sent an "
        "input that no table gives, and secure aggregation hides which; check the "
        "sites' accord versions and logs"
    )
