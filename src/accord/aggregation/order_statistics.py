"""Per coordinate, the mean of a range of order statistics: median and trimmed mean.

For each coordinate, sort the ``n`` updates' values and average positions ``lo..hi``
(the median is ``lo = (n-1)//2, hi = n//2``; a trimmed mean cutting ``k`` from each
end is ``lo = k, hi = n-k-1``). Two strategies, chosen per ``n``:

* small ``n`` (the usual cross-silo case): a comparator network from
  :mod:`accord.aggregation.network`, evaluated with ``np.minimum``/``np.maximum`` over
  whole chunks. For a symmetric range the cheaper of a pruned sorting network and the
  "set the extremes aside" network is used;
* large ``n``: the network grows like ``n log² n`` per coordinate and its buffers
  crowd the cache, so past :data:`NETWORK_MAX_INPUTS` each chunk is transposed into a
  ``(chunk, n)`` buffer and ``np.partition`` selects the wanted positions row by row.
  Measured on a 2-core Zen 5, the network was still 1.5-15x faster than partition
  from n = 16 up to n = 768; the threshold leaves it the whole range it wins.

Both run chunk by chunk on a thread pool (:mod:`accord.aggregation.coordinatewise`).
float16 updates are computed in float32 and rounded once at the end, as numpy does.
Results for a single statistic (odd-``n`` median) are exact; averages of two middle
values match ``np.median`` bit for bit; longer averages are summed in the compute
dtype, in an order fixed by ``n``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from accord.aggregation.coordinatewise import KernelFactory, check_updates, map_chunks
from accord.aggregation.network import (
    Program,
    compile_program,
    extremes_network,
    sorting_network,
)
from accord.params import Array, Params

__all__ = ["NETWORK_MAX_INPUTS", "mean_of_order_statistics"]

logger = logging.getLogger(__name__)

#: Largest number of updates handled by a comparator network (else np.partition).
NETWORK_MAX_INPUTS = 512
#: Bytes of chunk buffers per kernel. Each network step is one ufunc call costing
#: about a microsecond of Python time, so chunks must be long; 4 MiB (about 50,000
#: coordinates for 10 updates, spilling from L2 into L3) was fastest on a Zen 5 and
#: a Xeon, by up to 2x over L2-sized chunks on the latter.
_CACHE_BUDGET = 4 << 20


def _compute_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


@functools.lru_cache(maxsize=256)
def plan_program(n: int, lo: int, hi: int) -> Program:
    """The cheapest network program averaging order statistics ``lo..hi`` of ``n``."""
    candidates = [compile_program(n, sorting_network(n), tuple(range(lo, hi + 1)))]
    if lo + hi == n - 1 and hi > lo:
        comparators, middle = extremes_network(n, lo)
        candidates.append(compile_program(n, comparators, middle))
    return min(candidates, key=lambda p: len(p.steps))


class _NetworkKernel:
    def __init__(self, program: Program, dtype: np.dtype[Any], size: int) -> None:
        compute = _compute_dtype(dtype)
        self.program = program
        self.size = size
        self.work = [np.empty(size, compute) for _ in range(program.n_work)]
        self.staged = compute != dtype
        n_stage = program.n_inputs + 1 if self.staged else 0
        self.stage = [np.empty(size, compute) for _ in range(n_stage)]

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        work = self.work if m == self.size else [w[:m] for w in self.work]
        if not self.staged:
            self.program.run(inputs, work, out)
            return
        stage = [s[:m] for s in self.stage]
        for buffer, x in zip(stage[:-1], inputs, strict=True):
            np.copyto(buffer, x)
        self.program.run(stage[:-1], work, stage[-1])
        np.copyto(out, stage[-1], casting="same_kind")


class _PartitionKernel:
    def __init__(
        self, n: int, lo: int, hi: int, dtype: np.dtype[Any], size: int
    ) -> None:
        compute = _compute_dtype(dtype)
        self.lo, self.hi = lo, hi
        # the last position too: np.partition sorts NaN last, so it reveals them
        self.kth = sorted({lo, hi, n - 1})
        self.rows = np.empty((size, n), compute)
        self.acc = np.empty(size, compute)

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        m = out.shape[0]
        rows, acc = self.rows[:m], self.acc[:m]
        for i, x in enumerate(inputs):
            rows[:, i] = x
        rows.partition(self.kth, axis=1)
        np.add.reduce(rows[:, self.lo : self.hi + 1], axis=1, out=acc)
        if self.hi > self.lo:
            np.divide(acc, self.hi - self.lo + 1, out=acc)
        nan_rows = np.isnan(rows[:, -1])
        if nan_rows.any():
            acc[nan_rows] = np.nan
        np.copyto(out, acc, casting="same_kind")


def _chunk_for(bytes_per_coordinate: int) -> int:
    return int(np.clip(_CACHE_BUDGET // bytes_per_coordinate, 2048, 65536))


def mean_of_order_statistics(
    updates: Sequence[Params], lo: int, hi: int, *, workers: int | None = None
) -> Params:
    """Per coordinate, the mean of the ``lo``-th to ``hi``-th smallest values.

    Unweighted. NaN in any update's coordinate gives NaN there. Raises
    ``ValueError`` for an empty or invalid range.
    """
    check_updates(updates)
    n = len(updates)
    if not 0 <= lo <= hi < n:
        raise ValueError(f"order statistics {lo}..{hi} do not exist among {n} values")
    if n == 1:
        return updates[0].copy()
    itemsize = max([4, *(np.dtype(t.dtype).itemsize for t in updates[0].spec.tensors)])
    make_kernel: KernelFactory
    if n <= NETWORK_MAX_INPUTS:
        program = plan_program(n, lo, hi)
        make_kernel = functools.partial(_NetworkKernel, program)
        buffers = n + program.n_work + 1
    else:
        make_kernel = functools.partial(_PartitionKernel, n, lo, hi)
        buffers = 2 * n + 1
    chunk = _chunk_for(buffers * itemsize)
    logger.debug(
        "order statistics %d..%d of %d: %s, chunks of %d",
        lo,
        hi,
        n,
        "network" if n <= NETWORK_MAX_INPUTS else "partition",
        chunk,
    )
    return map_chunks(updates, make_kernel, chunk=chunk, workers=workers)
