"""q-FedAvg (Li et al., "Fair Resource Allocation in Federated Learning", ICLR 2020).

q-FFL minimises ``sum_k p_k F_k^(q+1) / (q+1)``: the larger ``q``, the more the sites
with a high loss weigh, so accuracy spreads less across sites (``q = 0`` is FedAvg's
objective). Each site reports ``F_k``, its loss on its training data under the
global model *before* it trains, with its update ``u_k = w_k - w``. With ``L`` the
inverse of the local learning rate (the paper's Lipschitz estimate),

    Delta_k = L (w - w_k) = -L u_k
    h_k     = q F_k^(q-1) ||Delta_k||^2 + L F_k^q
    w+      = w - sum_k F_k^q Delta_k / sum_k h_k

so the update the server optimizer applies (plain SGD at lr 1 gives the paper's
step) is ``sum_k F_k^q L u_k / sum_k h_k``. Sites weigh by their loss, not their
example counts. :class:`QFedAvgAccumulator` folds updates one at a time: the
numerator is one float64 copy of the model, the denominator a number.

A site's weight is the loss it reports, to the power ``q``: a site that claims a
huge (finite) loss would decide the step alone. ``[strategy] max_weight_share``
caps each site's share of ``sum F^q`` as it caps an example count's share in
FedAvg: the capped site's whole term (``F^q`` in the numerator, ``h_k`` in the
denominator) is scaled by the same factor. That needs every ``F^q`` before any
term is weighed, so with a cap below 1 the accumulator keeps each update until
:meth:`~QFedAvgAccumulator.result` (as the median rules do); with every share
under the cap the result is the streaming one, bit for bit.

A loss of 0 with ``0 < q < 1`` would make ``F^(q-1)`` infinite; such a site
contributes nothing to the numerator (``F^q = 0``), and its ``h_k`` is taken at
``F = 1e-12`` so that it does not void every other site's contribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from accord.aggregation.integrity import cap_weights
from accord.errors import UpdateRejected
from accord.params import Array, Params, ParamSpec

__all__ = [
    "LOSS_METRIC",
    "MAX_LOSS_POWER",
    "QFedAvgAccumulator",
    "check_loss",
    "qfedavg",
]

#: The metric a site reports its pre-training loss under.
LOSS_METRIC = "initial_loss"
_FLOOR = 1e-12
#: The largest ``F^q`` (and ``F^(q-1)``) a site's reported loss may give.
MAX_LOSS_POWER = 1e100


def check_loss(metrics: Mapping[str, float]) -> float:
    """The reported pre-training loss; :class:`UpdateRejected` if missing or bad."""
    if LOSS_METRIC not in metrics:
        raise UpdateRejected(
            f"q-FedAvg needs the site's loss before training ({LOSS_METRIC!r}) with "
            "its update, and none came; the site must run accord's strategy wrapper "
            "(accord.task.strategy_site)"
        )
    loss = float(metrics[LOSS_METRIC])
    if not math.isfinite(loss) or loss < 0:
        raise UpdateRejected(
            f"the reported loss before training must be finite and >= 0, got {loss!r}"
        )
    return loss


def _powers(loss: float, q: float) -> tuple[float, float]:
    """``(F^q, F^(q-1))`` of a checked loss; UpdateRejected if either is out of reach.

    A finite loss can still have a power past the largest float (``1e200 ** 2``
    raises OverflowError), and a power near it would overflow the step's sums: so
    each power is bounded by :data:`MAX_LOSS_POWER`, which no real training loss
    reaches (``1e100`` is a loss of ``1e50`` at ``q = 2``).
    """
    try:
        fq = loss**q
        fq1 = 0.0 if q == 0 else max(loss, _FLOOR) ** (q - 1)
    except OverflowError:
        fq = fq1 = math.inf
    if not (fq <= MAX_LOSS_POWER and fq1 <= MAX_LOSS_POWER):
        raise UpdateRejected(
            f"the reported loss before training, {loss:.6g}, is too large for "
            f"q-FedAvg at q = {q:g} (its powers pass {MAX_LOSS_POWER:g}); report the "
            "local loss of the model you received"
        )
    return fq, fq1


def _terms(
    loss: float, norm2: float, q: float, lipschitz: float
) -> tuple[float, float]:
    """``(F^q, h)`` for one site; ``norm2 = ||Delta_k||^2``."""
    fq, fq1 = _powers(loss, q)
    curvature = 0.0 if q == 0 else q * fq1 * norm2
    return fq, curvature + lipschitz * fq


class QFedAvgAccumulator:
    """Folds ``(update, loss)`` pairs into q-FedAvg's step; O(model) memory."""

    def __init__(
        self,
        spec: ParamSpec,
        *,
        q: float,
        lipschitz: float,
        max_share: float | None = None,
    ) -> None:
        if not (math.isfinite(q) and q >= 0):
            raise ValueError(f"q must be a finite number >= 0, got {q!r}")
        if not (math.isfinite(lipschitz) and lipschitz > 0):
            raise ValueError(f"L must be a positive number, got {lipschitz!r}")
        self._spec = spec
        self._q, self._l = q, lipschitz
        self._num = {t.name: np.zeros(t.shape, np.float64) for t in spec.tensors}
        self._den = 0.0
        self._loss: float | None = None
        #: With a cap: each update's (F^q, h, update), weighed at :meth:`result`.
        self._share = None if max_share is None or max_share >= 1.0 else max_share
        self._held: list[tuple[float, float, Params]] = []

    def check_report(self, metrics: Mapping[str, float]) -> None:
        """Refuse a missing, negative, non-finite or overflowing pre-training loss."""
        _powers(check_loss(metrics), self._q)

    def report(self, metrics: Mapping[str, float]) -> None:
        """The loss of the update the next :meth:`add` folds."""
        loss = check_loss(metrics)
        _powers(loss, self._q)
        self._loss = loss

    def add(self, update: Params, weight: float) -> None:
        """Fold one update (``weight``, its example count, is not used)."""
        if self._loss is None:
            raise ValueError("report() the update's loss before add()")
        loss, self._loss = self._loss, None
        wide = {n: a.astype(np.float64) for n, a in update.items()}
        norm2 = self._l**2 * math.fsum(float(np.vdot(a, a)) for a in wide.values())
        fq, h = _terms(loss, norm2, self._q, self._l)
        if self._share is not None:
            self._held.append((fq, h, update.copy()))
            return
        self._fold(wide, fq, h)

    def _fold(self, wide: Mapping[str, Array], fq: float, h: float) -> None:
        for name, a in wide.items():
            self._num[name] += (fq * self._l) * a
        self._den += h

    def result(self) -> Params:
        """``sum F^q L u_k / sum h_k``, in each tensor's dtype."""
        if self._held:
            held, self._held = self._held, []
            capped = cap_weights([fq for fq, _, _ in held], self._share)
            for (fq, h, update), weight in zip(held, capped, strict=True):
                scale = 1.0 if weight == fq else (weight / fq if fq > 0 else 0.0)
                wide = {n: a.astype(np.float64) for n, a in update.items()}
                self._fold(wide, weight, h if scale == 1.0 else scale * h)
        if self._den <= 0:
            raise ValueError(
                "q-FedAvg's denominator is 0: every site reported a loss of 0 and an "
                "update of 0, so there is nothing to step"
            )
        return Params(
            {
                t.name: (self._num[t.name] / self._den).astype(t.dtype)
                for t in self._spec.tensors
            }
        )


def qfedavg(
    updates: Sequence[Params], losses: Sequence[float], *, q: float, lipschitz: float
) -> Params:
    """q-FedAvg's step from a list of updates and their losses (see module doc)."""
    if not updates or len(updates) != len(losses):
        raise ValueError(f"{len(updates)} updates but {len(losses)} losses")
    acc = QFedAvgAccumulator(updates[0].spec, q=q, lipschitz=lipschitz)
    for update, loss in zip(updates, losses, strict=True):
        acc.report({LOSS_METRIC: loss})
        acc.add(update, 1.0)
    return acc.result()
