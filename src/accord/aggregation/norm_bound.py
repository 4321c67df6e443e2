"""Norm bounding (Sun et al., 2019): scale each update to L2 norm at most ``bound``.

Each update ``x`` becomes ``x * min(1, bound / ||x||)``, then the weighted mean (with
the ``max_weight_share`` cap) combines them. One site can then move the model by at
most its weight share times ``bound``: scaling / model-replacement attacks and a
site whose training diverged lose their leverage. It does not stop an attacker who
stays within the bound (sign flipping, ALIE, IPM or a backdoor trained to a small
norm), and the bound must suit the update scale of honest training (too low and
every honest update is shrunk, slowing training). See ``docs/robustness.md``.

Unlike the other robust rules it needs each update only once, as it arrives: the
coordinator folds clipped updates into the streaming mean
(:class:`NormBoundAccumulator`), in O(model) memory. For the same reason it
composes with secure aggregation in principle, with each site clipping before it
encodes; accord's secure rounds bound each value instead (``[secure_aggregation]
clip``), and a site proves nothing in either case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from accord.aggregation.gram import squared_norm, squared_norms
from accord.aggregation.mean import scaled_mean
from accord.errors import ConfigError
from accord.params import Params

__all__ = ["NormBoundAccumulator", "NormBounding", "bound_norm", "check_bound"]


def check_bound(bound: float) -> float:
    """``bound`` as a float if positive and finite, else ConfigError."""
    if isinstance(bound, bool) or not (
        isinstance(bound, int | float) and math.isfinite(bound) and bound > 0
    ):
        raise ConfigError(f"must be a positive number, got {bound!r}", key="norm_bound")
    return float(bound)


def bound_norm(
    update: Params, bound: float, *, workers: int | None = None
) -> tuple[Params, bool]:
    """``update`` scaled to norm at most ``bound`` (the same object if within it).

    Returns the update and whether it was scaled. The scale is computed in float64
    and applied in each tensor's dtype.
    """
    scale = _scale(math.sqrt(squared_norm(update, workers=workers)), bound)
    if scale is None:
        return update, False
    return Params({k: a * a.dtype.type(scale) for k, a in update.items()}), True


def _scale(norm: float, bound: float) -> float | None:
    """``bound / norm`` where ``norm`` exceeds ``bound`` (None: within it)."""
    return None if norm <= bound else bound / norm


class _Accumulator(Protocol):
    def add(self, update: Params, weight: float) -> None: ...

    def result(self) -> Params: ...


class NormBoundAccumulator:
    """Streams clipped updates into another accumulator (plain or capped mean)."""

    def __init__(
        self, inner: _Accumulator, bound: float, *, workers: int | None = None
    ) -> None:
        self._inner = inner
        self._bound = check_bound(bound)
        self._workers = workers
        self.clipped = 0

    def add(self, update: Params, weight: float) -> None:
        """Clip ``update`` to the bound, then add it with its weight."""
        bounded, scaled = bound_norm(update, self._bound, workers=self._workers)
        self.clipped += scaled
        self._inner.add(bounded, weight)

    def result(self) -> Params:
        """The inner accumulator's result over the clipped updates."""
        return self._inner.result()


@dataclass(frozen=True, slots=True)
class NormBounding:
    """Weighted mean of the updates, each first scaled to L2 norm ``bound``."""

    name: ClassVar[str] = "norm_bounding"
    streaming: ClassVar[bool] = True
    bound: float
    workers: int | None = None

    def __post_init__(self) -> None:
        check_bound(self.bound)

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Clip every update, then the weighted mean (as the accumulator does)."""
        if len(weights) != len(updates):
            raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
        scales = [
            _scale(math.sqrt(s), self.bound)
            for s in squared_norms(updates, workers=self.workers)
        ]
        return scaled_mean(updates, weights, scales, workers=self.workers)
