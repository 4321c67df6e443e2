"""What keeps one participant from taking over, or breaking, the global model.

Two pure pieces the coordinator applies around aggregation:

* :func:`cap_weights` bounds each participant's share of a round's total weight
  (``[strategy] max_weight_share``). FedAvg weights an update by the examples its
  sender claims, so without a cap one site that claims (or has) most of the
  examples decides the model alone. The cap is water-filling: a participant whose
  share would exceed ``max_share`` gets exactly ``max_share``, and the others share
  the rest in proportion to their weights, which are left as they were (so a round
  where no cap binds keeps its integer weights and its exact arithmetic).
* :func:`check_params` proves a tensor set finite and, optionally, within an L2
  norm bound, naming the first tensor at fault in an
  :class:`~accord.errors.AggregateRejected`. The coordinator runs it on each update
  (norm), on the round's aggregate and on the new model and optimizer state before
  anything is published, checkpointed or recorded as completed.

Norms are computed in float64 from each tensor's values, so a float32 update near
the float32 limit has a finite, comparable norm instead of overflowing. They are
summed a chunk at a time (:func:`square_sum`), never through a model-sized float64
copy, and the same sum proves the values finite (:func:`finite_sum`), so whoever
reads an update once gets both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from accord.errors import AggregateRejected
from accord.params import Array, Params

__all__ = [
    "SQUARE_CHUNK",
    "cap_weights",
    "check_params",
    "finite_sum",
    "is_finite",
    "l2_norm",
    "square_sum",
]

#: Values per chunk of :func:`square_sum`: a 512 KiB float64 buffer, in L2 cache.
SQUARE_CHUNK = 65_536


def cap_weights(weights: Sequence[float], max_share: float | None) -> tuple[float, ...]:
    """``weights`` with no share of their total above ``max_share``.

    Participants under the cap keep their weights unchanged; each capped one gets
    the weight that makes its share exactly ``max_share`` of the new total. When
    every participant would be capped (fewer than ``1 / max_share`` of them) the
    bound cannot hold, and the closest to it is taken: equal weights. ``None`` or
    ``1`` leaves the weights as they are. Raises ``ValueError`` for a negative or
    non-finite weight, or a share outside ``(0, 1]``.
    """
    ws = [float(w) for w in weights]
    if any(not math.isfinite(w) or w < 0 for w in ws):
        raise ValueError(f"weights must be finite and >= 0, got {list(weights)}")
    if max_share is None or max_share >= 1.0 or not ws:
        return tuple(ws)
    if max_share <= 0.0:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    order = sorted(range(len(ws)), key=lambda i: (-ws[i], i))
    capped = 0
    rest = math.fsum(ws)
    # Largest first: once the largest uncapped participant fits, all the rest do.
    while capped < len(order):
        j = order[capped]
        budget = 1.0 - capped * max_share
        if rest <= 0 or ws[j] * budget <= max_share * rest:
            break
        capped += 1
        # Summed afresh, not subtracted: 10 + 10 + 2**63 - 2**63 is 0 in floats.
        rest = math.fsum(ws[i] for i in order[capped:])
    if capped == 0:
        return tuple(ws)
    if capped == len(ws):
        return tuple(1.0 for _ in ws)
    if rest <= 0:  # the uncapped weigh nothing: the capped share the round equally
        return tuple(1.0 if i in order[:capped] else 0.0 for i in range(len(ws)))
    # Uncapped weights sum to ``rest`` and hold ``1 - capped*max_share`` of the total.
    capped_weight = max_share * rest / (1.0 - capped * max_share)
    out = list(ws)
    for i in order[:capped]:
        out[i] = capped_weight
    return tuple(out)


def is_finite(array: Array) -> bool:
    """True when no element of ``array`` is NaN or infinite."""
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(np.add.reduce(array, axis=None, dtype=np.float64))):
            return True
    return bool(np.isfinite(array).all())


def square_sum(array: Array, scratch: Array | None = None) -> float:
    """``sum(x * x)`` over ``array``'s values in float64, a chunk at a time.

    Each chunk of :data:`SQUARE_CHUNK` values is squared into one small reused
    float64 buffer (exact for float16 and float32 values: their squares fit a
    float64's significand) and summed there, so a model-sized float64 copy is
    never made (its page faults cost more than the arithmetic). NaN or infinity in
    ``array`` makes the sum NaN or infinite; for float16 and float32 values the
    converse holds too (their largest squares, summed 2^53 times, stay far below
    float64's limit), so a finite sum proves them all finite (:func:`finite_sum`).
    ``scratch``, float64 room for :data:`SQUARE_CHUNK` values, saves allocating it.
    """
    flat = array.reshape(-1)
    n = flat.size
    total = 0.0
    buf = np.empty(min(SQUARE_CHUNK, n)) if scratch is None else scratch
    with np.errstate(over="ignore", invalid="ignore"):
        for lo in range(0, n, SQUARE_CHUNK):
            part = buf[: min(SQUARE_CHUNK, n - lo)]
            # Not np.dot: OpenBLAS threads its ddot, which on a loaded machine
            # made a norm 100 times slower than numpy's own loops.
            np.square(flat[lo : lo + SQUARE_CHUNK], out=part, dtype=np.float64)
            total += float(np.add.reduce(part))
    return total


def finite_sum(array: Array, squares: float) -> bool:
    """Whether ``array`` is all finite, given its :func:`square_sum` ``squares``.

    A finite sum of squares settles it without reading ``array`` again, except
    for float64 values, whose squares can overflow while every value is finite:
    an infinite sum of float64 values is looked at value by value.
    """
    if math.isfinite(squares):
        return True
    if array.dtype != np.float64 or math.isnan(squares):
        return False
    return is_finite(array)


def l2_norm(params: Params) -> float:
    """The L2 norm of all of ``params``' values together, computed in float64.

    Past float64's range (values near 1e154 and above) the norm is ``inf``, which
    every bound refuses. The squares are summed in cache-sized float64 chunks with
    numpy's own (pairwise) reduction, not ``np.dot``: BLAS runs a dot product on
    every core, and on a busy machine its threads spin (a 100k-value norm took
    11-14 ms with OpenBLAS's threads against 0.05 ms on one, bench/README.md W5).
    """
    return math.sqrt(sum(square_sum(a) for a in params.values()))


def check_params(params: Params, *, what: str, max_norm: float | None = None) -> None:
    """Raise :class:`AggregateRejected` unless ``params`` is finite (and bounded).

    ``what`` names the value in the message (``aggregate``, ``model``, ...);
    ``max_norm`` is an upper bound on :func:`l2_norm` (None: no bound).
    """
    for name, array in params.items():
        if not is_finite(array):
            raise AggregateRejected(
                f"tensor {name!r} contains NaN or infinite values",
                check="finite",
                what=what,
                tensor=name,
            )
    if max_norm is None:
        return
    norm = l2_norm(params)
    if not norm <= max_norm:
        raise AggregateRejected(
            f"its L2 norm is {norm:.6g}, above max_update_norm = {max_norm:g}",
            check="norm",
            what=what,
        )
