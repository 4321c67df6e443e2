"""Weight-aware coordinate-wise median and trimmed mean: weighted quantiles.

:mod:`~accord.aggregation.median` and :mod:`~accord.aggregation.trimmed_mean` count
every site once, so a hospital with 40,000 records weighs what a clinic with 400
does. Here each update carries its weight (its example count after the round's
``max_weight_share`` cap, which keeps any one site from holding the majority) and
each coordinate's values are treated as a weighted distribution:

* the **weighted median** is the midpoint of the lower and upper weighted medians:
  the smallest value whose cumulative weight reaches half the total, and the
  smallest whose cumulative weight exceeds it. With equal weights it is
  ``np.median``; with integer weights it is the median of each value repeated
  weight times;
* the **weighted trimmed mean** cuts ``beta`` of the total *weight* from each end
  (splitting an update's weight where the cut falls inside it) and averages the
  rest by weight. With integer weights and ``beta * W`` whole, it is the trimmed
  mean of each value repeated weight times.

Both depend only on the weighted multiset, so an update with weight 2 is exactly
the same update given twice with weight 1. Robustness is in weight: attackers whose
total share stays below ``beta`` (below one half for the median) keep the result
within the range of the honest values at every coordinate.

How: values must be sorted *with* their update's index. A float32 (or float16)
value widened to float64 has 29 zero bits at the bottom of its mantissa; the index
goes there. The resulting float64 *key* orders exactly as the value (ties broken by
index) and rounds back to it exactly. A comparator network (Waksman's 29
comparators for 10 updates, Batcher's from :mod:`accord.aggregation.network`
otherwise) sorts the keys of a chunk with ``np.minimum``/``np.maximum``; the keys
start in the buffer rows that make the network leave sorted position ``k`` in row
``k``, so everything after the sort is a whole-array operation. The index bits
give each sorted position its weight (``np.take`` from an ``n``-entry table); the
median is picked by counting the positions before it and one flat ``take``; the
trimmed mean clips only the positions whose cumulative weight can leave the kept
range. Every such shortcut leaves the float arithmetic as it was: results are bit
for bit those of a plain sequential walk (tested). An infinity with index bits
reads as NaN: such coordinates, and real NaNs, are recomputed by the reference
definition (``argsort``), which float64 updates and more than
:data:`~accord.aggregation.order_statistics.NETWORK_MAX_INPUTS` updates use
throughout. A NaN in any update's coordinate gives NaN there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from accord.aggregation.coordinatewise import check_updates, map_chunks
from accord.aggregation.network import sorting_network
from accord.aggregation.order_statistics import NETWORK_MAX_INPUTS
from accord.aggregation.trimmed_mean import check_beta
from accord.params import Array, Params

__all__ = [
    "WeightedMedian",
    "WeightedTrimmedMean",
    "weighted_median",
    "weighted_trimmed_mean",
]

#: Coordinates per chunk of the sort: n + 1 float64 rows (5.8 MiB for 10 updates),
#: in L3. Each comparator is two numpy calls on one row; a thread releases the GIL
#: only inside them, so short rows leave the pool's threads queuing for it (at
#: 16384, two threads were no faster than one on the 2-core EPYC of W6).
CHUNK = 65_536
#: Coordinates per piece of the walk after the sort: its 2-D steps (weights,
#: cumulative sums, cuts) work on 3n rows of scratch, which this keeps to half the
#: sort's buffer (16384 and 65536 measured slower at W6, the latter by more).
WALK = 32_768
#: Low mantissa bits of a float64 key that hold the update's index. A float32 value
#: widened to float64 has its 29 lowest mantissa bits zero, so the index changes
#: neither its order against other values nor its rounding back to float32.
_INDEX_MASK = np.int64(0xFFFF)
_VALUE_MASK = ~_INDEX_MASK


def _first_reaching(weights: Sequence[float], target: float, *, strict: bool) -> int:
    """How many of ``weights``, taken in the given order, first reach ``target``."""
    total = 0.0
    for count, w in enumerate(weights, start=1):
        total += w
        if total > target or (not strict and total >= target):
            return count
    return len(weights)


def _median_last(weights: Sequence[float]) -> int:
    """The last sorted position that can hold the lower or upper weighted median.

    Whatever the values, the upper median is reached latest when the lightest
    weights come first; one position of slack absorbs rounding in the sums.
    """
    half = math.fsum(weights) / 2
    last = _first_reaching(sorted(weights), half, strict=True) - 1
    return min(len(weights) - 1, last + 1)


def _half_reachable(weights: Sequence[float]) -> bool:
    """Whether some prefix of the sorted weights can sum to exactly half the total.

    Only then can the lower and upper weighted medians differ. A float sum of
    ``k`` non-negative terms in any order is within ``k`` ulps-worth of the total
    of the exact subset sum, so a subset whose exact sum is farther from half than
    that bound never meets it, whatever the values' order. Up to 16 weights all
    subsets are checked; beyond that the answer is a conservative yes.
    """
    n = len(weights)
    if n > 16:
        return True
    table = np.asarray(weights, dtype=np.float64)
    sums = np.zeros(1)
    for w in table:  # all 2^n subset sums, each exact to rounding
        sums = np.concatenate([sums, sums + w])
    total = math.fsum(weights)
    slack = 4 * n * np.finfo(np.float64).eps * total
    return bool(np.any(np.abs(sums - total / 2) <= slack))


def _clipped_rows(weights: Sequence[float], lo: float, hi: float) -> tuple[int, int]:
    """Sorted positions whose cumulative weight can fall outside ``[lo, hi]``.

    Returns ``(a, b)``: only positions before ``a`` can sum to less than ``lo``
    and only positions from ``b`` on to more than ``hi``, whatever the values'
    order (position ``k`` sums at least the ``k + 1`` lightest weights and at most
    the ``k + 1`` heaviest, up to a rounding slack); clipping the others is the
    identity, so the trimmed mean skips it.
    """
    ordered = sorted(weights)
    n = len(ordered)
    slack = 4 * n * np.finfo(np.float64).eps * math.fsum(ordered)
    lightest = np.cumsum(ordered)
    heaviest = np.cumsum(ordered[::-1])
    a = int(np.count_nonzero(lightest < lo + slack))
    b = n - int(np.count_nonzero(heaviest > hi - slack))
    return a, min(max(a, b), n)


#: Waksman's 29-comparator sorting network for 10 inputs (Knuth, TAOCP 5.3.4), by
#: layers: 10 sites is the consortium size of W6, and Batcher's network needs 32.
#: Checked on all 2^10 zero-one inputs by the tests (the 0-1 principle).
_TEN = (
    ((0, 8), (1, 9), (2, 7), (3, 5), (4, 6)),
    ((0, 2), (1, 4), (5, 8), (7, 9)),
    ((0, 3), (2, 4), (5, 7), (6, 9)),
    ((0, 1), (3, 6), (8, 9)),
    ((1, 5), (2, 3), (4, 8), (6, 7)),
    ((1, 2), (3, 5), (4, 6), (7, 8)),
    ((2, 3), (4, 5), (6, 7)),
    ((3, 4), (5, 6)),
)


def key_network(n: int) -> tuple[tuple[int, int], ...]:
    """The sorting network the weighted rules use for ``n`` updates."""
    if n == 10:
        return tuple(c for layer in _TEN for c in layer)
    return sorting_network(n)


def _pruned(n: int, outputs: set[int]) -> tuple[tuple[int, int], ...]:
    """Comparators of the sorting network that the sorted ``outputs`` depend on."""
    needed = set(outputs)
    kept = []
    for lo, hi in reversed(key_network(n)):
        if lo in needed or hi in needed:
            kept.append((lo, hi))
            needed |= {lo, hi}
    return tuple(reversed(kept))


def _placement(n: int, comparators: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Buffer rows to start the keys and the spare in: position ``k`` ends in row ``k``.

    The kernel runs each comparator without copying rows: the minimum goes to the
    spare row and the maximum overwrites the upper wire's row, so the rows end up
    permuted, by a permutation that depends only on the comparators. Starting from
    its inverse makes the walk after the sort whole-array operations on
    consecutive rows.
    """
    order = list(range(n + 1))
    for i, _ in comparators:
        order[i], order[-1] = order[-1], order[i]
    start = [0] * (n + 1)
    for position, row in enumerate(order):
        start[row] = position
    return tuple(start)


