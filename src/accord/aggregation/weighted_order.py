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

How: values must be sorted *with* their update's index. Each float32 value is mapped
to an integer with the same order (flip the magnitude bits of negatives) and packed
with its index into one int64 key, ``order << 32 | index``; a comparator network
(:mod:`accord.aggregation.network`) sorts the keys of a chunk with
``np.minimum``/``np.maximum``; the index gives each sorted position its weight
(``np.take`` from an ``n``-entry table) and the high half gives back the value
exactly. float16 is widened to float32 first. float64 updates, and more than
:data:`~accord.aggregation.order_statistics.NETWORK_MAX_INPUTS` of them, take a
slower ``argsort`` path with the same definition. A NaN in any update's coordinate
gives NaN there.
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

#: Coordinates per chunk: about 2n + 8 buffers of 8 bytes each stay within L2.
CHUNK = 8192
_LOW32 = np.int64(0xFFFFFFFF)
_MAGNITUDE = np.int32(0x7FFFFFFF)


def _ordered(bits: npt.NDArray[np.int32], out: npt.NDArray[np.int32]) -> None:
    """``out`` = float32 bit patterns mapped to int32 of the same order (involution)."""
    np.right_shift(bits, 31, out=out)
    np.bitwise_and(out, _MAGNITUDE, out=out)
    np.bitwise_xor(bits, out, out=out)


def _key_of_value(value: float) -> np.int64:
    bits = np.array([value], np.float32).view(np.int32)
    out = np.empty(1, np.int32)
    _ordered(bits, out)
    return np.int64(out[0])


#: Keys at or above / below these hold a NaN (positive NaNs sort above +inf).
_NAN_ABOVE = (_key_of_value(np.inf) + 1) << 32
_NAN_BELOW = _key_of_value(-np.inf) << 32


class _KeyKernel:
    """Sorts ``(value, index)`` keys per coordinate, then walks the weighted order."""

    def __init__(
        self,
        weights: Sequence[float],
        mode: str,
        beta: float,
        dtype: np.dtype[Any],
        size: int,
    ) -> None:
        n = len(weights)
        self.table = np.asarray(weights, dtype=np.float64)
        total = math.fsum(weights)
        self.half = total / 2
        self.lo, self.hi = beta * total, (1 - beta) * total
        self.mode = mode
        self.comparators = sorting_network(n)
        self.keys = [np.empty(size, np.int64) for _ in range(n + 1)]
        self.f32 = np.empty(size, np.float32)
        self.i32 = np.empty(size, np.int32)
        self.i32b = np.empty(size, np.int32)
        self.idx = np.empty(size, np.int64)
        self.w = np.empty(size)
        self.cum = np.empty(size)
        self.prev = np.empty(size)
        self.acc = np.empty(size)
        self.mask = np.empty(size, bool)
        self.low = np.empty(size, np.int64)
        self.high = np.empty(size, np.int64)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        keys = [k[:m] for k in self.keys]
        f32, i32 = self.f32[:m], self.i32[:m]
        for i, x in enumerate(inputs):
            if x.dtype == np.float32:
                bits = x.view(np.int32)
            else:
                np.copyto(f32, x)
                bits = f32.view(np.int32)
            _ordered(bits, i32)
            np.copyto(keys[i], i32)
            np.left_shift(keys[i], 32, out=keys[i])
            np.bitwise_or(keys[i], i, out=keys[i])
        spare = keys.pop()
        for i, j in self.comparators:
            np.minimum(keys[i], keys[j], out=spare)
            np.maximum(keys[i], keys[j], out=keys[j])
            keys[i], spare = spare, keys[i]
        result = self.f32[:m]
        if self.mode == "median":
            self._median(keys, result)
        else:
            self._trimmed(keys, result)
        nan = (keys[-1] >= _NAN_ABOVE) | (keys[0] < _NAN_BELOW)
        if nan.any():
            result[nan] = np.nan
        np.copyto(out, result, casting="same_kind")

    def _weights_at(self, key: npt.NDArray[np.int64]) -> Array:
        m = key.shape[0]
        idx, w = self.idx[:m], self.w[:m]
        np.bitwise_and(key, _LOW32, out=idx)
        np.take(self.table, idx, out=w)
        return w

    def _value(self, key: npt.NDArray[np.int64], out: Array) -> None:
        """The float32 value a key holds, written into ``out``."""
        m = key.shape[0]
        high, ordered = self.i32b[:m], self.i32[:m]
        np.right_shift(key, 32, out=self.idx[:m])
        np.copyto(high, self.idx[:m], casting="unsafe")
        _ordered(high, ordered)
        np.copyto(out, ordered.view(np.float32))

    def _median(self, keys: list[npt.NDArray[np.int64]], result: Array) -> None:
        m = result.shape[0]
        cum, mask, low, high = self.cum[:m], self.mask[:m], self.low[:m], self.high[:m]
        cum.fill(0.0)
        for key in keys:
            # the last position whose preceding weight is below (at most) half is
            # the first whose cumulative weight reaches (exceeds) it
            np.less(cum, self.half, out=mask)
            np.copyto(low, key, where=mask)
            np.less_equal(cum, self.half, out=mask)
            np.copyto(high, key, where=mask)
            cum += self._weights_at(key)
        upper = self.acc[:m].view(np.float32)[:m]
        self._value(low, result)
        self._value(high, upper)
        result += upper
        result *= np.float32(0.5)

    def _trimmed(self, keys: list[npt.NDArray[np.int64]], result: Array) -> None:
        m = result.shape[0]
        cum, prev, acc = self.cum[:m], self.prev[:m], self.acc[:m]
        kept = self.low[:m].view(np.float64)
        value = self.high[:m].view(np.float32)[:m]
        cum.fill(0.0)
        acc.fill(0.0)
        for key in keys:
            np.maximum(cum, self.lo, out=prev)
            cum += self._weights_at(key)
            np.minimum(cum, self.hi, out=kept)
            kept -= prev
            np.maximum(kept, 0.0, out=kept)
            self._value(key, value)
            kept *= value
            acc += kept
        acc /= self.hi - self.lo
        np.copyto(result, acc, casting="same_kind")


def _argsort_rows(
    updates: Sequence[Params], weights: Sequence[float], mode: str, beta: float
) -> Params:
    """The same definitions by ``argsort`` over the stacked values (float64, many)."""
    table = np.asarray(weights, dtype=np.float64)
    total = math.fsum(weights)
    out: dict[str, Array] = {}
    for name in updates[0]:
        stacked = np.stack([u[name].reshape(-1) for u in updates], axis=1)
        rows = stacked.astype(np.float64)
        order = np.argsort(rows, axis=1, kind="stable")
        values = np.take_along_axis(rows, order, axis=1)
        cum = np.cumsum(table[order], axis=1)
        prev = cum - table[order]
        if mode == "median":
            low = np.argmax(cum >= total / 2, axis=1)
            high = np.argmax(cum > total / 2, axis=1)
            r = np.arange(len(rows))
            result = (values[r, low] + values[r, high]) / 2
        else:
            lo, hi = beta * total, (1 - beta) * total
            kept = np.maximum(np.minimum(cum, hi) - np.maximum(prev, lo), 0.0)
            result = (kept * values).sum(axis=1) / (hi - lo)
        result[np.isnan(rows).any(axis=1)] = np.nan
        dtype = updates[0][name].dtype
        out[name] = result.astype(dtype).reshape(updates[0][name].shape)
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
