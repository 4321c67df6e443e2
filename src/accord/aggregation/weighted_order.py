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
index) and rounds back to it exactly. A comparator network
(:mod:`accord.aggregation.network`) sorts the keys of a chunk with
``np.minimum``/``np.maximum``; the index bits give each sorted position its weight
(``np.take`` from an ``n``-entry table). An infinity with index bits reads as NaN:
such coordinates, and real NaNs, are recomputed by the reference definition
(``argsort``), which float64 updates and more than
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

#: Coordinates per chunk: about 4n float64 rows of scratch (5 MiB for 10 updates),
#: in L3. Each step is a numpy call with a microsecond of Python around it, so long
#: chunks pay; 16384 was fastest on the 2-core EPYC of W6 (8192: 10 % slower).
CHUNK = 16_384
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


def _pruned(n: int, outputs: set[int]) -> tuple[tuple[int, int], ...]:
    """Comparators of the sorting network that the sorted ``outputs`` depend on."""
    needed = set(outputs)
    kept = []
    for lo, hi in reversed(sorting_network(n)):
        if lo in needed or hi in needed:
            kept.append((lo, hi))
            needed |= {lo, hi}
    return tuple(reversed(kept))


class _KeyKernel:
    """Sorts ``(value, index)`` keys per coordinate, then walks the weighted order.

    The keys of a chunk are the rows of one ``(n + 1, chunk)`` float64 buffer; the
    network permutes row indices instead of moving rows (``order[k]`` is the row
    holding sorted position ``k``), and the walk over the weights (cumulative sums,
    the positions where they cross the cut, the trimmed weights) is a handful of
    whole-array operations. For the median only the positions up to the last that
    can hold it (:func:`_median_last`) are sorted and summed.
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
        self.comparators = _pruned(n, set(range(self.rows)))
        self.index = np.arange(n, dtype=np.int64)[:, None]
        self.keys = np.empty((n + 1, size))
        self.bits = np.empty((self.rows, size), np.int64)  # then the kept weights
        self.cum = np.empty((self.rows, size))
        self.mask = np.empty((self.rows, size), bool)
        self.where = np.empty(size, np.intp)
        self.columns = np.arange(size)
        self.f32 = np.empty(size, np.float32)
        self.upper = np.empty(size, np.float32)
        self.acc = np.empty(size)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        keys = self.keys[:, :m]
        for i, x in enumerate(inputs):
            np.copyto(keys[i], x)  # float32 and float16 widen exactly
        keys[: self.n].view(np.int64)[...] |= self.index
        order = list(range(self.n + 1))
        for i, j in self.comparators:
            spare = order[-1]
            np.minimum(keys[order[i]], keys[order[j]], out=keys[spare])
            np.maximum(keys[order[i]], keys[order[j]], out=keys[order[j]])
            order[i], order[-1] = spare, order[i]
        order = order[: self.rows]
        bits, cum = self.bits[:, :m], self.cum[:, :m]
        for position, row in enumerate(order):
            np.bitwise_and(keys[row].view(np.int64), _INDEX_MASK, out=bits[position])
        # mode="clip": the indices are valid, and it spares numpy a buffered copy
        np.take(self.table, bits, out=cum, mode="clip")
        for k in range(1, self.rows):
            cum[k] += cum[k - 1]
        result = self.f32[:m]
        # an infinity's key is a NaN (see below); sums may overflow as numpy's do
        with np.errstate(invalid="ignore", over="ignore"):
            if self.mode == "median":
                self._median(keys, order, cum, result)
            else:
                self._trimmed(keys, order, cum, result)
        # An infinity with index bits is a NaN: those coordinates (and real NaNs)
        # take the reference path, which handles both.
        special = np.isnan(result)
        if special.any():
            stacked = np.stack([x[special] for x in inputs], axis=1)
            result[special] = _row_statistic(
                stacked.astype(np.float64), self.table, self.mode, self.beta
            )
        np.copyto(out, result, casting="same_kind")

    def _at(
        self, keys: Array, order: list[int], cum: Array, strict: bool, out: Array
    ) -> None:
        """``out`` = the first sorted value whose cumulative weight passes half."""
        m = out.shape[0]
        mask, where = self.mask[:, :m], self.where[:m]
        if strict:
            np.less_equal(cum, self.half, out=mask)
        else:
            np.less(cum, self.half, out=mask)
        np.add.reduce(mask, axis=0, dtype=np.intp, out=where)
        np.minimum(where, self.rows - 1, out=where)  # rounding: never past the rows
        rows = np.take(np.asarray(order), where)  # sorted position -> buffer row
        # float64 -> float32 rounds the index bits away
        np.copyto(out, keys[rows, self.columns[:m]], casting="same_kind")

    def _median(self, keys: Array, order: list[int], cum: Array, result: Array) -> None:
        self._at(keys, order, cum, False, result)
        # The upper median differs only where a cumulative weight is exactly half
        # (equal weights and an even count, typically); elsewhere it is the lower.
        if not (cum == self.half).any():
            return
        upper = self.upper[: result.shape[0]]
        self._at(keys, order, cum, True, upper)
        result += upper
        result *= np.float32(0.5)

    def _trimmed(
        self, keys: Array, order: list[int], cum: Array, result: Array
    ) -> None:
        m = result.shape[0]
        # kept weight at position k: clip(cum_k) - clip(cum_k-1), clipped to
        # [lo, hi]; written over the index bits, which are no longer needed
        np.clip(cum, self.lo, self.hi, out=cum)
        kept = self.bits[:, :m].view(np.float64)
        np.subtract(cum[1:], cum[:-1], out=kept[1:])
        np.subtract(cum[0], self.lo, out=kept[0])
        for position, row in enumerate(order):
            value = keys[row]
            value.view(np.int64)[...] &= _VALUE_MASK
            kept[position] *= value
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
