"""Weighted mean of updates: streaming (:class:`MeanAccumulator`) and batch.

FedAvg's aggregation. The coordinator feeds each update to a :class:`MeanAccumulator`
as it arrives and drops it, so its memory is one float64 copy of the model however
many participants there are. :func:`weighted_mean` does the same arithmetic over a
list of updates in cache-sized chunks on a few threads (see
:mod:`accord.aggregation.coordinatewise`), reading each update from memory once.

Both compute, per coordinate, ``sum_i float64(x_i) * w_i`` in the order the updates
are given, then divide once by the total weight and round once to the tensor's dtype.
They perform the same operations in the same order, so for the same updates they give
bit-identical results. Accumulating in float64 (rather than the updates' float32)
is what makes the sums exact below; it costs two float64 passes per update, about
twice the time of just reading the updates (benchmark W6).

Determinism across arrival orders. With integer weights (example counts, below 2^29)
and float32 or float16 updates, every product ``w_i * x_i`` is exact in float64 (24
significand bits times at most 29), and the total weight is summed exactly
(``math.fsum``), so the only rounding that depends on order is in the float64 sum of
the products. That sum is exact, hence the same in every order, whenever its partial
sums fit in 53 bits: guaranteed at a coordinate where the nonzero ``|x_i|`` are within
a factor ``2^(29 - log2(max weight) - log2(n))`` of each other (4096 for weights below
2^13 and n <= 16). Beyond that, two orders can give float64 sums a few ulps apart, and
the float32 result differs only if the exact mean lies that close to a float32
rounding boundary: a chance of about 2^-27 (one in 10^8) per coordinate, growing in
proportion to how far the contributions cancel (largest ``|w_i x_i|`` over the
weighted sum). Rare, not impossible. Float64 updates or fractional weights lose the
exact products; there the order matters at the float64-ulp level.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from accord.aggregation.coordinatewise import (
    BLOCK,
    KernelFactory,
    check_updates,
    map_chunks,
    run_blocks,
)
from accord.errors import UpdateRejected
from accord.params import Array, Params, ParamSpec

__all__ = ["MeanAccumulator", "SumBuffers", "linear_combination", "weighted_mean"]

#: Coordinates per chunk: two float64 scratch buffers of 512 KiB each.
CHUNK = 65_536
#: The largest float64 sums :class:`SumBuffers` keeps from round to round.
SUM_BUFFERS_MAX_BYTES = 512 * 2**20


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
    if weight == 1.0:  # x * 1.0 == x exactly: a plain widening copy
        np.copyto(target, x)
    else:  # widen and multiply in one pass; the product is rounded once, in float64
        np.multiply(x, weight, out=target, dtype=np.float64)
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
    """The exact path: float64 products and sums, as :class:`MeanAccumulator`."""

    def __init__(
        self, weights: Sequence[float], total: float, dtype: np.dtype[Any], size: int
    ) -> None:
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


class _FastMeanKernel:
    """The fast path: each update times its share ``w_i / W``, summed in float32."""

    def __init__(
        self, shares: Sequence[float], dtype: np.dtype[Any], size: int
    ) -> None:
        self.shares = shares
        compute = np.promote_types(dtype, np.float32)
        self.acc = np.empty(size, compute)
        self.scratch = np.empty(size, compute)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        acc, scratch = self.acc[:m], self.scratch[:m]
        for i, (x, share) in enumerate(zip(inputs, self.shares, strict=True)):
            target = acc if i == 0 else scratch
            np.multiply(x, share, out=target, dtype=target.dtype)
            if i:
                np.add(acc, scratch, out=acc)
        np.copyto(out, acc, casting="same_kind")


def weighted_mean(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    precision: Literal["float64", "float32"] = "float64",
    workers: int | None = None,
) -> Params:
    """Coordinate-wise ``sum(w_i * x_i) / sum(w_i)``, in each tensor's dtype.

    Runs chunk by chunk on ``workers`` threads (default: the usable cores, at most
    4). With ``precision="float64"`` (the default) it accumulates in float64 and
    equals feeding the updates in the same order to a :class:`MeanAccumulator`, bit
    for bit. ``"float32"`` is about twice as fast: each update is multiplied by its
    share ``w_i / sum(w)`` and summed in float32 (float64 tensors stay float64), so
    results differ from the exact path by a few float32 ulps of the largest value
    and depend on the order of the updates.
    """
    check_updates(updates)
    if len(weights) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    ws = [_check_weight(w) for w in weights]
    total = _total(ws)
    make_kernel: KernelFactory
    if precision == "float64":
        make_kernel = functools.partial(_MeanKernel, ws, total)
    else:
        make_kernel = functools.partial(_FastMeanKernel, [w / total for w in ws])
    return map_chunks(updates, make_kernel, chunk=CHUNK, workers=workers)


class _ScaledMeanKernel(_MeanKernel):
    """:class:`_MeanKernel` over ``x * scale`` rounded to ``x``'s dtype first."""

    def __init__(
        self,
        weights: Sequence[float],
        scales: Sequence[float | None],
        total: float,
        dtype: np.dtype[Any],
        size: int,
    ) -> None:
        super().__init__(weights, total, dtype, size)
        self.scales = scales
        self.scaled = np.empty(size, dtype)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        acc, scratch, scaled = self.acc[:m], self.scratch[:m], self.scaled[:m]
        for i, (x, w, scale) in enumerate(
            zip(inputs, self.weights, self.scales, strict=True)
        ):
            if scale is not None:
                np.multiply(x, x.dtype.type(scale), out=scaled)
                x = scaled
            _add_weighted(acc, x, w, scratch, i == 0)
        _finish(acc, self.total, out)


