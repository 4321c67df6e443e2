"""Coordinate-wise trimmed mean of updates, a robust rule (Yin et al., 2018).

For each coordinate, the ``k = floor(beta * n)`` smallest and ``k`` largest of the
``n`` values are dropped and the rest averaged: as ``scipy.stats.trim_mean`` and
Flower's ``aggregate_trimmed_avg`` do, without sorting the stacked updates (see
:mod:`accord.aggregation.order_statistics`). As long as fewer than ``k`` updates are
outliers at a coordinate, the result lies within the range of the honest values there.

Unweighted, like the median: trusting reported example counts would hand an attacker
the weight it needs. Averages are summed in the updates' dtype (float32 for float16);
the kept values are bounded by the honest range, so this loses nothing that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.aggregation.order_statistics import mean_of_order_statistics
from accord.errors import ConfigError
from accord.params import Params

__all__ = ["check_beta", "trimmed_count", "coordinate_trimmed_mean"]


def check_beta(beta: float) -> float:
    """Return ``beta`` as a float if ``0 <= beta < 0.5``, else raise ConfigError."""
    value = float(beta)
    if not 0.0 <= value < 0.5:
        raise ConfigError(
            f"must be at least 0 and below 0.5 (the fraction cut from each end), "
            f"got {beta!r}",
            key="beta",
        )
    return value


def trimmed_count(n: int, beta: float) -> int:
    """How many values are cut from each end of ``n``: ``floor(beta * n)``."""
    return int(check_beta(beta) * n)


def coordinate_trimmed_mean(
    updates: Sequence[Params], beta: float = 0.1, *, workers: int | None = None
) -> Params:
    """Coordinate-wise mean after cutting ``floor(beta * n)`` values from each end.

    Raises :class:`~accord.errors.ConfigError` unless ``0 <= beta < 0.5`` (which
    always leaves at least one value), ``ValueError`` if ``updates`` is empty and
    :class:`~accord.errors.UpdateRejected` if their structures differ. NaN in any
    update's coordinate gives NaN there: it is never silently trimmed away.
    """
    n = len(updates)
    k = trimmed_count(n, beta)
    if n - 2 * k < 1:  # cannot happen for beta < 0.5; kept as the invariant's guard
        raise ConfigError(
            f"trimming {k} of {n} from each end leaves nothing", key="beta"
        )
    return mean_of_order_statistics(updates, k, n - k - 1, workers=workers)
