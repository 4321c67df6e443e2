"""FedPer (Arivazhagan et al. 2019): a shared body, a private head at each site.

``[personalization] method = "fedper"`` with ``private = [glob patterns]`` splits
the model's tensors in two. :class:`FedPerSite` wraps the user's task so that the
federation only ever sees the shared ones:

* ``init_params`` returns the shared tensors only, so the coordinator's model, the
  published model, every update, the secure-aggregation vector, the checkpoints
  and the ledger's digests cover the body alone: the head is not sent, not
  masked, not aggregated, not stored by the coordinator;
* ``train`` puts the site's own head (its :class:`PersonalStore`; at first the
  task's initial head) beside the published body, trains the whole model with the
  task's own ``train``, keeps the new head and returns the body alone;
* ``predict`` without a site (the coordinator's central evaluation, a site's
  "global" score) uses the *initial* head: the federation has no head of its own,
  so those scores say little, and the site's personalized scores (its body + its
  head, :meth:`FedPerSite.personal_model`) are the ones to read.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.params import Params
from accord.task.personal_state import PersonalStore, PrivateSelection
from accord.task.protocol import Task, TrainConfig, TrainResult

__all__ = ["FedPerSite"]

logger = logging.getLogger(__name__)


class FedPerSite:
    """``task`` with its ``private`` tensors kept at each site (module doc)."""

    def __init__(
        self,
        task: Task,
        *,
        private: PrivateSelection,
        store: PersonalStore,
        seed: int,
    ) -> None:
        full = task.init_params(seed)
        private.check(tuple(full))  # ConfigError before anything trains
        self.task = task
        self.private = private
        self.store = store
        self.seed = seed
        self._order = tuple(full)
        self._initial_head = private.split(full)[1]
        for flag in ("supports_dp_sgd", "supports_proximal", "supports_scaffold"):
            setattr(self, flag, getattr(task, flag, False) is True)

    @property
    def inner(self) -> Task:
        """The user's task (scores the full model)."""
        return self.task

    def with_store(self, store: PersonalStore) -> FedPerSite:
        """The same split, keeping heads in ``store``."""
        return FedPerSite(self.task, private=self.private, store=store, seed=self.seed)

    def init_params(self, seed: int) -> Params:
        """The shared tensors of the task's initial model."""
        return self.private.split(self.task.init_params(seed))[0]

    def _head(self, site: str, before: int) -> Params:
        kept = self.store.load(site, like=self._initial_head, before=before)
        return self._initial_head if kept is None else kept

    def _full(self, shared: Params, head: Params) -> Params:
        parts = {**shared, **head}
        missing = [n for n in self._order if n not in parts]
        if missing or len(parts) != len(self._order):
            raise ValueError(
                f"the published model does not fit FedPer's split: missing {missing}; "
                "the coordinator and this site disagree on [personalization] private"
            )
        return Params([(n, parts[n]) for n in self._order])

    def personal_model(
        self, params: Params, site: str, *, before: int = 2**62
    ) -> Params:
        """The site's body (``params``) with its head from before round ``before``."""
        return self._full(params, self._head(site, before))

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Train body and the site's head; keep the head, return the body."""
        site = config.participant
        full = self.personal_model(params, site, before=config.round)
        result = self.task.train(full, data, config)
        full.spec.check(result.params)
        shared, head = self.private.split(result.params)
        self.store.save(site, config.round, head)
        logger.debug("FedPer: kept %d private tensor(s) at %s", len(head), site)
        return dataclasses.replace(result, params=shared)

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Any:
        """The body with the initial head (no site's head; module doc)."""
        return self.task.predict(self._full(params, self._initial_head), x)
