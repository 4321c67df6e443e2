"""Streaming weighted mean in which no participant holds more than a set share.

:class:`CappedMeanAccumulator` is :class:`~accord.aggregation.mean.MeanAccumulator`
with :func:`~accord.aggregation.integrity.cap_weights` applied to the round's
weights. A share can only be judged against the round's total, known once every
update is in, but a streaming mean must fold each update as it comes. The way
through: at most ``floor(1 / max_share)`` participants can be capped, and they are
the heaviest. So the accumulator keeps a copy of the ``floor(1 / max_share)``
heaviest updates seen so far (two for the default 0.5) and folds every other one
at once with its own weight, which a cap never changes. When a heavier update
arrives, the lightest kept one is folded. At :meth:`result` the caps are computed
from all the weights and the kept updates are folded with their capped weights.

Memory is the float64 sum plus ``floor(1 / max_share)`` copies of the model in its
own dtype. A caller that holds the round's updates anyway (the round does under
``[strategy] max_norm_ratio``) gives them all at once to :meth:`add_last`, which
folds them with the same weights in the same order as :meth:`add` would, without
copying any. The order of the float64 sum depends only on the weights and the order
updates are added (the round adds them in selection order), so the result is the
same however the updates raced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from accord.aggregation.integrity import cap_weights
from accord.aggregation.mean import MeanAccumulator, SumBuffers
from accord.errors import UpdateRejected
from accord.params import Params, ParamSpec

__all__ = ["CappedMeanAccumulator"]


class CappedMeanAccumulator:
    """Weighted mean over added updates, each share at most ``max_share``."""

    def __init__(
        self,
        spec: ParamSpec,
        max_share: float,
        *,
        workers: int | None = None,
        buffers: SumBuffers | None = None,
    ) -> None:
        if not 0.0 < max_share <= 1.0:
            raise ValueError(f"max_share must be in (0, 1], got {max_share}")
        self._spec = spec
        self._max_share = max_share
        # At most floor(1 / max_share) participants can reach the cap (each capped
        # one holds exactly max_share of the total); the epsilon keeps 1/0.2 at 5.
        self._keep = max(1, math.floor(1.0 / max_share + 1e-9))
        self._sum = MeanAccumulator(spec, workers=workers, buffers=buffers)
        self._weights: list[float] = []
        self._held: dict[int, Params] = {}
        self._result: Params | None = None
        self._sealed = False  # add_last() or result() ran: nothing more is added

    @property
    def count(self) -> int:
        """Number of updates added."""
        return len(self._weights)

    def add(self, update: Params, weight: float) -> None:
        """Add one update; it may be dropped once this returns (kept ones are copied).

        Raises :class:`~accord.errors.UpdateRejected` for an update that does not fit
        the spec or a weight that is negative or not finite; nothing changes then.
        """
        (w,) = self._checked([update], [weight])
        if len(self._held) >= self._keep and all(
            self._weights[i] >= w for i in self._held
        ):
            # It would be kept and at once folded as the lightest (the latest
            # among equals): fold it now, with no copy, in the same place.
            self._weights.append(w)
            self._sum.add(update, w)
            return
        self._hold(update.copy(), w)

    def lend(self, update: Params, weight: float) -> bool:
        """:meth:`add` without the copy: True if ``update`` itself is kept.

        The caller then keeps ``update`` unchanged until :meth:`result` returns
        (the round does, under ``max_norm_ratio``); the folds are :meth:`add`'s,
        bit for bit.
        """
        (w,) = self._checked([update], [weight])
        index = len(self._weights)
        self._hold(update, w)
        return index in self._held

    def lend_many(
        self, updates: Sequence[Params], weights: Sequence[float]
    ) -> list[bool]:
        """:meth:`lend` of each update in turn: whether each is kept.

        The folds those calls would make are made in one pass over the sums
        (:meth:`MeanAccumulator.add_many`), in the same order, bit for bit. Raises
        like :meth:`lend`, before anything is kept or folded.
        """
        ws = self._checked(updates, weights)
        first = len(self._weights)
        folds: list[tuple[Params, float]] = []
        for update, w in zip(updates, ws, strict=True):
            self._hold(update, w, deferred=folds)
        self._sum.add_many([u for u, _ in folds], [w for _, w in folds])
        return [first + k in self._held for k in range(len(ws))]

    def _checked(
        self, updates: Sequence[Params], weights: Sequence[float]
    ) -> list[float]:
        """The weights as floats, once every update fits and every weight is valid.

        Raises (:class:`~accord.errors.UpdateRejected`, or ``RuntimeError`` once
        sealed) before anything changes.
        """
        if self._sealed:
            raise RuntimeError("result() was taken; start a new accumulator")
        if len(updates) != len(weights):
            raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
        ws: list[float] = []
        for update, weight in zip(updates, weights, strict=True):
            self._spec.check(update)
            w = float(weight)
            if not math.isfinite(w) or w < 0:
                raise UpdateRejected(
                    f"weight must be a finite number >= 0, got {weight!r}"
                )
            ws.append(w)
        return ws

    def _hold(
        self,
        update: Params,
        w: float,
        deferred: list[tuple[Params, float]] | None = None,
    ) -> None:
        """Keep ``update``; fold the lightest kept one if that makes one too many.

        With ``deferred``, that fold is appended to it for the caller to make.
        """
        index = len(self._weights)
        self._weights.append(w)
        self._held[index] = update
        if len(self._held) > self._keep:
            # The lightest kept update (the latest among equals) can no longer be
            # capped: the heavier ones kept outnumber the caps possible.
            lightest = max(self._held, key=lambda i: (-self._weights[i], i))
            fold = (self._held.pop(lightest), self._weights[lightest])
            if deferred is None:
                self._sum.add(*fold)
            else:
                deferred.append(fold)

    def add_last(self, updates: Sequence[Params], weights: Sequence[float]) -> None:
        """Add the round's remaining updates at once, then fix the result.

        The result is :meth:`add` of each in turn followed by :meth:`result`, bit
        for bit (the same folds, with the same weights, in the same order), but no
        update is copied: the heaviest are folded before this returns, straight
        from the caller's arrays, which it may release afterwards. Nothing can be
        added after it (:meth:`result` then only reads the sum). Raises like
        :meth:`add`, before anything is folded.
        """
        ws = self._checked(updates, weights)
        folds: list[tuple[Params, float]] = []
        for update, w in zip(updates, ws, strict=True):
            self._hold(update, w, deferred=folds)  # alive until we return
        self._fold_held(first=folds)

    def result(self) -> Params:
        """The capped weighted mean; ``ValueError`` if nothing was added."""
        if self._result is not None:
            return self._result
        if not self._weights:
            raise ValueError("no update has been added; the mean is undefined")
        self._fold_held()
        self._result = self._sum.result()
        return self._result

    def _fold_held(self, first: Sequence[tuple[Params, float]] = ()) -> None:
        """Fold ``first`` (folds deferred), then the kept updates, capped; seal.

        All in one pass over the sums: bit for bit the adds in this order.
        """
        self._sealed = True
        capped: Sequence[float] = ()
        if self._held:
            capped = cap_weights(self._weights, self._max_share)
            folded = set(range(len(self._weights))) - set(self._held)
            # A folded update was never among the heaviest: its weight is uncapped.
            assert all(capped[i] == self._weights[i] for i in folded)
        order = sorted(self._held)
        updates = [u for u, _ in first] + [self._held[index] for index in order]
        weights = [w for _, w in first] + [capped[index] for index in order]
        if updates:
            self._sum.add_many(updates, weights)
        self._held.clear()
