"""``[strategy] max_norm_ratio`` for asynchronous updates: judged against the last.

A synchronous round judges its updates by their own median norm
(:func:`~accord.coordinator.integrity.outliers`). An asynchronous version has no
round to wait for, so :class:`NormJudge` judges each update against the median of
the norms of the updates folded last (:data:`NORM_WINDOW` buffers' worth) and its
own: the honest majority sets that median, whatever one site sends. The run's
first updates, with too few folded norms to compare against, are held by the
driver until :meth:`NormJudge.gathered` says there are enough, then judged
together by :meth:`NormJudge.first` as a synchronous round's are. Pure: the driver
(:mod:`accord.coordinator.asynchronous`) holds, folds and records.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Sequence

from accord.coordinator.integrity import MIN_OUTLIER_UPDATES, outliers

__all__ = ["NORM_WINDOW", "NormJudge"]

#: How many buffers' worth of folded updates the norm rule judges against.
NORM_WINDOW = 2


class NormJudge:
    """The norm rule of one async run: ``ratio`` over ``sites`` sites."""

    def __init__(self, ratio: float, *, sites: int, buffer_size: int) -> None:
        self.ratio = ratio
        #: Whether the rule judges at all (off, or too few sites for a median).
        self.active = ratio > 0 and sites >= MIN_OUTLIER_UPDATES
        self._buffer_size = buffer_size
        #: Norms of the updates folded last.
        self.norms: collections.deque[float] = collections.deque(
            maxlen=NORM_WINDOW * buffer_size
        )

    def must_hold(self) -> bool:
        """Whether an update must wait for company: too few folded norms yet."""
        return self.active and len(self.norms) < MIN_OUTLIER_UPDATES - 1

    def gathered(self, held: int) -> bool:
        """Whether ``held`` first updates are enough to judge them together.

        Three (the rule's minimum), or a buffer's worth if the buffer is smaller.
        """
        return held >= min(MIN_OUTLIER_UPDATES, self._buffer_size)

    def outlier(self, norm: float) -> str | None:
        """Why an update of L2 norm ``norm`` is out of line (None: it is not)."""
        median = statistics.median([norm, *self.norms])
        if norm <= self.ratio * median:
            return None
        return (
            f"the update's L2 norm is {norm:.6g}, more than {self.ratio:g} times the "
            f"median norm {median:.6g} of the {len(self.norms)} updates folded last "
            "and this one ([strategy] max_norm_ratio); check the local training (a "
            "diverged run, a learning rate too high, scaled data) before sending again"
        )

    def first(self, held: Sequence[tuple[str, float]]) -> dict[str, str]:
        """The held first updates' refusals by site: judged with those folded."""
        folded = {f"\0{i}": n for i, n in enumerate(self.norms)}  # no site's name
        return outliers(
            {**folded, **dict(held)},
            self.ratio,
            order=[site for site, _ in held],
        )

    def folded(self, norm: float) -> None:
        """An update of norm ``norm`` was folded: later ones are judged against it."""
        self.norms.append(norm)