class _KeyKernel:
    """Sorts ``(value, index)`` keys per coordinate, then walks the weighted order.

    The keys of a chunk are the rows of one ``(n + 1, chunk)`` float64 buffer; the
    network permutes row indices instead of moving rows (``order[k]`` is the row
    holding sorted position ``k``), starting from the placement (:func:`_placement`)
    that ends with ``order[k] == k``, so the walk over the weights (cumulative sums,
    the positions where they cross the cut, the trimmed weights) is a handful of
    whole-array operations. For the median only the positions up to the last that
    can hold it (:func:`_median_last`) are sorted and summed, and the answer is
    picked from them by counting the positions before it.
    """

    def __init__(
        self,
        weights: Sequence[float],
        mode: str,
        beta: float,
        dtype: np.dtype[Any],
        size: int,
    ) -> None:
        n = len(weights)
        self.n = n
        self.table = np.asarray(weights, dtype=np.float64)
        total = math.fsum(weights)
        self.half = total / 2
        self.lo, self.hi = beta * total, (1 - beta) * total
        self.mode, self.beta = mode, beta
        self.rows = _median_last(weights) + 1 if mode == "median" else n
        self.upper_possible = mode == "median" and _half_reachable(weights)
        self.clipped = _clipped_rows(weights, self.lo, self.hi)
        self.comparators = _pruned(n, set(range(self.rows)))
        self.start = _placement(n, self.comparators)
        # the index of the update whose key each buffer row starts with (the
        # spare's is 0: it holds no key)
        self.index = np.zeros((n + 1, 1), np.int64)
        self.index[list(self.start[:n]), 0] = np.arange(n)
        self.keys = np.empty((n + 1, size))
        walk = min(size, WALK)
        self.bits = np.empty((self.rows, walk), np.int64)  # then the kept weights
        self.cum = np.empty((self.rows, walk))
        self.mask = np.empty((self.rows, walk), bool)
        self.columns = np.arange(size, dtype=np.intp)
        # positions before the median's: fewer than 128 fit the cheapest count
        self.count_dtype = np.int8 if self.rows <= 128 else np.int16
        self.f32 = np.empty(size, np.float32)
        self.upper = np.empty(walk, np.float32)
        self.acc = np.empty(walk)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        keys = self.keys[:, :m]
        for i, x in enumerate(inputs):
            np.copyto(keys[self.start[i]], x)  # float32 and float16 widen exactly
        keys.view(np.int64)[...] |= self.index
        order = list(self.start)
        for i, j in self.comparators:
            spare = order[-1]
            np.minimum(keys[order[i]], keys[order[j]], out=keys[spare])
            np.maximum(keys[order[i]], keys[order[j]], out=keys[order[j]])
            order[i], order[-1] = spare, order[i]
        # the start placement leaves sorted position k in buffer row k
        result = self.f32[:m]
        for lo in range(0, m, WALK):
            hi = min(lo + WALK, m)
            self._walk(lo, hi, result[lo:hi])
        # An infinity with index bits is a NaN: those coordinates (and real NaNs)
        # take the reference path, which handles both.
        special = np.isnan(result)
        if special.any():
            stacked = np.stack([x[special] for x in inputs], axis=1)
            result[special] = _row_statistic(
                stacked.astype(np.float64), self.table, self.mode, self.beta
            )
        np.copyto(out, result, casting="same_kind")

    def _walk(self, lo: int, hi: int, result: Array) -> None:
        """The statistic of the sorted columns ``lo:hi`` of the key buffer."""
        rows, m = self.rows, hi - lo
        keys = self.keys[:, lo:hi]
        bits, cum = self.bits[:, :m], self.cum[:, :m]
        np.bitwise_and(keys[:rows].view(np.int64), _INDEX_MASK, out=bits)
        # mode="clip": the indices are valid, and it spares numpy a buffered copy
        np.take(self.table, bits, out=cum, mode="clip")
        for k in range(1, rows):
            cum[k] += cum[k - 1]
        # an infinity's key is a NaN (see below); sums may overflow as numpy's do
        with np.errstate(invalid="ignore", over="ignore"):
            if self.mode == "median":
                self._median(cum, lo, result)
            else:
                self._trimmed(keys, cum, result)

    def _at(self, cum: Array, lo: int, strict: bool, out: Array) -> None:
        """``out`` = the first sorted value whose cumulative weight passes half.

        Cumulative weights rise with the position, so the positions before it are
        those whose weight has not passed half: counting them gives the position
        (the last one where rounding passes none), and a flat ``take`` from the
        key buffer the value. ``lo`` is the first column of ``cum`` in the buffer.
        """
        m = out.shape[0]
        mask = self.mask[: self.rows - 1, :m]
        if strict:
            np.less_equal(cum[:-1], self.half, out=mask)
        else:
            np.less(cum[:-1], self.half, out=mask)
        count = np.add.reduce(mask.view(np.int8), axis=0, dtype=self.count_dtype)
        # sorted position k is buffer row k: its offset in the flat buffer
        flat = count.astype(np.intp)
        flat *= self.keys.shape[1]
        flat += self.columns[lo : lo + m]
        # float64 -> float32 rounds the index bits away
        np.copyto(out, np.take(self.keys.reshape(-1), flat), casting="same_kind")

    def _median(self, cum: Array, lo: int, result: Array) -> None:
        self._at(cum, lo, False, result)
        # The upper median differs only where a cumulative weight is exactly half
        # (equal weights and an even count, typically); elsewhere it is the lower.
        if not self.upper_possible or not (cum == self.half).any():
            return
        upper = self.upper[: result.shape[0]]
        self._at(cum, lo, True, upper)
        result += upper
        result *= np.float32(0.5)

    def _trimmed(self, keys: Array, cum: Array, result: Array) -> None:
        m = result.shape[0]
        # kept weight at position k: clip(cum_k) - clip(cum_k-1), clipped to
        # [lo, hi]; written over the index bits, which are no longer needed
        low, high = self.clipped
        np.clip(cum[:low], self.lo, self.hi, out=cum[:low])
        np.clip(cum[high:], self.lo, self.hi, out=cum[high:])
        kept = self.bits[:, :m].view(np.float64)
        np.subtract(cum[1:], cum[:-1], out=kept[1:])
        np.subtract(cum[0], self.lo, out=kept[0])
        values = keys[: self.n]
        values.view(np.int64)[...] &= _VALUE_MASK
        kept *= values
        acc = self.acc[:m]
        np.add.reduce(kept, axis=0, out=acc)
        acc /= self.hi - self.lo
        np.copyto(result, acc, casting="same_kind")


