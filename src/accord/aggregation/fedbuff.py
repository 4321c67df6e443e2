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

``[strategy] max_weight_share`` caps each ``w_i``'s share of ``Σ w`` first, as in a
synchronous round. The server optimizer (``server_optimizer``, ``server_lr``) applies
``Δ`` as it applies a synchronous round's mean. Sums are float64 whatever the
model's dtype; the fold order is the caller's (the async driver folds in its
virtual clock's order, so the same seed gives the same model).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from accord.aggregation.integrity import cap_weights
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
    """Holds up to ``size`` updates and their weights until :meth:`take` (module doc).

    ``max_share`` (``[strategy] max_weight_share``) caps any one update's share of
    the buffer's total weight, as a synchronous round caps a participant's
    (:func:`~accord.aggregation.integrity.cap_weights`); the staleness weight
    then applies on top. That needs every weight before the sum, so the buffer
    keeps references to its ``size`` updates (the caller must not change them).
    """

    def __init__(
        self,
        spec: ParamSpec,
        size: int,
        *,
        rule: StalenessRule = "sqrt",
        max_share: float | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a buffer holds at least one update, got size {size}")
        self._spec = spec
        self.size = size
        self._rule = rule
        self._max_share = max_share
        self._held: list[tuple[Params, float, float]] = []  # update, weight, g(s)

    @property
    def spec(self) -> ParamSpec:
        """The model structure every update must fit."""
        return self._spec

    @property
    def count(self) -> int:
        """Updates added since the last :meth:`take`."""
        return len(self._held)

    @property
    def full(self) -> bool:
        """True once ``size`` updates are in: time for a step."""
        return len(self._held) >= self.size

    def add(self, update: Params, weight: float, staleness: int) -> float:
        """Add ``update`` with ``weight`` (examples or 1) at ``staleness``.

        Returns the staleness weight it gets. ``ValueError`` for a full buffer or
        a weight that is not positive and finite; the update must fit ``spec``.
        """
        if self.full:
            raise ValueError("the buffer is full; take() its aggregate first")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"an update's weight must be positive, got {weight}")
        self._spec.check(update)
        factor = staleness_weight(staleness, self._rule)
        self._held.append((update, weight, factor))
        return factor

    def take(self) -> Params:
        """The aggregate Δ of what was added, in the model's dtypes; then empty.

        Sums are float64, in the order the updates were added. ``ValueError`` if
        nothing was added.
        """
        if not self._held:
            raise ValueError("the buffer is empty: nothing to aggregate")
        held, self._held = self._held, []
        weights = cap_weights([w for _, w, _ in held], self._max_share)
        total = math.fsum(weights)
        out: dict[str, np.ndarray] = {}
        for t in self._spec.tensors:
            acc = np.zeros(t.shape, np.float64)
            for (update, _, factor), weight in zip(held, weights, strict=True):
                acc += np.asarray(update[t.name], np.float64) * (weight * factor)
            out[t.name] = (acc / total).astype(t.dtype)
        return Params(out)
