"""L2 clipping: the sensitivity bound every Gaussian mechanism of accord rests on.

Differential privacy adds noise proportional to how much one protected unit can move
the released value. Clipping is what makes that amount finite and known: a
participant's whole update (participant-level DP) or one example's gradient
(record-level DP-SGD) is scaled down, never up, to an L2 norm of at most ``bound``.
The norm is taken over every tensor of the update together, in float64, so that the
bound holds for the vector the accountant reasons about, not per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.params import Params

__all__ = ["Clipped", "clip_per_example", "clip_update", "l2_norm"]


def _check_bound(bound: float) -> float:
    value = float(bound)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"a clipping bound must be a finite number > 0, got {bound!r}")
    return value


def l2_norm(update: Params) -> float:
    """The L2 norm of every value of ``update`` together, computed in float64."""
    total = 0.0
    for array in update.values():
        flat = np.asarray(array, dtype=np.float64).reshape(-1)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


@dataclass(frozen=True, slots=True)
class Clipped:
    """An update scaled to at most the bound, and what it was before.

    ``norm`` is the norm before clipping; ``within`` tells whether it was already
    at most the bound (adaptive clipping counts these).
    """

    update: Params
    norm: float
    within: bool


def clip_update(update: Params, bound: float) -> Clipped:
    """Scale ``update`` by ``min(1, bound / ||update||)``; dtypes are kept.

    The factor is rounded down by one float64 ulp, so that rounding in the scaling
    never leaves the result's norm above ``bound``. A non-finite norm (an update
    with NaN or infinity) is a :class:`ValueError`: such an update must be refused
    before it is clipped, not silently zeroed.
    """
    limit = _check_bound(bound)
    norm = l2_norm(update)
    if not math.isfinite(norm):
        raise ValueError("cannot clip an update whose norm is not finite; refuse it")
    if norm <= limit:
        return Clipped(update, norm, True)
    factor = math.nextafter(limit / norm, 0.0)
    scaled = Params(
        {
            name: _scaled_down(np.asarray(a, dtype=np.float64) * factor, a.dtype)
            for name, a in update.items()
        }
    )
    return Clipped(scaled, norm, False)


def _scaled_down(values: npt.NDArray[np.float64], dtype: Any) -> npt.NDArray[Any]:
    """Cast to ``dtype`` rounding toward zero, so no value grows in magnitude."""
    out = values.astype(dtype)
    grew = np.abs(out.astype(np.float64)) > np.abs(values)
    if grew.any():
        out[grew] = np.nextafter(out[grew], np.zeros_like(out[grew]))
    return out


def clip_per_example(
    gradients: npt.NDArray[np.floating[Any]], bound: float
) -> npt.NDArray[np.float64]:
    """Clip each row of ``gradients`` (``(batch, ...)``) to L2 norm ``bound``.

    For record-level DP-SGD in numpy: each example's gradient, flattened, is scaled
    by ``min(1, bound / norm)``. Returns float64 of the same shape.
    """
    limit = _check_bound(bound)
    grads = np.asarray(gradients, dtype=np.float64)
    if grads.ndim < 1:
        raise ValueError("per-example gradients need a leading batch axis")
    flat = grads.reshape(grads.shape[0], -1)
    norms = np.sqrt(np.einsum("ij,ij->i", flat, flat))
    if not np.isfinite(norms).all():
        raise ValueError("a per-example gradient is not finite; refuse the batch")
    factors = np.minimum(1.0, limit / np.maximum(norms, np.finfo(np.float64).tiny))
    factors = np.nextafter(factors, 0.0, where=factors < 1.0, out=factors.copy())
    clipped: npt.NDArray[np.float64] = (flat * factors[:, None]).reshape(grads.shape)
    return clipped