def _row_statistic(
    rows: npt.NDArray[np.float64], table: Array, mode: str, beta: float
) -> npt.NDArray[np.float64]:
    """The statistic of each row of ``rows`` (one column per update), by argsort.

    The reference definition, used for float64 updates, for more updates than a
    network takes, and for the coordinates where the fast path met an infinity or
    a NaN (a NaN anywhere in a row gives NaN).
    """
    total = math.fsum(table.tolist())
    order = np.argsort(rows, axis=1, kind="stable")
    values = np.take_along_axis(rows, order, axis=1)
    sorted_weights = table[order]
    cum = np.cumsum(sorted_weights, axis=1)
    with np.errstate(invalid="ignore"):
        if mode == "median":
            r = np.arange(len(rows))
            low = np.argmax(cum >= total / 2, axis=1)
            high = np.argmax(cum > total / 2, axis=1)
            result = (values[r, low] + values[r, high]) / 2
        else:
            lo, hi = beta * total, (1 - beta) * total
            prev = cum - sorted_weights
            kept = np.maximum(np.minimum(cum, hi) - np.maximum(prev, lo), 0.0)
            terms = np.where(kept > 0, kept * values, 0.0)
            result = terms.sum(axis=1) / (hi - lo)
    result[np.isnan(rows).any(axis=1)] = np.nan
    return np.asarray(result, dtype=np.float64)


