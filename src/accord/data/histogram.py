"""A fixed-bin quantile sketch on the federation's scale, and small-count suppression.

Why fixed bins, and why these. A site's profile must be *mergeable* (the
federation's distribution is the sum of the sites'), *comparable* (a site's
distribution against the others', bin for bin), cheap, and must not reveal
individual values. A KLL or t-digest sketch keeps actual values as its
centroids or samples, which is exactly what a site may not reveal; a histogram
reveals only how many values fall in a range. Its bins must be the same at every
site without any site seeing another's data: they are fixed on the *federation's*
standardized scale, ``z = (x - mean) / scale`` with the mean and scale of the
fitted preprocessing (:class:`~accord.data.preprocess.Encoder`, fitted from summed
statistics before any profile is sent), at the edges :data:`Z_EDGES` (half a
standard deviation apart from -3 to 3, so :data:`BINS` = 14 bins with the two
open tails). Merging is adding counts; a quantile is read back by linear
interpolation inside its bin (:func:`quantiles`), so it is accurate to half a
standard deviation of the federation, which is what a drift check and a data
card need, and values beyond three standard deviations show as "at least 3".

Suppression (:func:`suppress`): a cell whose count is from 1 to ``k - 1`` is
reported as suppressed (None), not revealed. Because a histogram's total is often
known (the site's row count), one suppressed cell could be recomputed from the
others; so when exactly one cell of a histogram is suppressed, the smallest other
non-empty cell is suppressed with it (secondary suppression, as statistical
offices do for tables). :func:`estimate` fills suppressed cells back for the
drift measures: their known total, when there is one, shared as the rest of the
federation's counts are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "BINS",
    "Z_EDGES",
    "Cells",
    "bin_counts",
    "cdf",
    "estimate",
    "quantiles",
    "suppress",
]

#: Bin edges on the federation's standardized scale.
Z_EDGES: tuple[float, ...] = tuple(float(z) for z in np.arange(-3.0, 3.01, 0.5))
#: Bins of the sketch: one below the first edge, one between each pair, one above.
BINS = len(Z_EDGES) + 1
#: A histogram as reported: each cell's count, or None where it is suppressed.
Cells = tuple[int | None, ...]
Floats = npt.NDArray[np.float64]


def bin_counts(z: Floats) -> npt.NDArray[np.int64]:
    """How many of the finite values ``z`` fall in each bin (NaN are left out)."""
    present = z[~np.isnan(z)]
    index = np.searchsorted(np.asarray(Z_EDGES), present, side="right")
    return np.bincount(index, minlength=BINS).astype(np.int64)


def suppress(counts: Sequence[int], k: int) -> Cells:
    """Each count, or None where it is from 1 to ``k - 1`` (see the module)."""
    cells: list[int | None] = [None if 0 < c < k else int(c) for c in counts]
    hidden = [i for i, c in enumerate(cells) if c is None]
    if len(hidden) == 1 and len(cells) > 1:
        others = [(c, i) for i, c in enumerate(cells) if c is not None]
        positive = [pair for pair in others if pair[0] > 0]
        _, second = min(positive or others)
        cells[second] = None
    return tuple(cells)


def estimate(
    cells: Cells, total: float | None, k: int, prior: Floats | None = None
) -> Floats:
    """Counts with suppressed cells filled in (for drift measures, never shown).

    What the shown cells leave of ``total`` (when it is known; else ``(k - 1) /
    2`` per suppressed cell) is shared among the suppressed cells in proportion
    to ``prior`` (the federation's pooled counts: what the cells hold if this
    site is like the rest, so filling in never invents a difference), evenly
    without one. (No cap at ``k - 1``: a cell suppressed as the second of its
    histogram may hold more.)
    """
    hidden = np.array([c is None for c in cells])
    out = np.array([0.0 if c is None else float(c) for c in cells], dtype=np.float64)
    if not hidden.any():
        return out
    if total is None:
        unknown = max(k - 1, 0) / 2 * int(hidden.sum())
    else:
        unknown = max(total - float(out.sum()), 0.0)
    weights = np.ones(len(cells)) if prior is None else np.asarray(prior, float)
    weights = np.where(hidden, np.maximum(weights, 0.0), 0.0)
    if weights.sum() <= 0:
        weights = hidden.astype(np.float64)
    out[hidden] = unknown * weights[hidden] / weights.sum()
    return out


def cdf(counts: Floats) -> Floats:
    """The cumulative share of each bin (zeros when the histogram is empty)."""
    total = float(counts.sum())
    if total <= 0:
        return np.zeros(len(counts), dtype=np.float64)
    return np.asarray(np.cumsum(counts) / total, dtype=np.float64)


def quantiles(counts: Floats, probs: Sequence[float]) -> list[float | None]:
    """The ``probs`` quantiles on the z scale, interpolated in their bins.

    A quantile in an open tail is reported at the tail's edge (-3 or 3); None
    when the histogram is empty.
    """
    shares = cdf(counts)
    if not shares.any():
        return [None for _ in probs]
    edges = np.asarray(Z_EDGES)
    out: list[float | None] = []
    for p in probs:
        b = int(np.searchsorted(shares, p, side="left"))
        b = min(b, BINS - 1)
        if b == 0:
            out.append(float(edges[0]))
            continue
        if b == BINS - 1:
            out.append(float(edges[-1]))
            continue
        lo, hi = edges[b - 1], edges[b]
        before = shares[b - 1]
        width = shares[b] - before
        frac = 0.0 if width <= 0 else (p - before) / width
        out.append(float(lo + min(max(frac, 0.0), 1.0) * (hi - lo)))
    return out
