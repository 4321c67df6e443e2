"""Run a coordinate-wise rule over a stack of updates, chunk by chunk, on a few threads.

Every rule in this package computes output coordinate ``i`` from coordinate ``i`` of
each update. Stacking the updates into one ``(n, d)`` array first (what
``np.median(np.stack(updates), axis=0)`` does) copies ``n × d`` values and then walks
columns with poor locality. Here each tensor is cut into chunks of a few tens of
thousands of coordinates; a *kernel* combines the ``n`` chunk views (no copy) into the
output chunk using scratch buffers that stay in the CPU's L2 cache, so every update is
read from memory once and nothing of size ``n × d`` is ever allocated.

Chunks are grouped into blocks that a thread pool processes in parallel: numpy releases
the GIL inside ufunc loops, so the threads overlap both computation and memory traffic.
Each block builds its own kernel (own scratch), so kernels need no locking.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from accord.params import Array, Params, ParamSpec

__all__ = [
    "ChunkKernel",
    "KernelFactory",
    "check_updates",
    "default_workers",
    "map_chunks",
]

logger = logging.getLogger(__name__)

#: Chunks per block: a block is the unit of work handed to a thread.
_CHUNKS_PER_BLOCK = 16
#: Below this many coordinates in total, threads cost more than they save.
_MIN_PARALLEL = 1 << 18


class ChunkKernel(Protocol):
    """Combines one chunk of every update into the same chunk of the output.

    ``inputs`` are read-only 1-D views of equal length, ``out`` a writable 1-D view of
    that length (at most the size the kernel was built for).
    """

    def __call__(self, inputs: Sequence[Array], out: Array) -> None:
        """Write the rule applied to ``inputs`` into ``out``."""


#: Builds a kernel for a tensor dtype and a maximum chunk length (it owns its scratch).
KernelFactory = Callable[[np.dtype[Any], int], ChunkKernel]


def default_workers() -> int:
    """Threads to use: the usable cores, at most 8 (memory bandwidth saturates)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def check_updates(updates: Sequence[Params]) -> ParamSpec:
    """Return the common structure of ``updates``.

    Raises ``ValueError`` if there are none and :class:`~accord.errors.UpdateRejected`
    if one differs from the first in names, order, shapes or dtypes.
    """
    if len(updates) == 0:
        raise ValueError("no updates to aggregate; a round needs at least one")
    spec = updates[0].spec
    for update in updates[1:]:
        spec.check(update)
    return spec


def _blocks(spec: ParamSpec, chunk: int) -> list[tuple[int, int, int]]:
    block = chunk * _CHUNKS_PER_BLOCK
    return [
        (index, start, min(start + block, tensor.size))
        for index, tensor in enumerate(spec.tensors)
        for start in range(0, tensor.size, block)
    ]


def map_chunks(
    updates: Sequence[Params],
    make_kernel: KernelFactory,
    *,
    chunk: int,
    workers: int | None = None,
) -> Params:
    """Apply kernels built by ``make_kernel`` to every chunk; return the outputs.

    Each output tensor has the dtype and shape of the corresponding input tensor.
    ``updates`` must share one structure (see :func:`check_updates`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    spec = updates[0].spec
    flat = [[u[t.name].reshape(-1) for u in updates] for t in spec.tensors]
    outs = [np.empty(t.size, dtype=t.dtype) for t in spec.tensors]

    def run(block: tuple[int, int, int]) -> None:
        index, start, stop = block
        inputs, out = flat[index], outs[index]
        kernel = make_kernel(out.dtype, min(chunk, stop - start))
        for lo in range(start, stop, chunk):
            hi = min(lo + chunk, stop)
            kernel([x[lo:hi] for x in inputs], out[lo:hi])

    blocks = _blocks(spec, chunk)
    threads = default_workers() if workers is None else max(1, workers)
    if threads == 1 or len(blocks) < 2 or spec.size < _MIN_PARALLEL:
        for block in blocks:
            run(block)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(run, blocks):
                pass
    return Params(
        {
            t.name: out.reshape(t.shape)
            for t, out in zip(spec.tensors, outs, strict=True)
        }
    )
