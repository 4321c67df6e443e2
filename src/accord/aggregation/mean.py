"""Weighted mean of updates: streaming (:class:`MeanAccumulator`) and batch.

FedAvg's aggregation. The coordinator feeds each update to a :class:`MeanAccumulator`
as it arrives and drops it, so its memory is one float64 copy of the model however
many participants there are. :func:`weighted_mean` does the same arithmetic over a
list of updates in cache-sized chunks on a few threads (see
:mod:`accord.aggregation.coordinatewise`), reading each update from memory once.

Both compute, per coordinate, ``sum_i float64(x_i) * w_i`` in the order the updates
are given, then divide once by the total weight and round once to the tensor's dtype.
They perform the same operations in the same order, so for the same updates they give
bit-identical results.

Determinism across arrival orders. With integer weights (example counts, below 2^29)
and float32 or float16 updates, every product ``w_i * x_i`` is exact in float64 (24
significand bits times at most 29). The total weight is summed exactly
(``math.fsum``). What remains is the float64 sum of exact products, which is exact,
and then independent of order, whenever all partial sums of a coordinate fit in 53
bits: guaranteed when that coordinate's contributions span less than about
``2^(29 - log2(max weight) - log2(n))`` in magnitude. Otherwise two orders can differ
by a few float64 ulps of the largest contribution, and the float32 result changes only
if the exact mean lies within that distance of a float32 rounding boundary (or if the
contributions cancel to a mean some 2^29 times smaller than they are): about one
coordinate in 10^8 for real updates, not never. Float64 updates or fractional weights
lose the exact products, so there order matters at the float64-ulp level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.aggregation.coordinatewise import check_updates, map_chunks
from accord.errors import UpdateRejected
from accord.params import Array, Params, ParamSpec

__all__ = ["MeanAccumulator", "weighted_mean"]

#: Coordinates per chunk: two float64 scratch buffers of 256 KiB each fit in L2.
CHUNK = 32_768


def _check_weight(weight: float) -> float:
    value = float(weight)
    if not math.isfinite(value) or value < 0:
        raise UpdateRejected(f"weight must be a finite number >= 0, got {weight!r}")
    return value


def _add_weighted(
    acc: Array, x: Array, weight: float, scratch: Array, first: bool
) -> None:
    """``acc (+)= float64(x) * weight``; the one place the mean's arithmetic lives."""
    target = acc if first else scratch
    np.copyto(target, x)
    if weight != 1.0:  # x * 1.0 == x exactly; skipping saves a pass
        np.multiply(target, weight, out=target)
    if not first:
        np.add(acc, scratch, out=acc)


def _finish(acc: Array, total: float, out: Array) -> None:
    """``out = acc / total``, rounded once to ``out``'s dtype; overwrites ``acc``."""
    np.divide(acc, total, out=acc)
    np.copyto(out, acc, casting="same_kind")


def _total(weights: Sequence[float]) -> float:
    total = math.fsum(weights)
    if total <= 0:
        raise ValueError(
            "the total weight of the updates is 0, so their mean is undefined; "
            "give at least one update a positive weight (e.g. its example count)"
        )
    return total


class _MeanKernel:
    def __init__(self, weights: Sequence[float], total: float, size: int) -> None:
        self.weights = weights
        self.total = total
        self.acc = np.empty(size)
        self.scratch = np.empty(size)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        acc, scratch = self.acc[:m], self.scratch[:m]
        for i, (x, w) in enumerate(zip(inputs, self.weights, strict=True)):
            _add_weighted(acc, x, w, scratch, i == 0)
        _finish(acc, self.total, out)


def weighted_mean(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    workers: int | None = None,
) -> Params:
    """Coordinate-wise ``sum(w_i * x_i) / sum(w_i)``, in each tensor's dtype.

    Accumulates in float64, chunk by chunk, on ``workers`` threads (default: the
    usable cores, at most 8). Equal to feeding the updates in the same order to a
    :class:`MeanAccumulator`, bit for bit.
    """
    check_updates(updates)
    if len(weights) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
    ws = [_check_weight(w) for w in weights]
    total = _total(ws)

    def make_kernel(dtype: np.dtype[Any], size: int) -> _MeanKernel:
        return _MeanKernel(ws, total, size)

    return map_chunks(updates, make_kernel, chunk=CHUNK, workers=workers)


class MeanAccumulator:
    """Streaming weighted mean: add updates one by one, read the mean at any time.

    Holds one float64 buffer per tensor (memory O(model)). Not thread-safe: the
    coordinator adds updates from one task.
    """

    def __init__(self, spec: ParamSpec) -> None:
        self._spec = spec
        self._acc = [np.empty(t.size, dtype=np.float64) for t in spec.tensors]
        self._weights: list[float] = []

    @property
    def spec(self) -> ParamSpec:
        """The structure every added update must have."""
        return self._spec

    @property
    def count(self) -> int:
        """Number of updates added."""
        return len(self._weights)

    @property
    def total_weight(self) -> float:
        """Sum of the weights added (exact: ``math.fsum``)."""
        return math.fsum(self._weights)

    def add(self, update: Params, weight: float) -> None:
        """Accumulate ``weight * update``; the update can be dropped afterwards.

        Raises :class:`~accord.errors.UpdateRejected` if the update's structure
        differs from the spec or the weight is negative or not finite; the
        accumulator is then unchanged.
        """
        self._spec.check(update)
        w = _check_weight(weight)
        first = not self._weights
        for t, acc in zip(self._spec.tensors, self._acc, strict=True):
            x = update[t.name].reshape(-1)
            scratch = np.empty(min(CHUNK, t.size))
            for lo in range(0, t.size, CHUNK):
                hi = min(lo + CHUNK, t.size)
                _add_weighted(acc[lo:hi], x[lo:hi], w, scratch[: hi - lo], first)
        self._weights.append(w)

    def result(self, dtype: npt.DTypeLike | None = None) -> Params:
        """The weighted mean so far, as ``dtype`` or each tensor's own dtype.

        Raises ``ValueError`` if no update was added or the total weight is 0.
        """
        if not self._weights:
            raise ValueError("no update has been added; the mean is undefined")
        total = _total(self._weights)
        if dtype is not None and np.dtype(dtype).kind != "f":
            raise ValueError(f"the mean must be a float dtype, got {np.dtype(dtype)}")
        out: dict[str, Array] = {}
        for t, acc in zip(self._spec.tensors, self._acc, strict=True):
            res = np.empty(t.size, dtype=t.dtype if dtype is None else dtype)
            scratch = np.empty(min(CHUNK, t.size))
            for lo in range(0, t.size, CHUNK):
                hi = min(lo + CHUNK, t.size)
                part = scratch[: hi - lo]
                np.copyto(part, acc[lo:hi])
                _finish(part, total, res[lo:hi])
            out[t.name] = res.reshape(t.shape)
        return Params(out)