def scaled_mean(
    updates: Sequence[Params],
    weights: Sequence[float],
    scales: Sequence[float | None],
    *,
    workers: int | None = None,
) -> Params:
    """:func:`weighted_mean` of the updates, each first multiplied by its scale.

    ``x * scale`` is rounded to ``x``'s dtype before it is weighted, as if each
    scaled update were made first (``None``: not scaled), bit for bit, but chunk by
    chunk in cache: no scaled copy of a whole update is ever allocated.
    """
    check_updates(updates)
    if not len(weights) == len(scales) == len(updates):
        raise ValueError(
            f"{len(updates)} updates, {len(weights)} weights and {len(scales)} scales"
        )
    ws = [_check_weight(w) for w in weights]
    make_kernel = functools.partial(_ScaledMeanKernel, ws, list(scales), _total(ws))
    return map_chunks(updates, make_kernel, chunk=CHUNK, workers=workers)


def linear_combination(
    updates: Sequence[Params],
    coefficients: Sequence[float],
    *,
    workers: int | None = None,
) -> Params:
    """Coordinate-wise ``sum(c_i * x_i)`` for coefficients ``c_i >= 0``, not divided.

    The exact float64 path of :func:`weighted_mean` without the final division: the
    robust rules that work on the Gram matrix (Krum's relatives, the geometric
    median, centered clipping, FLTrust) end with one such pass over the updates.
    """
    check_updates(updates)
    if len(coefficients) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(coefficients)} coefficients")
    cs = [_check_weight(c) for c in coefficients]
    make_kernel = functools.partial(_MeanKernel, cs, 1.0)
    return map_chunks(updates, make_kernel, chunk=CHUNK, workers=workers)


