"""Ditto (Li et al. 2021): a personal model per site, pulled toward the global one.

``[personalization] method = "ditto"`` with ``lambda`` (the proximal strength).
The global model is trained as plain FedAvg: :class:`DittoSite` returns exactly
what the user's task returns from the published model ``w``. Each time a site
trains it also trains its personal model ``v`` (kept in its
:class:`~accord.task.personal_state.PersonalStore`; at first a copy of ``w``)
for the same epochs on the same rows, with every gradient step

    v <- v - lr * (grad F_site(v) + lambda * (v - w))

(the task's proximal term, anchored at ``w``: ``ANCHOR_KEY`` of
:mod:`accord.task.local_strategy`). ``v`` never leaves the site; the evaluation
scores it beside ``w`` (:mod:`accord.task.personalization`). Only tasks that can
add the proximal term do Ditto: accord's PyTorch and numpy adapters; any other is
refused when the run starts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.errors import ConfigError
from accord.params import Params
from accord.task.local_strategy import (
    ANCHOR_KEY,
    CORRECTION_KEY,
    OPTION_KEY,
    LocalStrategy,
)
from accord.task.personal_state import PersonalStore
from accord.task.protocol import Task, TrainConfig, TrainResult

__all__ = ["DittoSite", "personal_config"]


def personal_config(config: TrainConfig, *, lam: float, anchor: Params) -> TrainConfig:
    """``config`` for the personal model's training: proximal ``lam`` toward ``anchor``.

    The round's own strategy declaration (FedProx, SCAFFOLD's correction) is for the
    global model's update, so it is replaced; the user's options are kept.
    """
    options = {
        k: v for k, v in config.options.items() if k not in (OPTION_KEY, CORRECTION_KEY)
    }
    options[OPTION_KEY] = LocalStrategy(proximal_mu=lam).to_json()
    options[ANCHOR_KEY] = anchor
    return dataclasses.replace(config, options=options)


class DittoSite:
    """``task``, also training each site's personal model (module doc)."""

    def __init__(self, task: Task, *, lam: float, store: PersonalStore) -> None:
        if isinstance(lam, bool) or not (math.isfinite(lam) and lam >= 0):
            raise ConfigError(
                f"must be a finite number >= 0, got {lam!r}",
                key="personalization.lambda",
            )
        if getattr(task, "supports_proximal", False) is not True:
            why = getattr(task, "strategy_refusal", None)
            raise ConfigError(
                f"Ditto trains each site's personal model with a proximal term "
                f"toward the global model, which the task ({type(task).__name__}) "
                "cannot add to its gradient steps"
                + (
                    f": {why}"
                    if isinstance(why, str)
                    else "; use accord.task.torch or the numpy tasks"
                ),
                key="personalization.method",
            )
        self.task = task
        self.lam = float(lam)
        self.store = store
        for flag in ("supports_dp_sgd", "supports_proximal", "supports_scaffold"):
            setattr(self, flag, getattr(task, flag, False) is True)

    @property
    def inner(self) -> Task:
        """The user's task (scores the personal model)."""
        return self.task

    def with_store(self, store: PersonalStore) -> DittoSite:
        """The same method, keeping personal models in ``store``."""
        return DittoSite(self.task, lam=self.lam, store=store)

    def init_params(self, seed: int) -> Params:
        """The task's initial model."""
        return self.task.init_params(seed)

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Any:
        """The task's predictions."""
        return self.task.predict(params, x)

    def personal_model(
        self, params: Params, site: str, *, before: int = 2**62
    ) -> Params:
        """The site's ``v`` as of a round before ``before``; else ``params``."""
        kept = self.store.load(site, like=params, before=before)
        return params if kept is None else kept

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """The global update as FedAvg's; then one personal step, kept here."""
        result = self.task.train(params, data, config)
        site = config.participant
        v = self.personal_model(params, site, before=config.round)
        own = self.task.train(
            v, data, personal_config(config, lam=self.lam, anchor=params)
        )
        params.spec.check(own.params)
        self.store.save(site, config.round, own.params)
        return result
