"""What federation is worth: the model trained on pooled data and by each site alone.

Each baseline gets the same number of passes over its data as a participant gets over
the whole run (rounds × local epochs) and the same training settings, and every model
is scored on the same central test set, so the comparison isolates the effect of
federating rather than of a different training budget.

A baseline trained for many passes can overfit, which would flatter the federated
model. So each baseline is trained one round's worth of passes at a time and also
reported at its **best pass**: the one that scored best on its own holdout rows
(the pooled holdouts for the pooled model, the site's for the site), scored on the
test set like the rest. The test set never chooses anything.

Baselines are a report on a run that already completed: a task that raises while
training one of them (at one site's data, say, where the federated round only lost
that participant) costs that baseline alone. Its metrics are NaN, the reason is kept
in :attr:`Comparison.failed`, and the run stays completed.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.config import FedConfig
from accord.coordinator.selection import derive_seed
from accord.data.arrays import ArrayData
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.simulation.context import SimContext
from accord.task.personal_state import find_personal
from accord.task.protocol import Task, TrainConfig

__all__ = ["Comparison", "compare"]

logger = logging.getLogger(__name__)

_METRICS = ("auc", "accuracy", "loss")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Central-test metrics of the federated, pooled and site-alone models."""

    metric: str
    federated: Mapping[str, float]
    pooled: Mapping[str, float]
    sites: Mapping[str, Mapping[str, float]]
    failed: Mapping[str, str] = field(default_factory=dict)
    """Baselines whose training or scoring raised: name ("pooled" or a site), why."""
    best: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Each baseline at its best pass by holdout: test metrics plus ``pass``."""

    @property
    def median_site(self) -> float:
        """Median over sites of the headline metric (NaN sites left out)."""
        values = [
            m[self.metric] for m in self.sites.values() if math.isfinite(m[self.metric])
        ]
        return statistics.median(values) if values else math.nan

    @property
    def ratio_to_pooled(self) -> float:
        """Federated headline metric divided by the pooled one."""
        return self.federated[self.metric] / self.pooled[self.metric]

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Comparison:
        """The comparison :meth:`to_dict` stored (a run's summary holds it)."""

        def scores(m: Mapping[str, Any]) -> dict[str, float]:
            # Strict JSON stores NaN as null.
            return {k: math.nan if v is None else float(v) for k, v in m.items()}

        return cls(
            metric=str(doc["metric"]),
            federated=scores(doc["federated"]),
            pooled=scores(doc["pooled"]),
            sites={str(k): scores(v) for k, v in doc["sites"].items()},
            failed={str(k): str(v) for k, v in doc.get("failed", {}).items()},
            best={str(k): scores(v) for k, v in doc.get("best", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the store and ``--json``."""
        return {
            "metric": self.metric,
            "federated": dict(self.federated),
            "pooled": dict(self.pooled),
            "sites": {k: dict(v) for k, v in self.sites.items()},
            "failed": dict(self.failed),
            "best": {k: dict(v) for k, v in self.best.items()},
            "median_site": self.median_site,
            "ratio_to_pooled": self.ratio_to_pooled,
        }


def compare(
    ctx: SimContext,
    config: FedConfig,
    federated: Mapping[str, float],
    *,
    on_step: Callable[[str], None] | None = None,
) -> Comparison:
    """Train the pooled and site-alone baselines; score them beside ``federated``.

    They train the user's whole model: under FedPer or Ditto, the task those
    wrap (a baseline has no sites to keep a head or a personal model for).
    """
    keeper = find_personal(ctx.task)
    task = ctx.task if keeper is None else keeper.inner
    init = task.init_params(config.federation.seed)
    metric = config.evaluation.metric
    failed: dict[str, str] = {}
    best: dict[str, dict[str, float]] = {}
    pooled_holdout = ArrayData.concat([s.holdout for s in ctx.data.sites])

    def train_and_score(name: str, index: int) -> dict[str, float]:
        if index < 0:
            data, holdout = ctx.data.pooled_train(), pooled_holdout
        else:
            data, holdout = ctx.data.sites[index].train, ctx.data.sites[index].holdout
        try:
            final, best[name] = _train(
                ctx, task, config, init, data, holdout, index=index, metric=metric
            )
        except Exception as exc:  # the user's task: any error costs this baseline
            reason = f"{type(exc).__name__}: {exc}"[:300]
            logger.warning("baseline %s failed: %s", name, reason)
            failed[name] = reason
            final = dict.fromkeys(_METRICS, math.nan)
        if on_step is not None:
            on_step(name)
        return final

    pooled = train_and_score("pooled", -1)
    sites = {s.name: train_and_score(s.name, i) for i, s in enumerate(ctx.data.sites)}
    return Comparison(metric, dict(federated), pooled, sites, failed, best)


def _train(
    ctx: SimContext,
    task: Task,
    config: FedConfig,
    init: Params,
    data: ArrayData,
    holdout: ArrayData,
    *,
    index: int,
    metric: str,
) -> tuple[dict[str, float], dict[str, float]]:
    """Test metrics after every pass, and at the pass best on ``holdout``.

    Trains ``rounds`` times for ``epochs`` each, as a participant does over a run.
    """
    params = init
    passes = config.federation.rounds
    chosen: tuple[float, int, Params] | None = None
    for step in range(passes):
        settings = TrainConfig(
            epochs=config.train.epochs,
            batch_size=config.train.batch_size,
            learning_rate=config.train.learning_rate,
            seed=derive_seed(config.federation.seed + 1 + index, step, 0),
            options=dict(config.train.options),
        )
        params = task.train(params, data, settings).params
        if len(holdout):
            score = evaluate(task, params, holdout)[metric]
            key = -score if metric == "loss" else score
            if math.isfinite(key) and (chosen is None or key > chosen[0]):
                chosen = (key, step + 1, params)
    final = evaluate(task, params, ctx.data.test)
    if chosen is None:
        return final, {**final, "pass": float(passes)}
    at_best = evaluate(task, chosen[2], ctx.data.test)
    return final, {**at_best, "pass": float(chosen[1])}