def _argsort_rows(
    updates: Sequence[Params], weights: Sequence[float], mode: str, beta: float
) -> Params:
    """:func:`_row_statistic` over whole tensors (float64 updates, or very many)."""
    table = np.asarray(weights, dtype=np.float64)
    out: dict[str, Array] = {}
    for name, first in updates[0].items():
        rows = np.stack([u[name].reshape(-1) for u in updates], axis=1)
        result = _row_statistic(rows.astype(np.float64), table, mode, beta)
        out[name] = result.astype(first.dtype).reshape(first.shape)
    return Params(out)


def _weighted_order(
    updates: Sequence[Params],
    weights: Sequence[float],
    mode: str,
    beta: float,
    workers: int | None,
) -> Params:
    check_updates(updates)
    if len(weights) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
    ws = [float(w) for w in weights]
    if any(not math.isfinite(w) or w < 0 for w in ws) or math.fsum(ws) <= 0:
        raise ValueError(
            f"weights must be finite and >= 0 with a positive total, got {ws}; give "
            "each update its example count"
        )
    if len(updates) == 1:
        return updates[0].copy()
    wide = any(np.dtype(t.dtype).itemsize > 4 for t in updates[0].spec.tensors)
    if wide or len(updates) > NETWORK_MAX_INPUTS:
        return _argsort_rows(updates, ws, mode, beta)
    kernel = functools.partial(_KeyKernel, ws, mode, beta)
    return map_chunks(updates, kernel, chunk=CHUNK, workers=workers)


