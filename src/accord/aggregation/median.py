"""Coordinate-wise median of updates, a robust aggregation rule (Yin et al., 2018).

Each output coordinate is the median of that coordinate across the updates (the mean
of the two middle values for an even count), exactly as ``np.median(np.stack(updates),
axis=0)`` computes it, bit for bit, but without stacking and roughly an order of
magnitude faster for cross-silo federation sizes: see
:mod:`accord.aggregation.order_statistics` for how.

The median is unweighted: a weight would let one participant claim a large example
count and move the median, which is what a robust rule exists to prevent.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.aggregation.order_statistics import mean_of_order_statistics
from accord.params import Params

__all__ = ["coordinate_median"]


def coordinate_median(
    updates: Sequence[Params], *, workers: int | None = None
) -> Params:
    """Coordinate-wise median of ``updates``, in each tensor's dtype.

    Raises ``ValueError`` if ``updates`` is empty and
    :class:`~accord.errors.UpdateRejected` if their structures differ. A NaN in a
    coordinate of any update makes that output coordinate NaN, as in numpy.
    """
    n = len(updates)
    return mean_of_order_statistics(updates, (n - 1) // 2, n // 2, workers=workers)