class SumBuffers:
    """The float64 sums of one round's mean, kept for the next round's.

    A fresh float64 copy of the model every round costs its page faults: the
    kernel hands out and zeroes every page again (60-80 ms a round for 10M
    parameters, more than folding an update). A :class:`MeanAccumulator` given a
    ``SumBuffers`` borrows the buffers the last one left, or makes new ones, and
    leaves them behind when it is collected, so two accumulators alive at once
    never share a buffer. No value carries over: the first update of a round
    overwrites the sums (it is copied in, not added), so a round's mean is bit
    for bit the one fresh buffers give.

    Sums larger than ``max_bytes`` are not kept: between rounds they would stay
    resident while the new model is made and checkpointed, the moment a very
    large model needs its memory most (a 2 GB model's sums are 4 GB).
    """

    def __init__(self, max_bytes: int = SUM_BUFFERS_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._free: tuple[tuple[int, ...], list[Array]] | None = None

    def take(self, sizes: Sequence[int]) -> list[Array]:
        """Buffers of these sizes: the ones left behind if they fit, else new."""
        free, self._free = self._free, None
        if free is not None and free[0] == tuple(sizes):
            return free[1]
        return [np.empty(n, dtype=np.float64) for n in sizes]

    def give(self, sizes: tuple[int, ...], buffers: list[Array]) -> None:
        """Keep ``buffers`` for the next :meth:`take` (the latest set, if small)."""
        if sum(b.nbytes for b in buffers) <= self._max_bytes:
            self._free = (sizes, buffers)


class MeanAccumulator:
    """Streaming weighted mean: add updates one by one, read the mean at any time.

    Holds one float64 buffer per tensor (memory O(model)), borrowed from
    ``buffers`` if given (see :class:`SumBuffers`); each :meth:`add` reads the
    update once and the buffer twice, on ``workers`` threads. Not thread-safe:
    the coordinator adds updates from one task.
    """

    def __init__(
        self,
        spec: ParamSpec,
        *,
        workers: int | None = None,
        buffers: SumBuffers | None = None,
    ) -> None:
        self._spec = spec
        self._workers = workers
        sizes = tuple(t.size for t in spec.tensors)
        self._acc: list[Array]
        if buffers is None:
            self._acc = [np.empty(n, dtype=np.float64) for n in sizes]
        else:
            self._acc = buffers.take(sizes)
            # Back to the pool once this accumulator is gone, never before.
            weakref.finalize(self, buffers.give, sizes, self._acc)
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
        self.add_many((update,), (weight,))

    def add_many(self, updates: Sequence[Params], weights: Sequence[float]) -> None:
        """:meth:`add` of each update in turn, bit for bit, in one pass over the sums.

        Each block of the float64 sums is read and written once for all of
        ``updates`` while it is in cache, instead of once per update: the sums are
        four fifths of a fold's memory traffic, so folding the updates a round
        held until its end costs about half as much. Raises like :meth:`add`,
        before anything is folded.
        """
        if len(updates) != len(weights):
            raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
        for update in updates:
            self._spec.check(update)
        ws = [_check_weight(w) for w in weights]
        if not ws:
            return
        first = not self._weights
        flats = [[u[t.name].reshape(-1) for t in self._spec.tensors] for u in updates]

        def work(index: int, start: int, stop: int) -> None:
            acc, xs = self._acc[index], [flat[index] for flat in flats]
            scratch = np.empty(min(CHUNK, stop - start))
            for lo in range(start, stop, CHUNK):
                hi = min(lo + CHUNK, stop)
                part, tmp = acc[lo:hi], scratch[: hi - lo]
                for k, (x, w) in enumerate(zip(xs, ws, strict=True)):
                    _add_weighted(part, x[lo:hi], w, tmp, first and k == 0)

        self._run(work)
        self._weights.extend(ws)

    def result(self, dtype: npt.DTypeLike | None = None) -> Params:
        """The weighted mean so far, as ``dtype`` or each tensor's own dtype.

        Raises ``ValueError`` if no update was added or the total weight is 0.
        """
        if not self._weights:
            raise ValueError("no update has been added; the mean is undefined")
        total = _total(self._weights)
        if dtype is not None and np.dtype(dtype).kind != "f":
            raise ValueError(f"the mean must be a float dtype, got {np.dtype(dtype)}")
        tensors = self._spec.tensors
        outs = [np.empty(t.size, t.dtype if dtype is None else dtype) for t in tensors]

        def work(index: int, start: int, stop: int) -> None:
            acc, out = self._acc[index], outs[index]
            scratch = np.empty(min(CHUNK, stop - start))
            for lo in range(start, stop, CHUNK):
                hi = min(lo + CHUNK, stop)
                part = scratch[: hi - lo]
                np.copyto(part, acc[lo:hi])
                _finish(part, total, out[lo:hi])

        self._run(work)
        return Params(
            {t.name: o.reshape(t.shape) for t, o in zip(tensors, outs, strict=True)}
        )

    def _run(self, work: Callable[[int, int, int], None]) -> None:
        sizes = [t.size for t in self._spec.tensors]
        block = CHUNK * max(1, BLOCK // CHUNK)
        run_blocks(sizes, work, block=block, workers=self._workers)