def weighted_median(
    updates: Sequence[Params], weights: Sequence[float], *, workers: int | None = None
) -> Params:
    """Coordinate-wise weighted median (see the module docstring)."""
    return _weighted_order(updates, weights, "median", 0.0, workers)


def weighted_trimmed_mean(
    updates: Sequence[Params],
    weights: Sequence[float],
    beta: float = 0.1,
    *,
    workers: int | None = None,
) -> Params:
    """Coordinate-wise mean after cutting ``beta`` of the total weight from each end."""
    return _weighted_order(updates, weights, "trimmed", check_beta(beta), workers)


@dataclass(frozen=True, slots=True)
class WeightedMedian:
    """Coordinate-wise weighted median over the (capped) example counts."""

    name: ClassVar[str] = "weighted_median"
    streaming: ClassVar[bool] = False
    #: The weight share one site must stay below for the median to stay honest.
    breakdown: ClassVar[float] = 0.5
    workers: int | None = None

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """The weighted median of each coordinate."""
        return weighted_median(updates, weights, workers=self.workers)


@dataclass(frozen=True, slots=True)
class WeightedTrimmedMean:
    """Coordinate-wise mean after cutting ``beta`` of the weight from each end."""

    name: ClassVar[str] = "weighted_trimmed_mean"
    streaming: ClassVar[bool] = False
    beta: float = 0.1
    workers: int | None = None

    def __post_init__(self) -> None:
        check_beta(self.beta)

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """The weighted trimmed mean of each coordinate."""
        return weighted_trimmed_mean(updates, weights, self.beta, workers=self.workers)
