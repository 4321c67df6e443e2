"""FedBuff's buffered, staleness-weighted aggregation (Nguyen et al., 2022): pure numpy.

In asynchronous federated learning every site trains from the newest model it was
given and sends its update whenever it is done. The server buffers updates; each
``K`` of them make one step of the global model. An update computed from version
``v`` and folded while the model is at version ``V`` has *staleness* ``s = V - v``:
it points where the model was, not where it is, so it counts less. FedBuff scales
it by ``1 / sqrt(1 + s)``:

    Δ = Σ_i  w_i · g(s_i) · Δ_i  /  Σ_i w_i

where ``w_i`` is the update's weight (its example count, or 1 with ``[strategy]
weighting = "uniform"``) and ``g`` the staleness weight. The denominator holds the
plain weights, not the staleness-scaled ones, on purpose: normalizing by
``Σ w_i g(s_i)`` would make a buffer of equally stale updates count as much as a
fresh one, and the damping is the point. With every update fresh (``s = 0``) the
result is FedAvg's weighted mean. ``staleness_weight = "constant"`` (``g = 1``) is
the choice of plain asynchronous averaging, kept for comparison.

The server optimizer (``[strategy] server_optimizer``, ``server_lr``) then applies
``Δ`` as it applies a synchronous round's mean. Sums are float64 whatever the
model's dtype; the fold order is the caller's (the async driver folds in its
virtual clock's order, so the same seed gives the same model).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from accord.params import Params, ParamSpec

__all__ = ["FedBuffBuffer", "StalenessRule", "staleness_weight"]

StalenessRule = Literal["sqrt", "constant"]


def staleness_weight(staleness: int, rule: StalenessRule = "sqrt") -> float:
    """How much an update ``staleness`` versions old counts: ``1/sqrt(1+s)`` or 1.

    ``ValueError`` for a negative staleness (an update from a future version is
    a bug in whoever computed it, not something to weight).
    """
    if staleness < 0:
        raise ValueError(f"staleness must be at least 0, got {staleness}")
    if rule == "constant":
        return 1.0
    if rule == "sqrt":
        return 1.0 / math.sqrt(1.0 + staleness)
    raise ValueError(f"unknown staleness rule {rule!r}; use 'sqrt' or 'constant'")


class FedBuffBuffer:
    """Holds the staleness-weighted sum of up to ``size`` updates (see module doc).

    Only the running sums are kept (O(model) memory, however large ``size``).
    """

    def __init__(
        self, spec: ParamSpec, size: int, *, rule: StalenessRule = "sqrt"
    ) -> None:
        if size < 1:
            raise ValueError(f"a buffer holds at least one update, got size {size}")
        self._spec = spec
        self.size = size
        self._rule = rule
        self._sums = {t.name: np.zeros(t.shape, np.float64) for t in spec.tensors}
        self._weight = 0.0
        self._count = 0

    @property
    def spec(self) -> ParamSpec:
        """The model structure every update must fit."""
        return self._spec

    @property
    def count(self) -> int:
        """Updates folded since the last :meth:`take`."""
        return self._count

    @property
    def full(self) -> bool:
        """True once ``size`` updates are in: time for a step."""
        return self._count >= self.size

    def add(self, update: Params, weight: float, staleness: int) -> float:
        """Fold ``update`` with ``weight`` (examples or 1) at ``staleness``.

        Returns the staleness weight it got. ``ValueError`` for a full buffer or
        a weight that is not positive and finite; the update must fit ``spec``.
        """
        if self.full:
            raise ValueError("the buffer is full; take() its aggregate first")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"an update's weight must be positive, got {weight}")
        self._spec.check(update)
        factor = staleness_weight(staleness, self._rule)
        scale = weight * factor
        for name, total in self._sums.items():
            total += np.asarray(update[name], np.float64) * scale
        self._weight += weight
        self._count += 1
        return factor

    def take(self) -> Params:
        """The aggregate Δ of what was folded, in the model's dtypes; then empty.

        ``ValueError`` if nothing was folded.
        """
        if self._count == 0:
            raise ValueError("the buffer is empty: nothing to aggregate")
        out = Params(
            {
                t.name: (self._sums[t.name] / self._weight).astype(t.dtype)
                for t in self._spec.tensors
            }
        )
        for total in self._sums.values():
            total.fill(0.0)
        self._weight = 0.0
        self._count = 0
        return out
