"""Keeps each valid update of a plain round, for contribution accounting.

With ``[contribution] keep_updates = true`` the round engine hands every update it
folds to an :class:`UpdateKeeper` (a round observer, like the anomaly scoring's
matrix), which writes it at once through an :class:`UpdateSink` (the store's
:class:`~accord.store.updates.UpdateArchive`): one update in memory at a time, so
the streaming mean stays O(model size). Pure: the sink is given, never imported.
"""

from __future__ import annotations

import logging
from typing import Protocol

from accord.coordinator.round import UpdateObserver
from accord.params import Params

__all__ = ["UpdateKeeper", "UpdateSink"]

logger = logging.getLogger(__name__)


class UpdateSink(Protocol):
    """Where a round's base model and valid updates are written."""

    def begin(self, run_id: str, number: int, base: Params) -> None:
        """Start round ``number`` afresh with the model it begins from."""

    def keep(
        self, run_id: str, number: int, position: int, participant: str, update: Params
    ) -> object:
        """Write the ``position``-th valid update of round ``number``."""


class UpdateKeeper:
    """A round observer that keeps every update folded into the aggregate."""

    def __init__(
        self,
        sink: UpdateSink,
        *,
        run_id: str,
        number: int,
        base: Params,
        inner: UpdateObserver | None = None,
    ) -> None:
        self._sink = sink
        self._run_id = run_id
        self._number = number
        self._inner = inner
        self._kept = 0
        sink.begin(run_id, number, base)

    @property
    def kept(self) -> int:
        """How many updates were written."""
        return self._kept

    def add(self, participant: str, update: Params, *, excluded: bool) -> None:
        """Pass ``update`` on to ``inner``; keep it unless it is excluded."""
        if self._inner is not None:
            self._inner.add(participant, update, excluded=excluded)
        if excluded:
            return
        self._sink.keep(self._run_id, self._number, self._kept, participant, update)
        self._kept += 1
