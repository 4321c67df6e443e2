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

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from accord.params import Array, Params, ParamSpec

__all__ = [
    "BLOCK",
    "ChunkKernel",
    "KernelFactory",
    "check_updates",
    "default_workers",
    "map_chunks",
    "run_blocks",
]

#: Elements per block (rounded to whole chunks): the unit of work of a thread.
BLOCK = 1 << 18
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
    """Threads to use: the usable cores, at most 4.

    Past 4, the Python half of each ufunc call (the GIL is held there) and memory
    bandwidth stop the rules from scaling; 8 threads measured slower than 4.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


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


def run_blocks(
    sizes: Sequence[int],
    work: Callable[[int, int, int], None],
    *,
    block: int,
    workers: int | None = None,
) -> None:
    """Call ``work(index, start, stop)`` on blocks of ``block`` elements of each tensor.

    ``sizes`` are the tensors' element counts. Blocks run on ``workers`` threads
    (default :func:`default_workers`), in no particular order, unless there is too
    little work to be worth a thread pool; ``work`` must touch only its own block.
    """
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    blocks = [
        (index, start, min(start + block, size))
        for index, size in enumerate(sizes)
        for start in range(0, size, block)
    ]
    threads = default_workers() if workers is None else max(1, workers)
    if threads == 1 or len(blocks) < 2 or sum(sizes) < _MIN_PARALLEL:
        for index, start, stop in blocks:
            work(index, start, stop)
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(blocks))) as pool:
        for _ in pool.map(lambda b: work(*b), blocks):
            pass


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

    def work(index: int, start: int, stop: int) -> None:
        inputs, out = flat[index], outs[index]
        kernel = make_kernel(out.dtype, min(chunk, stop - start))
        for lo in range(start, stop, chunk):
            hi = min(lo + chunk, stop)
            kernel([x[lo:hi] for x in inputs], out[lo:hi])

    sizes = [t.size for t in spec.tensors]
    block = chunk * max(1, BLOCK // chunk)
    run_blocks(sizes, work, block=block, workers=workers)
    return Params(
        {
            t.name: out.reshape(t.shape)
            for t, out in zip(spec.tensors, outs, strict=True)
        }
    )
