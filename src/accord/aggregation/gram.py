"""Inner products of all pairs of updates in one pass: the Gram matrix.

Krum, Bulyan, the geometric median, centered clipping and FLTrust only ever look at
updates through their distances, norms and cosines, and every one of those is a
function of the ``n x n`` Gram matrix ``G = X X^T`` (``X``: one row per update).
So the robust rules here read the updates twice and no more: once for ``G``, once for
the linear combination that is their result (:func:`~accord.aggregation.mean.
weighted_mean` with the rule's coefficients). Everything in between works on ``n x n``
numbers.

The matrix is accumulated in float64, chunk by chunk over the parameter axis: each
chunk of every update is widened into an ``(n, chunk)`` float64 buffer that stays in
cache and multiplied by its transpose (one BLAS call). Blocks of chunks run on the
thread pool of :mod:`accord.aggregation.coordinatewise`; their partial matrices are
added in block order, so the result does not depend on which thread ran what.

``centered=True`` first shifts every update, chunk by chunk, by the update whose
values in that chunk have the median norm. Distances are unchanged by a shift (per
coordinate, so the shift may differ between chunks; distances to any *affine*
combination of the updates, which the iterative rules compute, are unchanged too),
but the cancellation in ``G_ii + G_jj - 2 G_ij`` is not: honest updates close to each
other and far from the origin, or measured from an attacker's 1e30, would lose their
differences to rounding. The median-norm update is honest-scaled whenever attackers
are a minority, and the shift is fused with the widening to float64. Cosines and
norms (FLTrust) need the raw matrix: ``centered=False``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accord.aggregation.coordinatewise import BLOCK, check_updates, run_blocks
from accord.params import Array, Params
from accord.threads import limited

__all__ = ["CHUNK", "gram_matrix", "squared_distances", "squared_norm", "squared_norms"]

#: Coordinates per chunk: 10 updates x 16384 x 8 bytes = 1.3 MiB of float64 buffer.
CHUNK = 16_384

Matrix = npt.NDArray[np.float64]


def gram_matrix(
    updates: Sequence[Params], *, centered: bool = True, workers: int | None = None
) -> Matrix:
    """The ``n x n`` float64 matrix of inner products of ``updates``.

    With ``centered`` the updates are first shifted by a median-norm one (distances
    survive, norms and cosines do not). Raises ``ValueError`` for
    no updates and :class:`~accord.errors.UpdateRejected` for differing structures.
    """
    spec = check_updates(updates)
    n = len(updates)
    flat = [[u[t.name].reshape(-1) for u in updates] for t in spec.tensors]
    partial: dict[tuple[int, int], Matrix] = {}
    lock = threading.Lock()

    def work(index: int, start: int, stop: int) -> None:
        inputs = flat[index]
        buffer = np.empty((n, min(CHUNK, stop - start)))
        acc = np.zeros((n, n))
        for lo in range(start, stop, CHUNK):
            hi = min(lo + CHUNK, stop)
            rows = buffer[:, : hi - lo]
            for row, x in zip(rows, inputs, strict=True):
                np.copyto(row, x[lo:hi])
            if centered:
                # float64(x) - float64(c), as a widening subtract would give, but
                # on the cached buffer: a mixed-dtype ufunc is 4x slower per row
                center = rows[_median_norm(inputs, lo, hi)].copy()
                np.subtract(rows, center, out=rows)
            # np.dot, not @: numpy's matmul keeps the GIL for these small products,
            # so the pool's threads would run them one at a time
            acc += np.dot(rows, rows.T)
        with lock:
            partial[(index, start)] = acc

    block = CHUNK * max(1, BLOCK // CHUNK)
    # The pool's threads each multiply small matrices; BLAS threads of its own on
    # top would only fight them for the cores (2.5x slower measured under load).
    with limited(1, "blas"):
        run_blocks([t.size for t in spec.tensors], work, block=block, workers=workers)
    gram = np.zeros((n, n))
    for key in sorted(partial):
        gram += partial[key]
    # BLAS computes both triangles separately; make the matrix exactly symmetric.
    return (gram + gram.T) / 2


def _median_norm(inputs: Sequence[Array], lo: int, hi: int) -> int:
    """The update whose values in ``lo:hi`` have the median norm (the chunk's center).

    A minority of attackers cannot be the median, so an attacker's 1e30 never
    becomes the center that honest updates are measured from.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow ranks last
        norms = [float(np.dot(x[lo:hi], x[lo:hi])) for x in inputs]
    keyed = [(math.inf if math.isnan(v) else v, i) for i, v in enumerate(norms)]
    return sorted(keyed)[len(keyed) // 2][1]


def squared_distances(gram: Matrix) -> Matrix:
    """Pairwise squared L2 distances from a Gram matrix, clamped at 0, zero diagonal."""
    diag = np.diag(gram)
    dist = diag[:, None] + diag[None, :] - 2.0 * gram
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, 0.0)
    return dist


def squared_norm(update: Params, *, workers: int | None = None) -> float:
    """``||update||^2`` summed in float64, chunk by chunk (no float64 copy of it)."""
    return squared_norms([update], workers=workers)[0]


def squared_norms(
    updates: Sequence[Params], *, workers: int | None = None
) -> list[float]:
    """Each update's ``||x||^2`` in float64, all in one pass over the updates.

    Each chunk is widened into a cached float64 buffer and dotted with itself (one
    BLAS call, held to one thread: OpenBLAS's own threads on top of the pool's spin
    on a busy machine, measured 100x slower). Blocks are summed in block order, so
    an update's value does not depend on the others given with it or on threads.
    """
    spec = check_updates(updates)
    n = len(updates)
    flat = [[u[t.name].reshape(-1) for u in updates] for t in spec.tensors]
    partial: dict[tuple[int, int], list[float]] = {}
    lock = threading.Lock()

    def work(index: int, start: int, stop: int) -> None:
        buffer = np.empty(min(CHUNK, stop - start))
        totals = [0.0] * n
        for i, x in enumerate(flat[index]):
            for lo in range(start, stop, CHUNK):
                part = buffer[: min(lo + CHUNK, stop) - lo]
                np.copyto(part, x[lo : lo + part.size])
                totals[i] += float(np.dot(part, part))
        with lock:
            partial[(index, start)] = totals

    block = CHUNK * max(1, BLOCK // CHUNK)
    with limited(1, "blas"):
        run_blocks([t.size for t in spec.tensors], work, block=block, workers=workers)
    return [float(sum(partial[key][i] for key in sorted(partial))) for i in range(n)]
